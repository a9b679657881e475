// Fusion operators (golden forward against scripts/make_fusion_goldens.py, gradients on every
// parameter, shapes, missing modalities) and the safetensors reader/writer they are loaded with.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>

#include "braid/core/config.h"
#include "braid/core/error.h"
#include "braid/core/safetensors.h"
#include "braid/nn/encoder.h"
#include "braid/nn/fusion.h"
#include "braid/nn/fusion/common.h"
#include "braid/nn/fusion/graph.h"
#include "braid/nn/fusion/lmf.h"
#include "braid/models/fusion_classifier.h"
#include "test_util.h"

using braid::Config;
using braid::InputError;
using braid::TensorMap;
using braid::nn::FusionContext;
using braid::nn::FusionPtr;
using braid::nn::fusion_registry;

namespace {

const std::string kFusionFixtures = std::string(BRAID_FIXTURES) + "/fusion";

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "<no InputError>";
}

FusionContext context(const std::vector<int64_t>& dims) {
  FusionContext ctx;
  for (size_t m = 0; m < dims.size(); ++m) ctx.modalities.push_back("m" + std::to_string(m));
  ctx.dims = dims;
  return ctx;
}

// Every fusion the registry offers, with its default options.
FusionPtr make_default(const std::string& name, const FusionContext& ctx) {
  auto cfg = Config::from_string("name: " + name + "\n", "test");
  auto f = fusion_registry().make(cfg, ctx);
  cfg.check_all_used();
  return f;
}

// Inputs for B rows: random h_m with absent rows zeroed. The presence pattern has every modality
// present somewhere, one row with modality 1 absent (when M > 1) and one row with nothing present.
struct Inputs {
  std::vector<torch::Tensor> feats;
  torch::Tensor present;
};
Inputs random_inputs(const std::vector<int64_t>& dims, int64_t B = 6) {
  const auto M = static_cast<int64_t>(dims.size());
  auto present = torch::ones({B, M});
  if (M > 1) present[1][1] = 0;
  present[B - 1].fill_(0);
  if (M > 2) present[2][0] = 0, present[2][2] = 0;
  Inputs in;
  in.present = present;
  for (int64_t m = 0; m < M; ++m) in.feats.push_back(torch::randn({B, dims[m]}) * present.select(1, m).unsqueeze(1));
  return in;
}

std::vector<std::string> registered() { return fusion_registry().names(); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// Golden forward: weights, inputs, options and expected outputs from scripts/make_fusion_goldens.py.

class FusionGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(FusionGolden, MatchesPythonReference) {
  const std::string op = GetParam();
  const std::string path = kFusionFixtures + "/" + op + ".safetensors";
  const TensorMap t = braid::read_safetensors(path);
  for (const std::string c : {"m2", "m3"}) {
    SCOPED_TRACE(op + " case " + c);
    ASSERT_TRUE(t.count(c + ".config")) << path;
    auto bytes = t.at(c + ".config").contiguous();
    std::string yaml(reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>()), bytes.numel());
    auto cfg = Config::from_string(yaml, path + ":" + c + ".config");
    auto present = t.at(c + ".present");
    const int64_t B = present.size(0), M = present.size(1);
    std::vector<torch::Tensor> feats;
    std::vector<int64_t> dims;
    for (int64_t m = 0; m < M; ++m) {
      feats.push_back(t.at(c + ".feat." + std::to_string(m)));
      dims.push_back(feats.back().size(1));
    }
    // the fixture must exercise missing modalities: a row with exactly one absent, and a row with none present
    auto absent = (present < 0.5).sum(1);
    ASSERT_TRUE((absent == 1).any().item<bool>()) << path;
    ASSERT_TRUE((absent == M).any().item<bool>()) << path;

    auto f = fusion_registry().make(cfg, context(dims));
    ASSERT_NO_THROW(cfg.check_all_used());
    braid::load_module_tensors(*f, t, path, c + ".fusion.");  // strict: unknown, missing, mis-shaped are errors
    f->eval();
    torch::NoGradGuard ng;
    auto out = f->forward(feats, present).to(torch::kFloat64);
    auto expected = t.at(c + ".expected");
    ASSERT_EQ(out.sizes(), expected.sizes());
    ASSERT_EQ(out.size(0), B);
    ASSERT_EQ(out.size(1), f->out_dim());
    auto diff = (out - expected).abs();
    const double worst = diff.max().item<double>();
    const auto at = diff.argmax().item<int64_t>();
    std::printf("[ fusion golden ] %-9s %s: max |C++ - python| = %.3g at [%lld, %lld] (out_dim %lld)\n", op.c_str(),
                c.c_str(), worst, static_cast<long long>(at / out.size(1)), static_cast<long long>(at % out.size(1)),
                static_cast<long long>(f->out_dim()));
    EXPECT_LE(worst, 1e-5) << "worst difference at flat index " << at;
    EXPECT_GT(expected.abs().max().item<double>(), 0.1) << "a golden of zeros proves nothing";
  }
}

