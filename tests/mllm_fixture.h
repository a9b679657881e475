// The tiny generative recipe that tests/mllm_test.cpp and tests/mllm_serve_test.cpp train on the toy data
// (make_toy_dataset with image + text, 2 classes): an image CNN, 2 tokens, a 1-layer LM, two tasks.
#pragma once

namespace braid::test {

inline const char* kTinyGenerateRecipe = R"(
task: generate
threads: 1
data: {image: {size: 16}, text: {vocab: 60, view: en}}
model:
  name: mllm
  modalities: [image, text]
  tokens: 2
  projector: {name: linear}
  lm: {dim: 32, layers: 1, heads: 4, kv_heads: 2, hidden: 48, max_seq: 48}
  encoders:
    image: {name: image_cnn, channels: [4], dim: 8}
  tasks:
    - {name: name, modality: image, prompt: "what is shown?", answer: text}
    - {name: group, modality: image, prompt: "which group is this?", answer: label}
train: {epochs: 3, batch_size: 8, lr: 0.01}
)";

}  // namespace braid::test
