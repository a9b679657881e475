// nn::FrozenFeatureCache (a frozen encoder's output per distinct input row, computed once) and
// `model.freeze` of fusion_classifier, which uses it.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "braid/core/batch.h"
#include "braid/core/config.h"
#include "braid/models/fusion_classifier.h"
#include "braid/nn/encoder.h"
#include "braid/nn/frozen_cache.h"
#include "test_util.h"

using braid::Config;
using braid::ModalityBatch;
using braid::test::max_diff;

namespace {

// text_bow wrapped to count the rows it encodes
class CountingEncoder : public braid::nn::EncoderImpl {
 public:
  explicit CountingEncoder(braid::nn::EncoderPtr inner) : inner_(std::move(inner)) {
    register_module("inner", inner_);
    out_dim_ = inner_->out_dim();
  }
  int64_t rows = 0;

 protected:
  torch::Tensor encode(const ModalityBatch& mb) override {
    rows += mb.data.size(0);
    return inner_->forward(mb);
  }

 private:
  braid::nn::EncoderPtr inner_;
};

braid::nn::EncoderContext text_ctx() {
  braid::nn::EncoderContext c;
  c.modality = "text";
  c.vocab_size = 50;
  return c;
}

std::shared_ptr<CountingEncoder> counting_text_encoder() {
  auto inner = braid::nn::encoder_registry().make(Config::from_string("{name: text_bow, embed: 8, dim: 4}", "t.yaml"),
                                                  text_ctx());
  auto enc = std::make_shared<CountingEncoder>(inner);
  enc->eval();
  return enc;
}

// rows of token ids padded to `width` (0 = pad)
ModalityBatch text_batch(const std::vector<std::vector<int64_t>>& rows, int64_t width, std::vector<bool> present = {}) {
  auto data = torch::zeros({static_cast<int64_t>(rows.size()), width}, torch::kLong);
  std::vector<int64_t> len;
  for (size_t i = 0; i < rows.size(); ++i) {
    for (size_t j = 0; j < rows[i].size(); ++j) data[static_cast<int64_t>(i)][static_cast<int64_t>(j)] = rows[i][j];
    len.push_back(static_cast<int64_t>(rows[i].size()));
  }
  if (present.empty()) present.assign(rows.size(), true);
  auto pres = torch::zeros({static_cast<int64_t>(rows.size())}, torch::kBool);
  for (size_t i = 0; i < present.size(); ++i) pres[static_cast<int64_t>(i)] = static_cast<bool>(present[i]);
  return ModalityBatch{data, torch::tensor(len, torch::kLong), pres};
}

}  // namespace

// The cache returns what the encoder returns; a row seen before (even padded to another width, in
// another position) is not encoded again; duplicates inside one batch are encoded once each time
// they miss, stored once.
TEST(FrozenFeatureCache, EqualsTheEncoderAndEncodesEachDistinctRowOnce) {
  torch::manual_seed(0);
  auto enc = counting_text_encoder();
  braid::nn::FrozenFeatureCache cache;
  auto b1 = text_batch({{3, 4, 5}, {6, 7}, {3, 4, 5}}, 5);
  auto want1 = enc->forward(b1);
  enc->rows = 0;
  auto got1 = cache.forward(*enc, b1);
  EXPECT_EQ(enc->rows, 3);
  EXPECT_EQ(cache.entries(), 2);
  EXPECT_LT(max_diff(got1, want1), 1e-6);

  // the same texts in another order and padding, plus one new text: only the new one is encoded
  auto b2 = text_batch({{6, 7}, {9}, {3, 4, 5}}, 8);
  auto want2 = enc->forward(b2);
  enc->rows = 0;
  auto got2 = cache.forward(*enc, b2);
  EXPECT_EQ(enc->rows, 1);
  EXPECT_EQ(cache.entries(), 3);
  EXPECT_EQ(cache.hits(), 2);
  EXPECT_EQ(cache.misses(), 4);
  EXPECT_LT(max_diff(got2, want2), 1e-6);
  EXPECT_FALSE(got2.requires_grad());

  // a prefix is a different text (the key is the valid tokens, not the padded row)
  enc->rows = 0;
  cache.forward(*enc, text_batch({{3, 4}}, 5));
  EXPECT_EQ(enc->rows, 1);
}

// Absent rows come out as zeros and are never stored; an all-hit batch runs no encoder at all.
TEST(FrozenFeatureCache, AbsentRowsAreZeroAndNotStored) {
  torch::manual_seed(1);
  auto enc = counting_text_encoder();
  braid::nn::FrozenFeatureCache cache;
  auto b = text_batch({{3, 4}, {5}}, 4, {true, false});
  auto got = cache.forward(*enc, b);
  EXPECT_EQ(cache.entries(), 1);
  EXPECT_EQ(got[1].abs().sum().item<double>(), 0.0);
  EXPECT_GT(got[0].abs().sum().item<double>(), 0.0);
  enc->rows = 0;
  auto again = cache.forward(*enc, b);
  EXPECT_EQ(enc->rows, 0);
  EXPECT_EQ(max_diff(again, got), 0.0);
}

