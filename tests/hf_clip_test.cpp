// CLIP / SigLIP / OpenCLIP import: parity with transformers 4.40.2 / open_clip 2.23.0 on the tiny
// random checkpoints of tests/fixtures/hf/clip (made by scripts/hf/make_clip_fixtures.py), the image
// preprocessing against the HF image processors, and the one-line errors of bad checkpoints.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <fstream>

#include "braid/core/error.h"
#include "braid/core/safetensors.h"
#include "braid/data/preprocess.h"
#include "braid/models/dual_tower.h"
#include "braid/run/hf_checkpoint.h"
#include "braid/run/hf_clip.h"
#include "braid/run/pipeline.h"
#include "braid/run/run_dir.h"
#include "test_util.h"

namespace {

using braid::TensorMap;
using braid::run::ClipImport;
using namespace braid::test;

const std::string kDir = std::string(BRAID_FIXTURES) + "/hf/clip";

struct Case {
  std::string name;
  ClipImport im;
  TensorMap ref;
};

Case load(const std::string& name) {
  Case c;
  c.name = name;
  if (name == "openclip")
    c.im = braid::run::convert_openclip(kDir + "/openclip/open_clip_model.safetensors",
                                        kDir + "/openclip/model_config.json");
  else
    c.im = braid::run::convert_hf_clip(braid::run::open_hf_checkpoint(kDir + "/" + name));
  c.ref = braid::read_safetensors(kDir + "/" + name + "_reference.safetensors");
  return c;
}

// Unnormalised features of both towers against the reference's, and the logit scale / bias.
void expect_parity(const std::string& name) {
  auto c = load(name);
  auto model = braid::run::clip_model(c.im);
  auto* dt = dynamic_cast<braid::models::DualTowerImpl*>(model.get());
  ASSERT_NE(dt, nullptr);
  torch::NoGradGuard ng;
  const auto& px = c.ref.at("pixel_values");
  braid::ModalityBatch img{px, torch::ones({px.size(0)}, torch::kLong), torch::ones({px.size(0)}, torch::kBool)};
  braid::ModalityBatch txt{c.ref.at("input_ids"), c.ref.at("lengths"), torch::ones({px.size(0)}, torch::kBool)};
  EXPECT_TRUE(AllClose(dt->project("image", img), c.ref.at("image_features"), 1e-4, name + " image features"));
  EXPECT_TRUE(AllClose(dt->project("text", txt), c.ref.at("text_features"), 1e-4, name + " text features"));
  // embed = the L2-normalised features
  namespace F = torch::nn::functional;
  auto want = F::normalize(c.ref.at("image_features"), F::NormalizeFuncOptions().dim(1));
  EXPECT_TRUE(AllClose(model->embed("image", img), want, 1e-5, name + " image embedding"));
  const auto own = braid::module_tensors(*model);
  EXPECT_EQ(own.at("logit_scale").item<float>(), c.ref.at("logit_scale").item<float>());
  if (c.ref.count("logit_bias")) EXPECT_EQ(own.at("bias").item<float>(), c.ref.at("logit_bias").item<float>());
}

TEST(HFClip, ClipParityWithTransformers) { expect_parity("clip"); }
TEST(HFClip, SiglipParityWithTransformers) { expect_parity("siglip"); }
TEST(HFClip, OpenClipParityWithOpenClip) { expect_parity("openclip"); }

// braid's preprocessing from the imported recipe equals the HF image processor (OpenCLIP: its transform).
TEST(HFClip, PreprocessingMatchesImageProcessor) {
  for (const std::string name : {"clip", "siglip", "openclip"}) {
    auto c = load(name);
    auto recipe = braid::Config::from_string(c.im.recipe_yaml, name);
    auto opt = braid::data::PreprocessOptions::from_config(recipe.at("data"));
    braid::data::Preprocessor pre(opt, {"image"}, nullptr);
    const auto& want = c.ref.at("pixel_values");
    int i = 0;
    for (const char* f : {"a", "b", "c"}) {
      auto got = pre.image(kDir + "/images/" + f + ".png");
      EXPECT_TRUE(AllClose(got, want[i++], 1e-5, name + " pixels of " + f + ".png"));
    }
  }
}

// `braid import hf` of the CLIP fixture is a run whose embeddings of PNG files and of strings (its
// tokenizer.json) equal transformers' normalised get_image_features / get_text_features.
TEST(HFClip, ImportedRunEmbedsLikeTransformers) {
  namespace F = torch::nn::functional;
  TempDir tmp("clip_run");
  const std::string out = tmp.path.string() + "/run";
  auto facts = braid::run::import_hf_clip(braid::run::open_hf_checkpoint(kDir + "/clip"), out);
  EXPECT_EQ(facts["imported"]["kind"], "clip");
  auto p = braid::run::open_run(out);
  const auto ref = braid::read_safetensors(kDir + "/clip_reference.safetensors");
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> px;
  for (const char* f : {"a", "b", "c"}) px.push_back(p.pre->image(kDir + "/images/" + f + ".png"));
  braid::ModalityBatch img{torch::stack(px), torch::ones({3}, torch::kLong), torch::ones({3}, torch::kBool)};
  EXPECT_TRUE(AllClose(p.model->embed("image", img),
                       F::normalize(ref.at("image_features"), F::NormalizeFuncOptions().dim(1)), 1e-5,
                       "run image embeddings of the PNGs"));
  auto tb = braid::run::text_batch(*p.pre, {"a photo of a cat", "Two dogs playing in the snow!", "a diagram"});
  const auto& want_ids = ref.at("string_ids");
  for (int64_t i = 0; i < 3; ++i) {
    const int64_t n = tb.lengths[i].item<int64_t>();
    EXPECT_TRUE(torch::equal(tb.data[i].slice(0, 0, n), want_ids[i].slice(0, 0, n))) << "row " << i;
  }
  EXPECT_TRUE(AllClose(p.model->embed("text", tb),
                       F::normalize(ref.at("string_features"), F::NormalizeFuncOptions().dim(1)), 1e-5,
                       "run text embeddings of the strings"));
  ExpectInputError([&] { braid::run::import_hf_clip(braid::run::open_hf_checkpoint(kDir + "/clip"), out); }, out,
                   "already a braid run");
}

TEST(HFClip, RecipeRecordsPreprocessing) {
  auto c = load("clip");
  EXPECT_NE(c.im.recipe_yaml.find("resize: shortest, resize_size: 34, filter: bicubic"), std::string::npos)
      << c.im.recipe_yaml;
  EXPECT_NE(c.im.recipe_yaml.find("mean: [0.48145466, 0.4578275, 0.40821073]"), std::string::npos) << c.im.recipe_yaml;
  auto s = load("siglip");
  EXPECT_NE(s.im.recipe_yaml.find("size: 28, resize: square"), std::string::npos) << s.im.recipe_yaml;
  EXPECT_NE(s.im.recipe_yaml.find("loss: siglip"), std::string::npos);
}

TEST(HFClip, BadCheckpointsAreOneLineErrors) {
  auto ck = braid::run::open_hf_checkpoint(kDir + "/clip");
  {
    auto bad = ck;
    bad.tensors["text_model.encoder.layers.1.mlp.fc1.weight"] = torch::zeros({37, 25});
    ExpectInputError([&] { braid::run::convert_hf_clip(bad); }, kDir + "/clip",
                     "text_model.encoder.layers.1.mlp.fc1.weight");
  }
  {
    auto bad = ck;
    bad.tensors.erase("visual_projection.weight");
    ExpectInputError([&] { braid::run::convert_hf_clip(bad); }, kDir + "/clip", "visual_projection.weight");
  }
  {
    auto bad = ck;
    bad.tensors["vision_model.extra.weight"] = torch::zeros({2});
    ExpectInputError([&] { braid::run::convert_hf_clip(bad); }, kDir + "/clip", "vision_model.extra.weight");
  }
  {
    auto bad = ck;
    bad.config["vision_config"]["hidden_act"] = "swish";
    ExpectInputError([&] { braid::run::convert_hf_clip(bad); }, "config.json", "hidden_act");
  }
  {
    auto bad = ck;
    bad.config["model_type"] = "blip";
    ExpectInputError([&] { braid::run::convert_hf_clip(bad); }, "config.json", "model_type");
  }
  auto sk = braid::run::open_hf_checkpoint(kDir + "/siglip");
  {
    auto bad = sk;
    bad.config["vision_config"]["vision_use_head"] = false;
    ExpectInputError([&] { braid::run::convert_hf_clip(bad); }, "config.json", "vision_use_head");
  }
}

TEST(HFClip, OpenClipUnsupportedConfigKeysAreNamed) {
  TempDir tmp("openclip_cfg");
  int n = 0;
  auto write = [&](const std::string& text) { return tmp.file("cfg" + std::to_string(n++) + ".json", text); };
  const std::string w = kDir + "/openclip/open_clip_model.safetensors";
  auto p = write(R"({"embed_dim": 20, "vision_cfg": {"image_size": 30, "layers": 2, "width": 32, "patch_size": 6,
    "head_width": 8, "mlp_ratio": 2.0, "attentional_pool": true}, "text_cfg": {"context_length": 16,
    "vocab_size": 99, "width": 24, "heads": 4, "layers": 2}})");
  ExpectInputError([&] { braid::run::convert_openclip(w, p); }, p, "vision_cfg.attentional_pool");
  p = write(R"({"embed_dim": 20, "vision_cfg": {"image_size": 30, "layers": 2, "width": 32, "patch_size": 6,
    "head_width": 8, "mlp_ratio": 2.0}, "text_cfg": {"context_length": 16, "vocab_size": 99, "width": 24,
    "heads": 4, "layers": 3}})");
  ExpectInputError([&] { braid::run::convert_openclip(w, p); }, w, "transformer.resblocks.2.");
  p = write(R"({"embed_dim": 16, "vision_cfg": {"image_size": 30, "layers": 2, "width": 32, "patch_size": 6,
    "head_width": 8, "mlp_ratio": 2.0}, "text_cfg": {"context_length": 16, "vocab_size": 99, "width": 24,
    "heads": 4, "layers": 2}})");
  ExpectInputError([&] { braid::run::convert_openclip(w, p); }, w, "text_projection");
}

}  // namespace

