// Uni-Code objectives: shared VQ codebook (assignment, straight-through, commitment, EMA and MM-EMA
// updates, dead-code reset, stats), CLUB, InfoNCE / Cross-CPC and L_cmcm against the golden fixtures
// of scripts/make_unicode_goldens.py (float32 vs float64 references, max abs diff <= 1e-5).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "braid/core/safetensors.h"
#include "braid/objectives/club.h"
#include "braid/objectives/cmcm.h"
#include "braid/objectives/codebook.h"
#include "braid/objectives/cross_cpc.h"
#include "test_util.h"

using namespace braid;
using namespace braid::objectives;
using braid::test::AllClose;

namespace {

const std::string kDir = std::string(BRAID_FIXTURES) + "/unicode/";
constexpr double kTol = 1e-5;

TensorMap fixture(const std::string& name) { return read_safetensors(kDir + name); }

// Tensors of `t` whose names start with `prefix`, the prefix removed.
TensorMap strip(const TensorMap& t, const std::string& prefix) {
  TensorMap out;
  for (const auto& [k, v] : t)
    if (k.rfind(prefix, 0) == 0) out[k.substr(prefix.size())] = v;
  return out;
}

SharedCodebook codebook_from(const torch::Tensor& e, bool mm = true, const std::string& teacher = "mean") {
  CodebookOptions o;
  o.codes = e.size(0);
  o.dim = e.size(1);
  o.mm_ema = mm;
  o.teacher = teacher;
  o.reset_after = 0;
  SharedCodebook cb(o);
  torch::NoGradGuard ng;
  const_cast<torch::Tensor&>(cb->embedding()).copy_(e);
  return cb;
}

}  // namespace

TEST(UnicodeVQ, AssignmentStraightThroughAndCommitmentMatchGolden) {
  auto f = fixture("vq.safetensors");
  for (int M : {2, 3}) {
    const std::string p = "m" + std::to_string(M) + "_";
    auto cb = codebook_from(f.at(p + "codebook"));
    std::vector<torch::Tensor> s, st, codes;
    torch::Tensor total = torch::zeros({});
    for (int m = 0; m < M; ++m) {
      s.push_back(f.at(p + "s." + std::to_string(m)).clone().requires_grad_());
      auto q = cb->quantize(s.back());
      EXPECT_TRUE(torch::equal(q.index, f.at(p + "index." + std::to_string(m)))) << p << m;
      EXPECT_TRUE(AllClose(q.st, f.at(p + "st." + std::to_string(m)).to(torch::kFloat), kTol, p + "st"));
      st.push_back(q.st);
      codes.push_back(q.codes);
      total = total + (q.st * f.at(p + "g." + std::to_string(m))).sum();
    }
    auto commit = cb->commitment(s, codes);
    EXPECT_NEAR(commit.item<double>(), f.at(p + "commit").item<double>(), kTol);
    (total + commit).backward();
    for (int m = 0; m < M; ++m)
      EXPECT_TRUE(AllClose(s[m].grad(), f.at(p + "grad." + std::to_string(m)).to(torch::kFloat), kTol, p + "grad"));
  }
}

TEST(UnicodeVQ, EmaAndMmEmaUpdatesMatchGoldenOverThreeSteps) {
  auto f = fixture("ema.safetensors");
  struct Case {
    std::string name;
    int M;
    bool mm;
    std::string teacher;
  };
  for (const auto& c : {Case{"m2_mean_", 2, true, "mean"}, Case{"m3_mean_", 3, true, "mean"},
                        Case{"m3_attention_", 3, true, "attention"}, Case{"m3_plain_", 3, false, "mean"}}) {
    auto cb = codebook_from(f.at(c.name + "embedding0"), c.mm, c.teacher);
    {
      torch::NoGradGuard ng;
      const_cast<torch::Tensor&>(cb->ema_count()).copy_(f.at(c.name + "ema_count0"));
      const_cast<torch::Tensor&>(cb->ema_sum()).copy_(f.at(c.name + "ema_sum0"));
    }
    for (int step = 0; step < 3; ++step) {
      std::vector<torch::Tensor> s, idx;
      for (int m = 0; m < c.M; ++m) s.push_back(f.at(c.name + "s." + std::to_string(step) + "." + std::to_string(m)));
      for (auto& x : s) idx.push_back(cb->assign(x));
      cb->update(s, idx);
    }
    EXPECT_TRUE(AllClose(cb->ema_count(), f.at(c.name + "ema_count").to(torch::kFloat), kTol, c.name + "count"));
    EXPECT_TRUE(AllClose(cb->ema_sum(), f.at(c.name + "ema_sum").to(torch::kFloat), kTol, c.name + "sum"));
    EXPECT_TRUE(AllClose(cb->embedding(), f.at(c.name + "embedding").to(torch::kFloat), kTol, c.name + "embedding"));
  }
  // MM-EMA must differ from the plain update on the same inputs (the mixing is not a no-op)
  auto a = f.at("m3_mean_embedding"), b = f.at("m3_plain_embedding");
  EXPECT_GT((a - b).abs().max().item<double>(), 1e-3);
}

