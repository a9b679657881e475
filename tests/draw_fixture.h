// The tiny text -> image recipes that tests/draw_cli_test.cpp and tests/drawing_eval_test.cpp train on the toy
// data (make_toy_dataset with image + text): a vq_image tokenizer of 16x16 images -> 4x4 codes of a 32-entry
// codebook, and a 1-layer early_fusion LM over text (captions cut to 2 tokens) + those codes, initialised from it.
#pragma once

#include <string>

namespace braid::test {

inline const char* kTinyVQRecipe = R"(
task: align
threads: 1
data: {image: {size: 16}}
model:
  name: vq_image
  modalities: [image]
  vq: {channels: [8, 8], res_blocks: 0, dim: 8, codes: 32, reset_after: 10, recent: 4}
train: {epochs: 2, batch_size: 8, lr: 0.01}
)";

// The early_fusion recipe with init_from: vq_run; model_extra (whole lines, indented two spaces, e.g.
// "  cond_drop: 0.1\n") goes at the end of the model section.
inline std::string tiny_t2i_recipe(const std::string& vq_run, const std::string& model_extra = "") {
  return R"(
task: generate
threads: 1
data: {image: {size: 16}, text: {vocab: 60, view: en, max_tokens: 2}}
model:
  name: early_fusion
  modalities: [image, text]
  init_from: )" + vq_run + R"(
  vq: {channels: [8, 8], res_blocks: 0, dim: 8, codes: 32, reset_after: 10, recent: 4}
  lm: {dim: 32, layers: 1, heads: 4, kv_heads: 2, hidden: 48, max_seq: 40}
)" + model_extra + R"(train: {epochs: 2, batch_size: 8, lr: 0.01}
)";
}

}  // namespace braid::test
