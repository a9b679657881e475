// The VQ image tokenizer (models/vq_image.h) and the early-fusion drawing model (models/early_fusion.h):
// round-trip shapes, dead-code reset after a constructed collapse, the rotation trick, PSNR/SSIM, and
// the drawing loop: guidance weight 0 equals the unguided logits, cached and uncached sampling agree, and
// the sampling loop's logits equal the training forward's.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "braid/core/config.h"
#include "braid/core/error.h"
#include "braid/models/early_fusion.h"
#include "braid/models/vq_image.h"
#include "braid/objectives/codebook.h"
#include "test_util.h"

using namespace braid;
using namespace braid::models;
using braid::test::AllClose;

namespace {

nn::EncoderContext image_context(int64_t size = 32) {
  nn::EncoderContext e;
  e.modality = "image";
  e.image_size = size;
  e.image_mean = {0.5, 0.5, 0.5};
  e.image_std = {0.5, 0.5, 0.5};
  return e;
}

VQTokenizer small_vq(int64_t size = 32) {
  auto cfg = Config::from_string("{channels: [8, 16], dim: 8, codes: 32, reset_after: 5, recent: 2}", "vq.yaml");
  return VQTokenizer(VQOptions::from_config(cfg, image_context(size)));
}

std::shared_ptr<EarlyFusionImpl> small_fusion() {
  ModelContext ctx;
  ctx.modalities = {"image", "text"};
  ctx.task = Task::Generate;
  ctx.encoders["image"] = image_context(16);
  nn::EncoderContext t;
  t.modality = "text";
  t.vocab_size = 20;
  ctx.encoders["text"] = t;
  ctx.chat.pad = 0, ctx.chat.bos = 2, ctx.chat.eos = 3;
  auto cfg = Config::from_string(
      "name: early_fusion\nmodalities: [image, text]\n"
      "vq: {channels: [8, 8], dim: 8, codes: 16}\n"
      "lm: {dim: 32, layers: 2, heads: 4, kv_heads: 2, hidden: 64, max_seq: 40, tie_embeddings: true}\n",
      "ef.yaml");
  auto m = std::make_shared<EarlyFusionImpl>(cfg, ctx);
  m->eval();
  return m;
}

}  // namespace

TEST(VQImage, RoundTripShapes) {
  torch::manual_seed(0);
  auto vq = small_vq();
  auto x = torch::rand({3, 3, 32, 32}) * 2 - 1;
  auto codes = vq->codes(x);
  EXPECT_EQ(codes.sizes(), (std::vector<int64_t>{3, 64}));  // 8x8 grid over 32x32
  EXPECT_GE(codes.min().item<int64_t>(), 0);
  EXPECT_LT(codes.max().item<int64_t>(), 32);
  auto back = vq->decode_codes(codes);
  EXPECT_EQ(back.sizes(), x.sizes());
  auto px = vq->to_pixels(back);
  EXPECT_GE(px.min().item<float>(), 0.f);
  EXPECT_LE(px.max().item<float>(), 1.f);
  // 64x64 images: 16x16 codes
  auto big = small_vq(64);
  EXPECT_EQ(big->codes(torch::zeros({1, 3, 64, 64})).sizes(), (std::vector<int64_t>{1, 256}));
  // bad input: a wrong number of codes, ids out of range, a wrong image size
  EXPECT_THROW(vq->decode_codes(torch::zeros({1, 63}, torch::kLong)), InputError);
  EXPECT_THROW(vq->decode_codes(torch::full({1, 64}, 32, torch::kLong)), InputError);
  EXPECT_THROW(vq->codes(torch::zeros({1, 3, 16, 16})), InputError);
}

