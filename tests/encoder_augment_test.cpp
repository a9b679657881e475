// Training-only augmentation inside encoders: audio_tcnn (SpecAugment-style frequency masks and
// time shifts, max pooling over valid frames) and text_bow's token dropout, embedding init and mlp: false.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "braid/core/batch.h"
#include "braid/core/config.h"
#include "braid/core/error.h"
#include "braid/nn/encoder.h"

using braid::Config;
using braid::ModalityBatch;
using braid::nn::encoder_registry;

namespace {

braid::nn::EncoderPtr make(const std::string& yaml, braid::nn::EncoderContext ctx) {
  return encoder_registry().make(Config::from_string(yaml, "t.yaml"), ctx);
}

braid::nn::EncoderContext audio_ctx(int64_t n_mels) {
  braid::nn::EncoderContext c;
  c.modality = "audio";
  c.n_mels = n_mels;
  return c;
}

braid::nn::EncoderContext text_ctx(int64_t vocab) {
  braid::nn::EncoderContext c;
  c.modality = "text";
  c.vocab_size = vocab;
  return c;
}

torch::Tensor emb_weight(const braid::nn::EncoderPtr& e) { return e->named_parameters()["emb.weight"]; }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// In evaluation the padding beyond a row's length never changes its features, and a row equals
// itself evaluated alone (max pooling ignores padded frames even when they are larger).
TEST(AudioTCNN, PaddingIsIgnoredAtEvaluation) {
  torch::manual_seed(0);
  auto enc = make("{name: audio_tcnn, channels: [8, 8, 8], kernel: 3, dim: 5, freq_mask: 4, time_shift: 3}",
                  audio_ctx(6));
  enc->eval();
  auto x = torch::randn({2, 6, 20});
  auto alone = enc->forward(ModalityBatch{x.slice(0, 0, 1).slice(2, 0, 11).clone(), torch::tensor({11}, torch::kLong),
                                          torch::tensor({true})});
  auto padded = x.clone();
  padded.index_put_({0, torch::indexing::Slice(), torch::indexing::Slice(11, 20)}, 1000.0);
  auto both = enc->forward(ModalityBatch{padded, torch::tensor({11, 20}, torch::kLong), torch::tensor({true, true})});
  ASSERT_EQ(both.sizes(), (std::vector<int64_t>{2, 5}));
  EXPECT_LT((both[0] - alone[0]).abs().max().item<double>(), 1e-4);
  // an absent row is zero
  auto absent = enc->forward(ModalityBatch{x, torch::tensor({20, 20}, torch::kLong), torch::tensor({true, false})});
  EXPECT_EQ(absent[1].abs().sum().item<double>(), 0.0);
}

// Training applies the augmentation (outputs change with the random draw), evaluation never does
// (two calls agree); with the augmentation switched off, a training-mode call in which BatchNorm
// sees the same batch is repeatable.
TEST(AudioTCNN, AugmentsOnlyInTraining) {
  torch::manual_seed(1);
  auto enc = make("{name: audio_tcnn, channels: [8], kernel: 3, dim: 4, freq_mask: 6, time_shift: 8}", audio_ctx(6));
  auto x = torch::randn({4, 6, 16});
  ModalityBatch mb{x, torch::tensor({16, 16, 12, 9}, torch::kLong), torch::ones({4}, torch::kBool)};
  enc->eval();
  EXPECT_TRUE(torch::equal(enc->forward(mb), enc->forward(mb)));
  enc->train();
  auto a = enc->forward(mb), b = enc->forward(mb);
  EXPECT_GT((a - b).abs().max().item<double>(), 1e-6) << "training draws no augmentation";

  auto plain = make("{name: audio_tcnn, channels: [8], kernel: 3, dim: 4}", audio_ctx(6));
  plain->train();
  EXPECT_LT((plain->forward(mb) - plain->forward(mb)).abs().max().item<double>(), 1e-6);
}

TEST(AudioTCNN, BadOptionsNameTheKey) {
  auto m = error_of([] { make("{name: audio_tcnn, kernel: 4}", audio_ctx(6)); });
  EXPECT_NE(m.find("kernel"), std::string::npos) << m;
  m = error_of([] { make("{name: audio_tcnn, pool: median}", audio_ctx(6)); });
  EXPECT_NE(m.find("pool"), std::string::npos) << m;
  m = error_of([] { make("{name: audio_tcnn, channels: [8, 0]}", audio_ctx(6)); });
  EXPECT_NE(m.find("channels"), std::string::npos) << m;
}

// Token dropout: evaluation is the plain masked mean (deterministic); training leaves tokens out
// (outputs vary); a row never loses all its tokens (finite, non-zero features even at p = 0.99).
TEST(TextBow, TokenDropoutOnlyInTrainingAndNeverEmptiesARow) {
  torch::manual_seed(2);
  braid::nn::EncoderContext c;
  c.modality = "text";
  c.vocab_size = 50;
  auto enc = make("{name: text_bow, embed: 8, dim: 6, dropout: 0.0, token_dropout: 0.5}", c);
  auto ids = torch::randint(4, 50, {3, 10}, torch::kLong);
  ModalityBatch mb{ids, torch::tensor({10, 6, 1}, torch::kLong), torch::ones({3}, torch::kBool)};
  enc->eval();
  EXPECT_TRUE(torch::equal(enc->forward(mb), enc->forward(mb)));
  enc->train();
  auto a = enc->forward(mb), b = enc->forward(mb);
  EXPECT_GT((a.slice(0, 0, 2) - b.slice(0, 0, 2)).abs().max().item<double>(), 1e-6);
  // the one-token row keeps its token whatever is drawn: its features equal evaluation's
  enc->eval();
  auto ev = enc->forward(mb);
  EXPECT_LT((a[2] - ev[2]).abs().max().item<double>(), 1e-6);

  auto heavy = make("{name: text_bow, embed: 8, dim: 6, dropout: 0.0, token_dropout: 0.99}", c);
  heavy->train();
  auto h = heavy->forward(mb);
  EXPECT_TRUE(torch::isfinite(h).all().item<bool>());
  auto m = error_of([&] { make("{name: text_bow, token_dropout: 1.0}", c); });
  EXPECT_NE(m.find("token_dropout"), std::string::npos) << m;
}

// text_bow's fastText options: `init: uniform` draws the embedding rows from U(-1/embed, 1/embed) with
// a zero padding row (torch's N(0, 1) stays the default), and `mlp: false` makes the encoder's output
// the masked mean of the embeddings itself.
TEST(TextBowOptions, UniformInitIsFastTextsAndNormalStaysTheDefault) {
  torch::manual_seed(0);
  auto u = emb_weight(make("{name: text_bow, embed: 16, dim: 8, init: uniform}", text_ctx(500)));
  EXPECT_LE(u.abs().max().item<double>(), 1.0 / 16 + 1e-7);
  // filled, not zero: U(-a, a) has std a / sqrt(3)
  EXPECT_NEAR(u.slice(0, 1).std().item<double>(), 1.0 / 16 / std::sqrt(3.0), 0.003);
  EXPECT_EQ(u[0].abs().max().item<double>(), 0.0);  // the padding row
  auto n = emb_weight(make("{name: text_bow, embed: 16, dim: 8}", text_ctx(500)));
  EXPECT_NEAR(n.slice(0, 1).std().item<double>(), 1.0, 0.05);
  EXPECT_EQ(n[0].abs().max().item<double>(), 0.0);
  auto m = error_of([] { make("{name: text_bow, init: xavier}", text_ctx(50)); });
  EXPECT_NE(m.find("init"), std::string::npos) << m;
  EXPECT_NE(m.find("xavier"), std::string::npos) << m;
}

// mlp: false: the output is the masked mean of the rows of the ids (padding beyond each length left
// out), of width embed, and the embedding is the encoder's only parameter.
TEST(TextBowOptions, WithoutMlpTheOutputIsTheMaskedMean) {
  torch::manual_seed(1);
  auto enc = make("{name: text_bow, embed: 6, mlp: false, token_dropout: 0.5}", text_ctx(40));
  EXPECT_EQ(enc->out_dim(), 6);
  EXPECT_EQ(enc->parameters().size(), 1u);
  auto ids = torch::tensor({{5, 7, 9, 0}, {11, 12, 0, 0}}, torch::kLong);
  ModalityBatch mb{ids, torch::tensor({3, 2}, torch::kLong), torch::ones({2}, torch::kBool)};
  enc->eval();
  auto got = enc->forward(mb);
  auto w = emb_weight(enc);
  auto want0 = (w[5] + w[7] + w[9]) / 3, want1 = (w[11] + w[12]) / 2;
  EXPECT_TRUE(torch::allclose(got[0], want0, 1e-6, 1e-6));
  EXPECT_TRUE(torch::allclose(got[1], want1, 1e-6, 1e-6));
  auto m = error_of([] { make("{name: text_bow, embed: 6, dim: 4, mlp: false}", text_ctx(40)); });
  EXPECT_NE(m.find("dim"), std::string::npos) << m;
  // the default keeps the MLP: another width, more parameters
  auto with = make("{name: text_bow, embed: 6, dim: 4}", text_ctx(40));
  EXPECT_EQ(with->out_dim(), 4);
  EXPECT_GT(with->parameters().size(), 1u);
}