namespace {

// The CLI: `braid import openclip` with a tokenizer larger than the text tower is exit 2 and one line; a
// SigLIP folder without a tokenizer names what it looked for.
TEST(HFClip, ImportCommandsRefuseWithOneLine) {
  TempDir tmp("clip_cli");
  auto r = run_braid("import openclip " + q(kDir + "/openclip/open_clip_model.safetensors") + " --model-config " +
                     q(kDir + "/openclip/model_config.json") + " --tokenizer " + q(kDir + "/clip/tokenizer.json") +
                     " --out " + q(tmp.path.string() + "/run"));
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("the tokenizer has 500 ids, the model's token embedding only 99"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  r = run_braid("import hf " + q(kDir + "/siglip") + " --out " + q(tmp.path.string() + "/run2"));
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("no tokenizer to read text with"), std::string::npos) << r.err;
}

}  // namespace

namespace {

// The new data.image keys are checked with the key named.
TEST(HFClip, ImageRecipeKeysAreChecked) {
  auto bad = [](const std::string& image) {
    auto cfg = braid::Config::from_string("data:\n  image: " + image + "\n", "r.yaml");
    return [cfg] { braid::data::PreprocessOptions::from_config(cfg.at("data")); };
  };
  ExpectInputError(bad("{size: 30, filter: lanczos}"), "r.yaml", "data.image.filter");
  ExpectInputError(bad("{size: 30, resize: longest}"), "r.yaml", "data.image.resize");
  ExpectInputError(bad("{size: 30, resize: shortest, resize_size: 20}"), "r.yaml", "data.image.resize_size");
  // shortest side then the centre crop: a 40x52 image -> 34x44 -> rows 5..34 of the resized image
  braid::data::RawImage img{40, 52, std::vector<uint8_t>(40 * 52 * 3)};
  for (size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = static_cast<uint8_t>((i * 7) % 251);
  braid::data::ImageOptions o;
  o.size = 30;
  o.resize = "shortest";
  o.resize_size = 34;
  o.filter = "bicubic";
  auto x = braid::data::fit_image(img, o);
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{3, 30, 30}));
  auto full = braid::data::resize_bicubic_u8(img, 44, 34);
  EXPECT_EQ(full.width, 34);
  EXPECT_EQ(full.height, 44);
  // pixel (row 0, col 0) of the crop is (row 7, col 2) of the resized image: top (44-30)//2, left (34-30)//2
  EXPECT_FLOAT_EQ(x[0][0][0].item<float>(), float(full.rgb[(7 * 34 + 2) * 3]) / 255.0f);
}

}  // namespace