TEST(VQImage, RecipeErrorsNameTheKey) {
  auto bad = [](const std::string& yaml) {
    try {
      VQOptions::from_config(Config::from_string(yaml, "vq.yaml"), image_context());
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(bad("{channels: [8, 8, 8, 8, 8, 8]}").find("channels"), std::string::npos);
  EXPECT_NE(bad("{codes: 1}").find("codes"), std::string::npos);
  EXPECT_NE(bad("{reset_after: 5, recent: 5}").find("recent"), std::string::npos);
  EXPECT_NE(bad("{decay: 1.5}").find("decay"), std::string::npos);
}

TEST(VQImage, DeadCodeResetRestoresUsageAfterCollapse) {
  torch::manual_seed(1);
  auto run = [](int64_t reset_after) {
    objectives::CodebookOptions o;
    o.codes = 16;
    o.dim = 4;
    o.mm_ema = false;
    o.reset_from = "features";
    o.reset_after = reset_after;
    o.recent = reset_after > 0 ? 2 : 10;
    objectives::SharedCodebook cb(o);
    auto first = torch::randn({1, 64, 4});
    cb->update({first}, {cb->assign(first)});  // the first update seeds the codes from the vectors
    {
      torch::NoGradGuard ng;  // then a collapse: every code at the same far point, so code 0 wins every vector
      const_cast<torch::Tensor&>(cb->embedding()).fill_(10.0);
      const_cast<torch::Tensor&>(cb->ema_sum()).fill_(10.0);
    }
    std::vector<int64_t> used;
    for (int step = 0; step < 30; ++step) {
      auto s = torch::randn({1, 64, 4});  // features spread around the origin
      auto idx = cb->assign(s);
      used.push_back(objectives::code_stats(idx, 16).used);
      cb->update({s}, {idx});
    }
    return std::make_pair(used, cb->live_codes());
  };
  auto [collapsed, live_off] = run(0);
  EXPECT_EQ(collapsed.front(), 1);
  EXPECT_LE(collapsed.back(), 2) << "without reset the collapse stays";
  EXPECT_LE(live_off, 2);
  auto [restored, live_on] = run(5);
  EXPECT_EQ(restored.front(), 1);
  EXPECT_GE(restored.back(), 12) << "reset codes drawn from the features win assignments again";
  EXPECT_GE(live_on, 12);
}

TEST(VQImage, ResetCodesAreNotLiveUntilAssigned) {
  objectives::CodebookOptions o;
  o.codes = 8;
  o.dim = 2;
  o.mm_ema = false;
  o.reset_from = "features";
  o.reset_after = 3;
  o.recent = 1;
  objectives::SharedCodebook cb(o);
  // every feature is the same vector: one code wins, the others are reset but never assigned
  for (int i = 0; i < 10; ++i) {
    auto s = torch::ones({1, 4, 2});
    cb->update({s}, {cb->assign(s)});
  }
  EXPECT_EQ(cb->live_codes(), 1) << "re-seeded codes must not count as live (the collapse they hide)";
}

TEST(VQImage, RotationTrickKeepsTheValueAndRotatesTheGradient) {
  auto cfg = Config::from_string("{channels: [8], dim: 3, codes: 4, rotation: true}", "vq.yaml");
  VQTokenizer vq(VQOptions::from_config(cfg, image_context(8)));
  auto s = torch::tensor({{1.0f, 0.0f, 0.0f}}).requires_grad_();
  auto q = torch::tensor({{0.0f, 2.0f, 0.0f}});
  auto out = vq->pass_gradient(s, q);
  EXPECT_TRUE(AllClose(out.detach(), q, 1e-6, "value"));
  auto g = torch::tensor({{0.0f, 1.0f, 0.0f}});
  (out * g).sum().backward();
  // λ = 2; R maps e_x to e_y, so d<g, λ R s>/ds = λ Rᵀ g = 2 e_x
  EXPECT_TRUE(AllClose(s.grad(), torch::tensor({{2.0f, 0.0f, 0.0f}}), 1e-5, "rotated gradient"));
  // straight-through for comparison: the gradient passes unchanged
  auto st = small_vq();
  auto s2 = torch::tensor({{1.0f, 0.0f, 0.0f}}).requires_grad_();
  (st->pass_gradient(s2, q) * g).sum().backward();
  EXPECT_TRUE(AllClose(s2.grad(), g, 1e-6, "straight-through"));
}

TEST(VQImage, PsnrAndSsim) {
  auto x = torch::rand({2, 3, 32, 32});
  EXPECT_NEAR(ssim(x, x).mean().item<double>(), 1.0, 1e-5);
  auto y = (x + 0.1).clamp(0, 1);
  auto mse = (x - y).pow(2).flatten(1).mean(1);
  EXPECT_TRUE(AllClose(psnr(x, y), 10 * torch::log10(1.0 / mse), 1e-4, "psnr"));
  EXPECT_LT(ssim(x, torch::rand({2, 3, 32, 32})).mean().item<double>(), 0.2);
}

TEST(EarlyFusionDraw, GuidanceWeightZeroEqualsUnguidedLogits) {
  torch::manual_seed(2);
  auto m = small_fusion();
  ModelImpl::DrawRequest r;
  r.prompts = {{5, 6, 7}, {9}};
  r.per_prompt = 2;
  auto codes = torch::randint(16, {4, 16}, torch::kLong);
  auto plain = m->code_logits(r, codes);
  auto with_uncond = m->code_logits(r, codes, /*force_uncond=*/true);
  EXPECT_EQ(plain.sizes(), (std::vector<int64_t>{4, 16, 16}));
  EXPECT_TRUE(AllClose(with_uncond, plain, 1e-5, "w = 0"));
  // w > 0 moves the logits away from the conditional ones: cond + w (cond - uncond)
  r.guidance = 2.0;
  auto guided = m->code_logits(r, codes);
  EXPECT_GT((guided - plain).abs().max().item<double>(), 1e-3);
  // the sampling loop's conditional logits are those of the training forward (one full pass)
  auto text = torch::tensor({{5, 6, 7}, {5, 6, 7}, {9, 0, 0}, {9, 0, 0}}, torch::kLong);
  auto lengths = torch::tensor({3, 3, 1, 1}, torch::kLong);
  auto teacher = m->teacher_code_logits(text, lengths, codes);
  EXPECT_TRUE(AllClose(plain, teacher, 1e-4, "sampling loop vs training forward"));
}

TEST(EarlyFusionDraw, CachedAndUncachedSamplingAgree) {
  torch::manual_seed(3);
  auto m = small_fusion();
  ModelImpl::DrawRequest r;
  r.prompts = {{5, 6}, {8, 9, 10, 11}};
  r.per_prompt = 2;
  r.guidance = 3.0;
  r.seed = 7;
  auto a = m->draw_codes(r);
  r.use_cache = false;
  auto b = m->draw_codes(r);
  EXPECT_TRUE(torch::equal(a, b));
  auto codes = torch::randint(16, {4, 16}, torch::kLong);
  auto lu = m->code_logits(r, codes);
  r.use_cache = true;
  auto lc = m->code_logits(r, codes);
  EXPECT_TRUE(AllClose(lc, lu, 1e-4, "cached vs uncached logits"));
  // same seed, same images; pixels in [0, 1] at the tokenizer's size
  auto img = m->draw(r);
  EXPECT_EQ(img.sizes(), (std::vector<int64_t>{4, 3, 16, 16}));
  EXPECT_TRUE(torch::equal(img, m->draw(r)));
  // bad requests
  r.prompts = {{25}};
  EXPECT_THROW(m->draw(r), InputError);
  r.prompts = {};
  EXPECT_THROW(m->draw(r), InputError);
}
