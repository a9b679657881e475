// braid/nn/encoders/text_bow.h — bag of sub-word embeddings.
#pragma once

#include <torch/nn/modules/embedding.h>

#include <string>

#include "braid/core/config.h"
#include "braid/nn/blocks.h"
#include "braid/nn/encoder.h"

namespace braid::nn {

struct TextBowOptions {
  int64_t embed = 128;   // embedding width
  int64_t dim = 128;     // output width
  double dropout = 0.1;  // dropout inside the MLP
  double token_dropout = 0.0;  // training only: each token left out of the mean with this probability
                               // (a row keeps all its tokens when every one would be dropped)
  bool mlp = true;  // false: the masked mean itself is the output (fastText: the head reads the mean; dim = embed)
  std::string init = "normal";  // embedding rows: "normal" N(0, 1) (torch's), "uniform" U(-1/embed, 1/embed) (fastText's)
  static TextBowOptions from_config(const Config& c);
};

// ids [B, L] -> Embedding (padding id 0) -> masked mean (in training over the tokens token dropout
// keeps) -> MLP(embed -> dim -> dim), or no MLP (mlp: false).
class TextBowImpl : public EncoderImpl {
 public:
  TextBowImpl(TextBowOptions o, const EncoderContext& ctx);
  TextBowOptions options;

 protected:
  torch::Tensor encode(const ModalityBatch& mb) override;

 private:
  torch::nn::Embedding emb_{nullptr};
  MLP mlp_{nullptr};
};

}  // namespace braid::nn