// The memory bound: with room for no entry the cache stores nothing and still gives the encoder's
// output; with room for one entry it stops at one.
TEST(FrozenFeatureCache, MemoryBoundIsKept) {
  torch::manual_seed(2);
  auto enc = counting_text_encoder();
  auto b = text_batch({{3, 4, 5}, {6, 7}, {8}}, 4);
  auto want = enc->forward(b);
  braid::nn::FrozenFeatureCache none(0);
  EXPECT_LT(max_diff(none.forward(*enc, b), want), 1e-6);
  EXPECT_EQ(none.entries(), 0);
  // one entry: a 3-token key (24 bytes + 8 of shape) and a 4-float vector (16 bytes) = 48 bytes
  braid::nn::FrozenFeatureCache one(60);
  EXPECT_LT(max_diff(one.forward(*enc, b), want), 1e-6);
  EXPECT_EQ(one.entries(), 1);
  EXPECT_LE(one.bytes(), 60);
  enc->rows = 0;
  EXPECT_LT(max_diff(one.forward(*enc, b), want), 1e-6);
  EXPECT_EQ(enc->rows, 2);  // the two rows that did not fit are encoded again
}

// Caches with an identity share a process-wide store when the encoder's weights are the same too
// (two models freezing one imported tower): the second cache encodes nothing it already has. Other
// weights or another identity get their own store; the store outlives the first cache.
TEST(FrozenFeatureCache, SameIdentityAndWeightsShareOneStore) {
  torch::manual_seed(3);
  auto enc = counting_text_encoder();
  auto b = text_batch({{3, 4, 5}, {6, 7}}, 4);
  const std::string id = "name: text_bow # SameIdentityAndWeightsShareOneStore";
  {
    braid::nn::FrozenFeatureCache first(1 << 20, id);
    first.forward(*enc, b);
    EXPECT_EQ(enc->rows, 2);
  }  // the first model is gone; its entries stay for the next one
  braid::nn::FrozenFeatureCache second(1 << 20, id);
  enc->rows = 0;
  auto got = second.forward(*enc, b);
  EXPECT_EQ(enc->rows, 0);
  EXPECT_EQ(second.hits(), 2);
  EXPECT_EQ(second.entries(), 2);
  EXPECT_LT(max_diff(got, enc->forward(b)), 1e-6);

  // another identity: its own store
  braid::nn::FrozenFeatureCache other_id(1 << 20, id + " (other)");
  enc->rows = 0;
  other_id.forward(*enc, b);
  EXPECT_EQ(enc->rows, 2);

  // the same identity over other weights: its own store, and the new weights' output
  auto enc2 = counting_text_encoder();  // another random init
  braid::nn::FrozenFeatureCache third(1 << 20, id);
  auto got2 = third.forward(*enc2, b);
  EXPECT_EQ(enc2->rows, 2);
  EXPECT_LT(max_diff(got2, enc2->forward(b)), 1e-6);
  EXPECT_GT(max_diff(got2, got), 1e-4);
}

// fusion_classifier `freeze: [text]`: the text encoder has no trainable parameters, stays in
// evaluation mode when the model trains, and the model's output equals the unfrozen model's in
// evaluation (same weights); a name that is no encoder is an error naming the key.
TEST(FrozenFeatureCache, FusionClassifierFreezeKeepsTheEncoderFixed) {
  braid::models::ModelContext ctx;
  ctx.modalities = {"text"};
  ctx.outputs = 3;
  ctx.encoders["text"] = text_ctx();
  const std::string base = "{encoders: {text: {name: text_bow, embed: 8, dim: 4, dropout: 0.5}, "
                           "image: {name: image_cnn}}, head: {hidden: [], dropout: 0}";
  torch::manual_seed(3);
  braid::models::FusionClassifierImpl frozen(Config::from_string(base + ", freeze: [text, image]}", "f.yaml"), ctx);
  torch::manual_seed(3);
  braid::models::FusionClassifierImpl plain(Config::from_string(base + "}", "p.yaml"), ctx);
  int64_t trainable = 0;
  for (const auto& p : frozen.named_parameters())
    if (p.value().requires_grad()) {
      ++trainable;
      EXPECT_EQ(p.key().rfind("enc_text.", 0), std::string::npos) << p.key();
    }
  EXPECT_EQ(trainable, 2);  // the head's weight and bias
  frozen.train();
  for (const auto& m : frozen.named_modules("", /*include_self=*/false))
    if (m.key().rfind("enc_text", 0) == 0) EXPECT_FALSE(m.value()->is_training()) << m.key();
  braid::Batch batch;
  batch.mods["text"] = text_batch({{3, 4, 5}, {6}}, 4);
  plain.eval();
  auto want = plain.forward(batch);
  auto got = frozen.forward(batch);  // in training mode: the frozen encoder's dropout stays off
  EXPECT_LT(max_diff(got, want), 1e-6);

  try {
    braid::models::FusionClassifierImpl bad(Config::from_string(base + ", freeze: [txt]}", "b.yaml"), ctx);
    FAIL() << "freeze: [txt] was accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("b.yaml"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("freeze"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("txt"), std::string::npos) << e.what();
  }
}