INSTANTIATE_TEST_SUITE_P(FusionOps, FusionGolden,
                         ::testing::Values("sum", "max", "gmu", "attention", "tfn", "lmf", "mfb", "graph"),
                         [](const auto& info) { return info.param; });

TEST(FusionGoldenCoverage, EveryRegisteredOperatorButConcatHasAGolden) {
  for (const auto& name : registered()) {
    if (name == "concat") continue;
    std::ifstream f(kFusionFixtures + "/" + name + ".safetensors");
    EXPECT_TRUE(f.good()) << "no golden fixture for fusion '" << name << "'; add it to scripts/make_fusion_goldens.py";
  }
}

TEST(FusionGoldenStrictness, GoldenWeightsMustMatchTheModule) {
  const std::string path = kFusionFixtures + "/lmf.safetensors";
  auto t = braid::read_safetensors(path);
  auto cfg = Config::from_string("{name: lmf, rank: 3, out: 7}", "test");
  auto f = fusion_registry().make(cfg, context({6, 5, 4}));
  EXPECT_NO_THROW(braid::load_module_tensors(*f, t, path, "m3.fusion."));
  // a different rank: every factor is mis-shaped
  auto g = fusion_registry().make(Config::from_string("{name: lmf, rank: 2, out: 7}", "test"), context({6, 5, 4}));
  auto msg = message_of([&] { braid::load_module_tensors(*g, t, path, "m3.fusion."); });
  EXPECT_NE(msg.find("factor_"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
}

// ---------------------------------------------------------------------------------------------
// Gradients and shapes, for every registered fusion with its defaults.

class FusionGradient : public ::testing::TestWithParam<int> {};

TEST_P(FusionGradient, EveryParameterGetsAFiniteNonZeroGradient) {
  const int M = GetParam();
  const std::vector<int64_t> all_dims{7, 5, 3};
  const std::vector<int64_t> dims(all_dims.begin(), all_dims.begin() + M);
  for (const auto& name : registered()) {
    SCOPED_TRACE("fusion " + name + ", M = " + std::to_string(M));
    torch::manual_seed(7);
    auto f = make_default(name, context(dims));
    f->train();
    auto in = random_inputs(dims);
    for (auto& x : in.feats) x.requires_grad_(true);
    auto out = f->forward(in.feats, in.present);
    ASSERT_EQ(out.dim(), 2);
    ASSERT_EQ(out.size(0), in.present.size(0));
    ASSERT_EQ(out.size(1), f->out_dim());
    ASSERT_TRUE(torch::isfinite(out).all().item<bool>());
    auto w = torch::randn(out.sizes());
    (out * w).sum().backward();
    if (name != "concat") EXPECT_FALSE(f->parameters().empty()) << "a learned fusion without parameters";
    for (const auto& p : f->named_parameters()) {
      ASSERT_TRUE(p.value().grad().defined()) << p.key() << " has no gradient";
      EXPECT_TRUE(torch::isfinite(p.value().grad()).all().item<bool>()) << p.key() << " has a non-finite gradient";
      EXPECT_GT(p.value().grad().abs().max().item<double>(), 0.0) << p.key() << " has an all-zero gradient";
    }
    for (int m = 0; m < M; ++m) {
      ASSERT_TRUE(in.feats[m].grad().defined()) << "input " << m;
      EXPECT_TRUE(torch::isfinite(in.feats[m].grad()).all().item<bool>()) << "input " << m;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(FusionModalities, FusionGradient, ::testing::Values(2, 3),
                         [](const auto& info) { return "M" + std::to_string(info.param); });

TEST(FusionLMF, FactorsAreRegisteredParameters) {  // MultiBench left them out
  auto f = make_default("lmf", context({7, 5, 3}));
  auto params = f->named_parameters();
  const braid::nn::LMFFusionOptions defaults;
  const std::vector<int64_t> dims{7, 5, 3};
  for (int m = 0; m < 3; ++m) {
    auto* p = params.find("factor_" + std::to_string(m));
    ASSERT_NE(p, nullptr) << "factor_" << m << " is not a parameter";
    EXPECT_EQ(p->sizes(), (std::vector<int64_t>{defaults.rank, dims[m] + 1, defaults.out}));
  }
  EXPECT_NE(params.find("fusion_weights"), nullptr);
  EXPECT_NE(params.find("fusion_bias"), nullptr);
}

TEST(FusionShapes, SingleModalityGivesItsProjection) {
  for (const auto& name : registered()) {
    SCOPED_TRACE("fusion " + name);
    torch::manual_seed(3);
    auto f = make_default(name, context({9}));
    f->eval();
    auto in = random_inputs({9});
    auto out = f->forward(in.feats, in.present);
    ASSERT_EQ(out.sizes(), (std::vector<int64_t>{in.present.size(0), f->out_dim()}));
    EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
  }
}

TEST(FusionShapes, OutDimsOfDefaults) {
  const auto ctx = context({7, 5, 3});
  EXPECT_EQ(make_default("concat", ctx)->out_dim(), 7 + 5 + 3 + 3);
  EXPECT_EQ(make_default("sum", ctx)->out_dim(), 128);
  EXPECT_EQ(make_default("max", ctx)->out_dim(), 128);
  EXPECT_EQ(make_default("gmu", ctx)->out_dim(), 128);
  EXPECT_EQ(make_default("attention", ctx)->out_dim(), 128);
  EXPECT_EQ(make_default("tfn", ctx)->out_dim(), 128);
  EXPECT_EQ(make_default("lmf", ctx)->out_dim(), 128);
  EXPECT_EQ(make_default("mfb", ctx)->out_dim(), 3 * 256);  // three pairs
  EXPECT_EQ(make_default("mfb", context({7, 5}))->out_dim(), 256);
  EXPECT_EQ(make_default("graph", ctx)->out_dim(), 7 * 64);  // 2^3 - 1 vertices
  EXPECT_EQ(make_default("graph", context({7, 5, 3, 2}))->out_dim(), 15 * 64);
  auto tfn = make_default("tfn", ctx);
  EXPECT_EQ(tfn->named_parameters().find("post.weight")->sizes(), (std::vector<int64_t>{128, 17 * 17 * 17}));
}

// A sample's output depends only on its own row; a row with nothing present is 0 for the operators that
// mask (tfn and lmf give their constant "no information" output there); max ignores absent modalities.
TEST(FusionMissing, RowsAreIndependentAndEmptyRowsAreZero) {
  const std::vector<int64_t> dims{7, 5, 3};
  for (const auto& name : registered()) {
    SCOPED_TRACE("fusion " + name);
    torch::manual_seed(11);
    auto f = make_default(name, context(dims));
    f->eval();
    torch::NoGradGuard ng;
    auto in = random_inputs(dims);
    auto out = f->forward(in.feats, in.present);
    // batch independence: row 0 alone gives the same output
    std::vector<torch::Tensor> one;
    for (auto& x : in.feats) one.push_back(x.narrow(0, 0, 1));
    auto out0 = f->forward(one, in.present.narrow(0, 0, 1));
    EXPECT_LE((out0 - out.narrow(0, 0, 1)).abs().max().item<double>(), 1e-5);
    if (name == "sum" || name == "max" || name == "gmu" || name == "attention" || name == "mfb" || name == "graph") {
      EXPECT_EQ(out[out.size(0) - 1].abs().max().item<double>(), 0.0) << "row with nothing present";
    }
    if (name == "max") {  // max over the present ones only: the absent modality's projection never wins
      auto p = f->named_parameters();
      auto proj0 = torch::nn::functional::linear(in.feats[0].narrow(0, 1, 1), p["proj.0.weight"], p["proj.0.bias"]);
      auto proj2 = torch::nn::functional::linear(in.feats[2].narrow(0, 1, 1), p["proj.2.weight"], p["proj.2.bias"]);
      EXPECT_TRUE(torch::allclose(out.narrow(0, 1, 1), torch::maximum(proj0, proj2)));
    }
  }
}

TEST(FusionMissing, MaskedSoftmaxIsFiniteWithNothingPresent) {
  auto x = torch::randn({3, 4}, torch::requires_grad());
  auto mask = torch::tensor({1, 0, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1}, torch::kBool).view({3, 4});
  auto y = braid::nn::fusion_detail::masked_softmax(x, mask, 1);
  EXPECT_TRUE(torch::allclose(y.sum(1), torch::tensor({1.0f, 0.0f, 1.0f})));
  EXPECT_EQ(y.masked_select(mask.logical_not()).abs().max().item<double>(), 0.0);
  (y * torch::randn({3, 4})).sum().backward();
  EXPECT_TRUE(torch::isfinite(x.grad()).all().item<bool>());
  EXPECT_EQ(x.grad()[1].abs().max().item<double>(), 0.0);
}

TEST(FusionMissing, GraphEfficaciesAndVerticesOfAbsentModalitiesAreMasked) {
  torch::manual_seed(5);
  const std::vector<int64_t> dims{7, 5, 3};
  auto f = make_default("graph", context(dims));
  auto* g = dynamic_cast<braid::nn::GraphFusionImpl*>(f.get());
  ASSERT_NE(g, nullptr);
  ASSERT_EQ(g->edges().size(), 9u);  // 3 bimodal vertices x 2 children + 1 trimodal x 3
  auto in = random_inputs(dims);      // row 1: modality 1 absent; row 5: nothing present
  torch::NoGradGuard ng;
  auto out = f->forward(in.feats, in.present);
  auto alpha = g->last_efficacies();
  ASSERT_EQ(alpha.sizes(), (std::vector<int64_t>{6, 9}));
  for (size_t e = 0; e < g->edges().size(); ++e) {
    const auto& child = g->vertices()[g->edges()[e].child];
    const bool has1 = std::find(child.begin(), child.end(), 1) != child.end();
    if (has1)
      EXPECT_EQ(alpha[1][e].item<float>(), 0.0f) << "edge " << e;
    else
      EXPECT_GT(alpha[1][e].item<float>(), 0.0f) << "edge " << e;
    EXPECT_EQ(alpha[5][e].item<float>(), 0.0f) << "edge " << e;
    EXPECT_GT(alpha[0][e].item<float>(), 0.0f) << "edge " << e;
  }
  const int64_t D = g->options.dim;
  EXPECT_EQ(out[1].narrow(0, 1 * D, D).abs().max().item<float>(), 0.0f);  // vertex {1}
  EXPECT_GT(out[1].narrow(0, 3 * D, D).abs().max().item<float>(), 0.0f);  // vertex {0, 1}: {0} still feeds it
  EXPECT_GT(out[1].narrow(0, 6 * D, D).abs().max().item<float>(), 0.0f);  // vertex {0, 1, 2}: via {0, 2}
}

TEST(FusionConfig, BadOptionsAreInputErrorsNamingTheKey) {
  auto ctx = context({4, 4});
  auto msg = message_of([&] { fusion_registry().make(Config::from_string("{name: tfn, dim: 0}", "r.yaml"), ctx); });
  EXPECT_NE(msg.find("r.yaml"), std::string::npos) << msg;
  msg = message_of([&] { fusion_registry().make(Config::from_string("{name: mfb, dropout: 1.5}", "r.yaml"), ctx); });
  EXPECT_NE(msg.find("dropout"), std::string::npos) << msg;
  msg = message_of([&] { fusion_registry().make(Config::from_string("{name: lmf, rank: -1}", "r.yaml"), ctx); });
  EXPECT_NE(msg.find("rank"), std::string::npos) << msg;
  msg = message_of([&] { fusion_registry().make(Config::from_string("{name: fancy}", "r.yaml"), ctx); });
  EXPECT_NE(msg.find("graph"), std::string::npos) << msg;  // lists the known names
  auto cfg = Config::from_string("{name: gmu, dimm: 3}", "r.yaml");
  fusion_registry().make(cfg, ctx);
  msg = message_of([&] { cfg.check_all_used(); });
  EXPECT_NE(msg.find("dimm"), std::string::npos) << msg;
}

TEST(FusionConfig, TooLargeTensorOrGraphIsRefused) {
  EXPECT_THROW(make_default("tfn", context({3, 3, 3, 3, 3, 3})), c10::Error);  // 17^6 entries
  EXPECT_THROW(make_default("graph", context(std::vector<int64_t>(9, 2))), c10::Error);
}

TEST(FusionConfig, WrongInputShapesAreRefused) {
  for (const auto& name : registered()) {
    if (name == "concat") continue;  // concat.cpp does not check shapes (torch::cat fails on some mismatches)
    SCOPED_TRACE("fusion " + name);
    auto f = make_default(name, context({4, 3}));
    EXPECT_ANY_THROW(f->forward({torch::zeros({2, 4}), torch::zeros({2, 2})}, torch::ones({2, 2})));
    EXPECT_ANY_THROW(f->forward({torch::zeros({2, 4})}, torch::ones({2, 2})));
    EXPECT_ANY_THROW(f->forward({torch::zeros({2, 4}), torch::zeros({2, 3})}, torch::ones({2, 3})));
  }
}

TEST(FusionSubsets, OrderedBySizeThenLexicographic) {
  auto s = braid::nn::fusion_detail::modality_subsets(3);
  std::vector<std::vector<int64_t>> want{{0}, {1}, {2}, {0, 1}, {0, 2}, {1, 2}, {0, 1, 2}};
  EXPECT_EQ(s, want);
  EXPECT_EQ(braid::nn::fusion_detail::modality_subsets(5).size(), 31u);
}

// ---------------------------------------------------------------------------------------------
// Safetensors.

namespace {

// A raw safetensors file: 8-byte little-endian header length, the header text, then `data`.
std::string raw_file(const std::string& header, const std::string& data, uint64_t header_len_override = 0) {
  uint64_t n = header_len_override ? header_len_override : header.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

std::string write_raw(const std::string& dir, const std::string& name, const std::string& bytes) {
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

std::string read_error(const std::string& path) { return message_of([&] { braid::read_safetensors(path); }); }

}  // namespace

TEST(Safetensors, RoundTripKeepsDtypesShapesValuesAndMetadata) {
  const auto dir = braid::test::temp_dir("safetensors_rt");
  TensorMap in;
  in["f32"] = torch::randn({3, 4});
  in["f64"] = torch::randn({2}, torch::kFloat64);
  in["f16"] = torch::randn({5}).to(torch::kFloat16);
  in["bf16"] = torch::randn({2, 2}).to(torch::kBFloat16);
  in["i64"] = torch::tensor({int64_t{-5}, int64_t{1} << 40});
  in["i32"] = torch::arange(6, torch::kInt32).view({2, 3}) - 3;
  in["i16"] = torch::tensor({-300, 300}, torch::kInt16);
  in["i8"] = torch::tensor({-7, 7}, torch::kInt8);
  in["u8"] = torch::tensor({0, 200, 255}, torch::kUInt8);
  in["bool"] = torch::tensor({true, false, true});
  in["scalar"] = torch::tensor(2.5);
  in["empty"] = torch::zeros({0, 3});
  in["strided"] = torch::randn({4, 3}).t();  // non-contiguous: written as its contiguous copy
  const auto path = dir + "/all.safetensors";
  braid::write_safetensors(path, in, {{"format", "pt"}});
  auto out = braid::read_safetensors(path);
  ASSERT_EQ(out.size(), in.size());
  for (const auto& [name, t] : in) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(out.count(name));
    EXPECT_EQ(out[name].scalar_type(), t.scalar_type());
    EXPECT_EQ(out[name].sizes(), t.sizes());
    EXPECT_TRUE(torch::equal(out[name], t));
  }
}

TEST(Safetensors, FileWrittenByThePythonUtilLoads) {
  const std::string path = kFusionFixtures + "/util_dtypes.safetensors";
  auto t = braid::read_safetensors(path);
  EXPECT_EQ(t.size(), 7u);
  EXPECT_TRUE(torch::equal(t.at("f32"), (torch::arange(6, torch::kFloat32) / 4).view({2, 3})));
  EXPECT_TRUE(torch::equal(t.at("f64"), torch::tensor({-1.5, 2.25, 1e-300}, torch::kFloat64)));
  EXPECT_TRUE(torch::equal(t.at("i64"), torch::tensor({int64_t{-3}, int64_t{1} << 40})));
  EXPECT_TRUE(torch::equal(t.at("i32"), torch::tensor({1, -2, 3, -4}, torch::kInt32).view({2, 2})));
  EXPECT_TRUE(torch::equal(t.at("u8"), torch::tensor({0, 255, 7}, torch::kUInt8)));
  EXPECT_TRUE(torch::equal(t.at("bool"), torch::tensor({true, false, true})));
  EXPECT_EQ(t.at("empty").sizes(), (std::vector<int64_t>{0, 3}));
  // and the golden files written by the same util
  auto g = braid::read_safetensors(kFusionFixtures + "/tfn.safetensors");
  EXPECT_EQ(g.at("m3.present").scalar_type(), torch::kFloat32);
  EXPECT_EQ(g.at("m3.expected").scalar_type(), torch::kFloat64);
}

TEST(Safetensors, BrokenFilesAreInputErrorsNamingTheFile) {
  const auto dir = braid::test::temp_dir("safetensors_broken");
  const std::string good_header = R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
  const std::string data16(16, '\1');
  // sanity: the well-formed version loads
  ASSERT_NO_THROW(braid::read_safetensors(write_raw(dir, "good.safetensors", raw_file(good_header, data16))));

  struct Case {
    std::string file, bytes, expect;  // `expect`: a word the message must contain besides the path
  };
  const std::string whole = raw_file(good_header, data16);
  std::vector<Case> cases{
      {"empty.safetensors", "", "header length"},
      {"short.safetensors", std::string("\x05\0\0", 3), "header length"},
      {"truncated_data.safetensors", whole.substr(0, whole.size() - 5), "'a'"},
      {"truncated_header.safetensors", whole.substr(0, 20), "header length"},
      {"header_past_eof.safetensors", raw_file(good_header, data16, 1'000'000), "header length"},
      {"offsets_outside.safetensors",
       raw_file(R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]}})", data16), "data_offsets"},
      {"offsets_reversed.safetensors",
       raw_file(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", data16), "data_offsets"},
      {"dtype_unknown.safetensors", raw_file(R"({"a":{"dtype":"Q4","shape":[2,2],"data_offsets":[0,16]}})", data16),
       "dtype"},
      {"shape_bytes_mismatch.safetensors",
       raw_file(R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}})", data16), "expected 24"},
      {"negative_shape.safetensors",
       raw_file(R"({"a":{"dtype":"F32","shape":[-2,2],"data_offsets":[0,16]}})", data16), "shape"},
      {"huge_shape.safetensors",
       raw_file(R"({"a":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,16]}})", data16),
       "shape"},
      {"not_json.safetensors", raw_file("{\"a\": [1, 2", data16), "JSON"},
      {"not_object.safetensors", raw_file("[1, 2, 3]", data16), "object"},
      {"missing_fields.safetensors", raw_file(R"({"a":{"dtype":"F32"}})", data16), "'a'"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file);
    const auto path = write_raw(dir, c.file, c.bytes);
    const auto msg = read_error(path);
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.expect), std::string::npos) << msg;
  }
  EXPECT_NE(read_error(dir + "/does_not_exist.safetensors").find("does_not_exist"), std::string::npos);
}

TEST(Safetensors, LoadModuleTensorsIsStrict) {
  torch::manual_seed(0);
  auto ctx = context({4, 3});
  auto f = make_default("attention", ctx);
  auto t = braid::module_tensors(*f, "fusion.");
  ASSERT_TRUE(t.count("fusion.att.weight"));
  auto g = make_default("attention", ctx);
  braid::load_module_tensors(*g, t, "ok.safetensors", "fusion.");
  for (const auto& p : g->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), t.at("fusion." + p.key())));
  t["other.thing"] = torch::zeros({1});  // outside the prefix: ignored
  EXPECT_NO_THROW(braid::load_module_tensors(*g, t, "ok.safetensors", "fusion."));

  auto unknown = t;
  unknown["fusion.proj.7.weight"] = torch::zeros({2});
  auto msg = message_of([&] { braid::load_module_tensors(*g, unknown, "w.safetensors", "fusion."); });
  EXPECT_NE(msg.find("w.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown tensor 'fusion.proj.7.weight'"), std::string::npos) << msg;

  auto missing = t;
  missing.erase("fusion.score.weight");
  msg = message_of([&] { braid::load_module_tensors(*g, missing, "w.safetensors", "fusion."); });
  EXPECT_NE(msg.find("'fusion.score.weight' is missing"), std::string::npos) << msg;

  auto shape = t;
  shape["fusion.att.weight"] = torch::zeros({3, 3});
  msg = message_of([&] { braid::load_module_tensors(*g, shape, "w.safetensors", "fusion."); });
  EXPECT_NE(msg.find("'fusion.att.weight' has shape [3, 3]"), std::string::npos) << msg;

  auto dtype = t;
  dtype["fusion.att.bias"] = dtype["fusion.att.bias"].to(torch::kFloat64);
  msg = message_of([&] { braid::load_module_tensors(*g, dtype, "w.safetensors", "fusion."); });
  EXPECT_NE(msg.find("'fusion.att.bias' has dtype"), std::string::npos) << msg;
}

// The `raw` encoder of early fusion: fixed-size pooled inputs, valid steps only, bag-of-words text.
TEST(EarlyFusion, RawEncoderPoolsOnlyValidStepsAndCountsTokens) {
  using braid::nn::encoder_registry;
  braid::nn::EncoderContext ctx;
  ctx.modality = "audio";
  ctx.n_mels = 2;
  auto audio = encoder_registry().make(Config::from_string("{name: raw, frames: 2}", "r"), ctx);
  EXPECT_EQ(audio->out_dim(), 4);
  EXPECT_TRUE(audio->parameters().empty());
  // one row of 6 frames, 4 valid: bins average frames {0,1} and {2,3}; the padding is ignored
  auto x = torch::tensor({1.f, 2.f, 3.f, 4.f, 100.f, 100.f, 10.f, 20.f, 30.f, 40.f, 100.f, 100.f}).view({1, 2, 6});
  braid::ModalityBatch mb{x, torch::tensor({4}, torch::kLong), torch::tensor({true})};
  auto a = audio->forward(mb);
  EXPECT_TRUE(torch::allclose(a, torch::tensor({{1.5f, 3.5f, 15.f, 35.f}})));

  ctx.modality = "text";
  ctx.vocab_size = 5;
  auto text = encoder_registry().make(Config::from_string("{name: raw}", "r"), ctx);
  braid::ModalityBatch tb{torch::tensor({{2, 2, 4, 0}, {0, 0, 0, 0}}, torch::kLong),
                                torch::tensor({3, 0}, torch::kLong), torch::tensor({true, false})};
  auto t = text->forward(tb);
  EXPECT_TRUE(torch::allclose(t, torch::tensor({{0.f, 0.f, 2.f / 3, 0.f, 1.f / 3}, {0.f, 0.f, 0.f, 0.f, 0.f}})));

  ctx.modality = "image";
  auto image = encoder_registry().make(Config::from_string("{name: raw, grid: 2}", "r"), ctx);
  braid::ModalityBatch ib{torch::arange(48, torch::kFloat).view({1, 3, 4, 4}), torch::ones({1}, torch::kLong),
                                torch::tensor({true})};
  auto im = image->forward(ib);
  ASSERT_EQ(im.sizes(), (std::vector<int64_t>{1, 12}));
  EXPECT_FLOAT_EQ(im[0][0].item<float>(), (0 + 1 + 4 + 5) / 4.f);
}

// ---------------------------------------------------------------- decision-level fusion
// `late_weighted`: each modality's head gives class log-probabilities; the fused output is the log of
// their mean weighted by softmax(late_weights) over the present modalities. Raw (parameter-free)
// encoders with one time bin and identity heads make each expert's logits the input itself, so the
// expected output is computed by hand below.
TEST(LateFusion, WeightedCombineMatchesHandComputedMixture) {
  braid::models::ModelContext ctx;
  ctx.modalities = {"audio", "series"};
  ctx.outputs = 3;
  ctx.task = braid::models::Task::Classify;
  braid::nn::EncoderContext a, s;
  a.modality = "audio";
  a.n_mels = 3;
  s.modality = "series";
  s.series_channels = 3;
  ctx.encoders["audio"] = a;
  ctx.encoders["series"] = s;
  auto cfg = Config::from_string(
      "{encoders: {audio: {name: raw, frames: 1}, series: {name: raw, frames: 1}}, fusion: {name: late_weighted}, "
      "head: {hidden: [], dropout: 0}}",
      "late");
  braid::models::FusionClassifierImpl model(cfg, ctx);
  model.eval();
  auto params = model.named_parameters();
  ASSERT_TRUE(params.contains("late_weights"));
  ASSERT_EQ(params["late_weights"].sizes(), (std::vector<int64_t>{2}));
  {
    torch::NoGradGuard ng;
    int heads = 0;
    for (auto& p : params) {
      if (p.key().rfind("modality_heads.", 0) != 0) continue;
      ++heads;
      if (p.key().find("weight") != std::string::npos) p.value().copy_(torch::eye(3));
      else p.value().zero_();
    }
    ASSERT_EQ(heads, 4);  // one linear layer (weight, bias) per modality
    params["late_weights"].copy_(torch::tensor({0.f, std::log(3.f)}));  // softmax -> {1/4, 3/4}
  }
  // expert distributions: audio {.5, .25, .25}, series {.1, .2, .7}; as logits, their logs
  const std::vector<float> pa = {0.5f, 0.25f, 0.25f}, ps = {0.1f, 0.2f, 0.7f};
  auto la = torch::log(torch::tensor(pa)), ls = torch::log(torch::tensor(ps));
  // three rows: both modalities; audio only; series only. Two time steps, both valid (the mean is the value).
  braid::Batch b;
  b.index = {0, 1, 2};
  auto pres_a = torch::tensor({true, true, false}), pres_s = torch::tensor({true, false, true});
  auto au = la.view({1, 3, 1}).expand({3, 3, 2}).clone() * pres_a.to(torch::kFloat).view({3, 1, 1});
  auto se = ls.view({1, 1, 3}).expand({3, 2, 3}).clone() * pres_s.to(torch::kFloat).view({3, 1, 1});
  b.mods["audio"] = {au, torch::tensor({2, 2, 0}, torch::kLong), pres_a};
  b.mods["series"] = {se, torch::tensor({2, 0, 2}, torch::kLong), pres_s};
  auto out = model.forward(b);
  // by hand: 1/4 * {.5, .25, .25} + 3/4 * {.1, .2, .7} = {.2, .2125, .5875}; a lone expert has weight 1
  auto want = torch::log(torch::tensor({{0.2f, 0.2125f, 0.5875f}, {0.5f, 0.25f, 0.25f}, {0.1f, 0.2f, 0.7f}}));
  EXPECT_TRUE(braid::test::AllClose(out, want, 1e-6, "late_weighted output"));
  EXPECT_TRUE(braid::test::AllClose(out.exp().sum(1), torch::ones({3}), 1e-6, "probabilities sum to 1"));

  // the gradient reaches the weights only where both experts are present: for row 0's class 2,
  // d(-log p2)/dw0 = -σ0σ1(pa2 - ps2) / p2 = -(3/16)(.25 - .7) / .5875, and the opposite for w1
  auto loss = -(out[0][2] + out[1][0] + out[2][1]);
  loss.backward();
  const double g0 = -(3.0 / 16) * (0.25 - 0.7) / 0.5875;
  EXPECT_TRUE(braid::test::AllClose(params["late_weights"].grad(), torch::tensor({g0, -g0}), 1e-6,
                                    "d loss / d late_weights"));

  // equal weights give the plain mean {.3, .225, .475} (late_mean's answer): the weights matter
  {
    torch::NoGradGuard ng;
    params["late_weights"].zero_();
    auto eq = model.forward(b);
    EXPECT_TRUE(braid::test::AllClose(eq[0], torch::log(torch::tensor({0.3f, 0.225f, 0.475f})), 1e-6, "equal weights"));
    EXPECT_TRUE(braid::test::AllClose(eq.slice(0, 1), want.slice(0, 1), 1e-6, "lone experts"));
  }
}
