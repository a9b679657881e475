// braid/run/generator.h — a finished generative run (task: generate) answering one input at a time:
// `braid generate`, the server's /api/generate and the tests all go through here, so one input and prompt
// give the same prompt, template and logits everywhere.
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "braid/nn/lm/chat.h"
#include "braid/nn/lm/sample.h"
#include "braid/run/pipeline.h"
#include "braid/run/query.h"

namespace braid::run {

struct GenerateRequest {
  Query input;            // modality "image" | "audio" with the file's bytes, or modality "" (no input)
  std::string prompt;     // the question; "" = the prompt of `task` (or of the run's first task for the input)
  std::string task;       // a task name of the run (`model.tasks`); "" = chosen by the input's modality
  nn::lm::GenerateOptions options;  // max_tokens, sampling, seed, use_cache (stop token: the run's <eos>)
};

struct GenerateAnswer {
  std::string text;             // the decoded answer (up to <eos>)
  std::vector<int64_t> ids;     // its token ids (without <eos>)
  std::string task, prompt;     // what was asked
  bool stopped = false;         // ended at <eos> (else at max_tokens or by the callback)
};

// Text -> image of a drawing run (model capabilities().draws, e.g. early_fusion).
struct DrawRequest {
  std::string text;              // the prompt, e.g. "red heart" (tokenized and cut as the run's text)
  int64_t n = 1;                 // images
  double guidance = 0.0;         // classifier-free guidance weight (models::ModelImpl::DrawRequest)
  nn::lm::SampleOptions sample{1.0};
  uint64_t seed = 0;
  bool use_cache = true;
};

class Generator {
 public:
  // `weights`: "model", "best", "last" or a file (run/run_dir.h); device "" = the run's.
  explicit Generator(const std::string& run, const std::string& weights = "model", const std::string& device = "");

  // A request checked and its input decoded (InputError on bad input), ready to generate: the server
  // prepares before it starts streaming, so bad input is a plain 400.
  struct Prepared {
    Batch batch;
    models::ModelImpl::GenerateRequest request;
    std::string task, prompt;
  };
  Prepared prepare(const GenerateRequest& r);

  // One answer. `on_text` (optional) receives the decoded text grown by each step, as it is made; returning
  // false stops generation (a client went away). Thread-safe (one generation at a time).
  GenerateAnswer generate(const GenerateRequest& r,
                          const std::function<bool(const std::string& delta)>& on_text = {});
  GenerateAnswer generate(Prepared pr, const std::function<bool(const std::string& delta)>& on_text = {});
  // Images [n, 3, H, W] float in [0, 1] for one prompt. InputError when the run does not draw (draws()), the
  // text is empty or n is out of [1, 64]. Thread-safe (one generation at a time).
  torch::Tensor draw(const DrawRequest& r);
  bool draws() const { return draws_; }

  // Logits [T, V] of the rendered prompt of `r` (the parity check of training, CLI and server).
  torch::Tensor prompt_logits(const GenerateRequest& r);

  const Pipeline& pipeline() const { return p_; }
  const nn::lm::ChatSpec& chat() const { return spec_; }
  // Modalities an input may have ("image", "audio"; empty input = none).
  const std::vector<std::string>& inputs() const { return inputs_; }

 private:
  Pipeline p_;
  nn::lm::ChatSpec spec_;
  std::vector<std::string> inputs_;
  bool draws_ = false;  // capabilities().draws: draw() works; generate() then captions an image without a prompt
  bool plain_ = false;  // model 'lm': no chat template (the prompt's own token ids; stop at the tokenizer's eos)
  std::mutex mu_;
};

}  // namespace braid::run