TEST(UnicodeVQ, DeadCodesAreResetNearRecentlyUsedCodesAndStatsAreCounted) {
  torch::manual_seed(0);
  CodebookOptions o;
  o.codes = 8;
  o.dim = 4;
  o.reset_after = 3;
  o.recent = 2;
  SharedCodebook cb(o);
  auto x = torch::randn({2, 5, 4});
  int64_t resets = 0;
  for (int i = 0; i < 4; ++i) {
    std::vector<torch::Tensor> s{x, x + 0.01};
    std::vector<torch::Tensor> idx{cb->assign(s[0]), cb->assign(s[1])};
    cb->update(s, idx);
    resets += cb->last_resets();
  }
  EXPECT_GT(resets, 0);
  EXPECT_EQ(cb->live_codes(), 8);  // reset codes count as just used
  // every code is now within 1/1024 (per element) of some code that was in use
  auto idx = cb->assign(x);
  auto st = code_stats(idx, 8);
  EXPECT_GE(st.used, 1);
  EXPECT_GE(st.perplexity, 1.0);
  EXPECT_LE(st.perplexity, static_cast<double>(st.used) + 1e-9);
  // perplexity of a uniform assignment over 4 codes is 4
  EXPECT_NEAR(code_stats(torch::tensor({0, 1, 2, 3, 0, 1, 2, 3}), 8).perplexity, 4.0, 1e-9);
  // agreement: row modes [1, 2] vs [1, 3] -> 0.5
  auto a = torch::tensor({1, 1, 0, 2, 2, 0}).reshape({2, 3}), b = torch::tensor({1, 0, 1, 3, 3, 2}).reshape({2, 3});
  EXPECT_DOUBLE_EQ(code_agreement(a, b, 8), 0.5);
  // buffers are registered (checkpoints keep them)
  std::set<std::string> names;
  for (const auto& kv : cb->named_buffers()) names.insert(kv.key());
  for (const char* n : {"embedding", "ema_count", "ema_sum", "last_used", "updates"}) EXPECT_TRUE(names.count(n)) << n;
}

TEST(UnicodeClub, EstimateLoglikAndGradientsMatchGolden) {
  auto f = fixture("club.safetensors");
  ClubOptions o;
  o.x_dim = 5;
  o.y_dim = 4;
  o.hidden = 6;
  Club club(o);
  TensorMap w;
  for (const char* n : {"mu1", "mu2", "logvar1", "logvar2"})
    for (const char* k : {".weight", ".bias"}) w[std::string(n) + k] = f.at(std::string(n) + k);
  load_module_tensors(*club, w, "club.safetensors");
  auto x = f.at("x").clone().requires_grad_(), y = f.at("y").clone().requires_grad_();
  auto est = club->estimate(x, y, true);
  EXPECT_NEAR(est.item<double>(), f.at("estimate").item<double>(), kTol);
  EXPECT_NEAR(club->loglik(x, y).item<double>(), f.at("loglik").item<double>(), kTol);
  est.backward();
  EXPECT_TRUE(AllClose(x.grad(), f.at("grad_x").to(torch::kFloat), kTol, "grad_x"));
  EXPECT_TRUE(AllClose(y.grad(), f.at("grad_y").to(torch::kFloat), kTol, "grad_y"));
  for (const auto& p : club->parameters()) EXPECT_FALSE(p.grad().defined());  // detached: θ is not an encoder target
  // inner steps raise the log-likelihood and leave no gradient behind
  double before = club->loglik(x.detach(), y.detach()).item<double>();
  club->fit(x, y);
  EXPECT_GT(club->loglik(x.detach(), y.detach()).item<double>(), before);
  for (const auto& p : club->parameters()) EXPECT_FALSE(p.grad().defined());
}

TEST(UnicodeCPC, InfoNceAndCrossCpcMatchGolden) {
  auto f = fixture("cpc.safetensors");
  EXPECT_NEAR(info_nce(f.at("nce.pred"), f.at("nce.target")).item<double>(), f.at("nce.expected").item<double>(), kTol);
  CrossCPCOptions o;
  o.modalities = 3;
  o.dim = 6;
  o.context = 7;
  o.horizon = 2;
  CrossCPC cpc(o);
  auto w = strip(f, "cpc.");
  TensorMap params;
  for (const auto& [k, v] : w)
    if (k.rfind("lstms.", 0) == 0 || k.rfind("heads.", 0) == 0) params[k] = v;
  load_module_tensors(*cpc, params, "cpc.safetensors");
  std::vector<torch::Tensor> s;
  for (int m = 0; m < 3; ++m) s.push_back(w.at("s." + std::to_string(m)));
  auto loss = cpc->forward(s);
  EXPECT_NEAR(loss.item<double>(), f.at("cpc.expected").item<double>(), kTol);
  loss.backward();
  for (const auto& p : cpc->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
  }
}

TEST(UnicodeCmcm, LossAndGradientMatchGolden) {
  auto f = fixture("cmcm.safetensors");
  std::vector<torch::Tensor> s;
  for (int m = 0; m < 3; ++m) s.push_back(f.at("s." + std::to_string(m)).clone().requires_grad_());
  auto loss = cmcm_loss(s, f.at("codebook"));
  EXPECT_NEAR(loss.item<double>(), f.at("expected").item<double>(), kTol);
  loss.backward();
  for (int m = 0; m < 3; ++m)
    EXPECT_TRUE(AllClose(s[m].grad(), f.at("grad." + std::to_string(m)).to(torch::kFloat), kTol, "cmcm grad"));
}
