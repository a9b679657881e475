// braid generate RUN (--image F | --audio F | nothing) [--prompt "..."] [--task NAME] [sampling] [--json]
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>

#include "braid/core/error.h"
#include "braid/core/runtime.h"
#include "braid/run/generator.h"
#include "braid/run/run_dir.h"
#include "commands.h"

namespace braid::cli {

namespace {

struct GenerateArgs {
  std::string run, weights = "model", device, image, audio, text, prompt, task;
  int threads = 0;
  int64_t max_tokens = 32, top_k = 0;  // the library default (nn::lm::GenerateOptions), as the server
  double temperature = 0.0, top_p = 1.0, repetition_penalty = 1.0;
  uint64_t seed = 0;
  bool no_cache = false, json = false, stream = true;
};

}  // namespace

void add_generate_command(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& out) {
  auto a = std::make_shared<GenerateArgs>();
  auto* g = app.add_subcommand("generate", "answer a prompt about an image or a recording with a generative run "
                                           "(task: generate), streaming the text");
  g->add_option("run", a->run, "run directory of a generative run (e.g. recipes/emoji_mllm.yaml)")->required();
  auto* im = g->add_option("--image", a->image, "image file (PNG, JPEG, BMP)");
  auto* au = g->add_option("--audio", a->audio, "audio file (WAV, FLAC, OGG)");
  auto* tx = g->add_option("--text", a->text, "text only: the prompt itself (the language model without an input)");
  im->excludes(au)->excludes(tx);
  au->excludes(tx);
  g->add_option("--prompt", a->prompt, "the question (default: the prompt of --task, or of the run's first task for "
                                       "the input)");
  g->add_option("--task", a->task, "one of the run's tasks (model.tasks), e.g. name, group");
  g->add_option("--max-tokens", a->max_tokens, "new tokens at most")->capture_default_str()->check(CLI::Range(1, 4096));
  g->add_option("--temperature", a->temperature, "0 = greedy; > 0 samples")->capture_default_str()
      ->check(CLI::Range(0.0, 100.0));
  g->add_option("--top-k", a->top_k, "sample from the k most likely tokens (0 = all)")->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  g->add_option("--top-p", a->top_p, "nucleus mass")->capture_default_str()->check(CLI::Range(1e-6, 1.0));
  g->add_option("--repetition-penalty", a->repetition_penalty, "> 1 discourages repeats")->capture_default_str()
      ->check(CLI::Range(1e-3, 100.0));
  g->add_option("--seed", a->seed, "sampling seed (same seed, same text)")->capture_default_str();
  g->add_flag("--no-cache", a->no_cache, "recompute the whole sequence each step (no KV cache)");
  g->add_option("--weights", a->weights, run::weights_help())->capture_default_str();
  g->add_option("--device", a->device, "cpu, cuda or cuda:N (default: the run's device)");
  g->add_option("--threads", a->threads, "intra-op threads (0 = all cores)")->capture_default_str();
  g->add_flag("--json", a->json, "print one JSON object (text, ids, task, prompt, seconds) instead of streaming");
  out.emplace_back(g, [a] {
    configure_threads(a->threads);
    run::Generator gen(a->run, a->weights, a->device);
    run::GenerateRequest r;
    if (!a->image.empty()) r.input = run::query_from_file("image", a->image);
    if (!a->audio.empty()) r.input = run::query_from_file("audio", a->audio);
    r.prompt = a->text.empty() ? a->prompt : a->text;
    r.task = a->task;
    r.options.max_tokens = a->max_tokens;
    r.options.use_cache = !a->no_cache;
    r.options.seed = a->seed;
    r.options.sample.temperature = a->temperature;
    r.options.sample.top_k = a->top_k;
    r.options.sample.top_p = a->top_p;
    r.options.sample.repetition_penalty = a->repetition_penalty;
    const auto t0 = std::chrono::steady_clock::now();
    run::GenerateAnswer ans;
    if (a->json) {
      ans = gen.generate(r);
    } else {
      ans = gen.generate(r, [](const std::string& delta) {
        std::fputs(delta.c_str(), stdout);
        std::fflush(stdout);
        return true;
      });
      std::fputs("\n", stdout);
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (a->json)
      fmt::print("{}\n", nlohmann::json{{"text", ans.text}, {"ids", ans.ids}, {"task", ans.task},
                                        {"prompt", ans.prompt}, {"stopped", ans.stopped}, {"seconds", secs}}
                             .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    return 0;
  });
}

}  // namespace braid::cli
