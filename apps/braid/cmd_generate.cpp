// braid generate RUN (--image F | --audio F | nothing) [--prompt "..."] [--task NAME] [sampling] [--json]
// braid generate RUN --text "red heart" --out heart.png [--n 8 --guidance 3 --seed 1]   (drawing runs)
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/core/runtime.h"
#include "braid/data/image.h"
#include "braid/run/generator.h"
#include "braid/run/run_dir.h"
#include "commands.h"

namespace braid::cli {

void check_output_file(const std::string& path, const std::string& option) {
  namespace fs = std::filesystem;
  BRAID_INPUT_CHECK(!path.empty(), "{}: expected a file name, got an empty one", option);
  std::error_code ec;
  BRAID_INPUT_CHECK(!fs::is_directory(path, ec), "{} {}: is a folder; expected a file name (e.g. out.png)", option,
                    path);
  const fs::path parent = fs::path(path).has_parent_path() ? fs::path(path).parent_path() : fs::path(".");
  if (!fs::exists(parent, ec)) {
    fs::create_directories(parent, ec);
    BRAID_INPUT_CHECK(!ec, "{} {}: cannot create its folder {} ({})", option, path, parent.string(), ec.message());
  }
  BRAID_INPUT_CHECK(fs::is_directory(parent, ec), "{} {}: {} is not a folder", option, path, parent.string());
  BRAID_INPUT_CHECK(::access(parent.c_str(), W_OK) == 0, "{} {}: folder {} is not writable", option, path,
                    parent.string());
}

void write_output_file(const std::string& path, const std::string& bytes, const std::string& option) {
  try {
    atomic_write(path, [&](const std::string& tmp) {
      std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
      if (!f) throw std::runtime_error("cannot open " + tmp + " for writing");
      f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      f.close();
      if (!f) throw std::runtime_error("short write to " + tmp);
    });
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {
    const std::string why = e.what();
    input_error("{} {}: cannot write the file ({})", option, path, why.substr(0, why.find('\n')));
  }
}

namespace {

constexpr int64_t kGridCols = 8;  // --n > 1: one grid PNG, up to this many images a row
constexpr int64_t kGridGap = 2;   // white pixels between the grid's images

struct GenerateArgs {
  std::string run, weights = "model", device, image, audio, text, prompt, task, out;
  int threads = 0;
  int64_t max_tokens = 32, top_k = 0;  // the library default (nn::lm::GenerateOptions), as the server
  double temperature = 0.0, top_p = 1.0, repetition_penalty = 1.0;
  uint64_t seed = 0;
  bool no_cache = false, json = false, stream = true;
  // drawing runs (text -> image)
  int64_t n = 1;
  double guidance = 0.0;
  double draw_temperature = run::DrawRequest{}.sample.temperature;  // --temperature not given while drawing
};

// --text --out on a drawing run: n images of the prompt as one PNG (a grid when n > 1).
int draw_to_file(run::Generator& gen, const GenerateArgs& a, bool temperature_given) {
  check_output_file(a.out, "--out");
  run::DrawRequest d;
  d.text = a.text;
  d.n = a.n;
  d.guidance = a.guidance;
  d.seed = a.seed;
  d.use_cache = !a.no_cache;
  d.sample.temperature = temperature_given ? a.temperature : a.draw_temperature;
  d.sample.top_k = a.top_k;
  d.sample.top_p = a.top_p;
  d.sample.repetition_penalty = a.repetition_penalty;
  const auto t0 = std::chrono::steady_clock::now();
  torch::Tensor images = gen.draw(d);  // [n, 3, H, W] in [0, 1]
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  TORCH_CHECK(images.dim() == 4 && images.size(0) == a.n && images.size(1) == 3,
              "draw returned images of shape ", images.sizes(), " for n = ", a.n);
  const int64_t cols = std::min(a.n, kGridCols);
  torch::Tensor picture = a.n == 1 ? images[0] : data::image_grid(images, cols, kGridGap);
  const std::string png = data::encode_png(picture);
  write_output_file(a.out, png, "--out");
  const int64_t width = picture.size(2), height = picture.size(1);
  if (a.json) {
    fmt::print("{}\n", nlohmann::json{{"out", a.out},
                                      {"text", a.text},
                                      {"n", a.n},
                                      {"cols", cols},
                                      {"width", width},
                                      {"height", height},
                                      {"image_width", images.size(3)},
                                      {"image_height", images.size(2)},
                                      {"bytes", png.size()},
                                      {"guidance", a.guidance},
                                      {"temperature", d.sample.temperature},
                                      {"seed", a.seed},
                                      {"seconds", secs}}
                           .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  } else {
    fmt::print("{}: {}x{} PNG, {} image{} of \"{}\" in {:.2f} s\n", a.out, width, height, a.n, a.n == 1 ? "" : "s",
               a.text, secs);
  }
  return 0;
}

}  // namespace

void add_generate_command(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& out) {
  auto a = std::make_shared<GenerateArgs>();
  auto* g = app.add_subcommand("generate", "answer a prompt about an image or a recording with a generative run "
                                           "(task: generate), streaming the text; or draw images from text "
                                           "(--text --out, a drawing run such as early_fusion)");
  g->add_option("run", a->run, "run directory of a generative run (e.g. recipes/emoji_mllm.yaml)")->required();
  auto* im = g->add_option("--image", a->image, "image file (PNG, JPEG, BMP)");
  auto* au = g->add_option("--audio", a->audio, "audio file (WAV, FLAC, OGG)");
  auto* tx = g->add_option("--text", a->text, "text only: the prompt itself (the language model without an input); "
                                               "a drawing run draws it (with --out)");
  im->excludes(au)->excludes(tx);
  au->excludes(tx);
  g->add_option("--prompt", a->prompt, "the question (default: the prompt of --task, or of the run's first task for "
                                       "the input)");
  g->add_option("--task", a->task, "one of the run's tasks (model.tasks), e.g. name, group");
  g->add_option("--max-tokens", a->max_tokens, "new tokens at most")->capture_default_str()->check(CLI::Range(1, 4096));
  auto* temp = g->add_option("--temperature", a->temperature,
                              fmt::format("0 = greedy; > 0 samples (drawing: default {})", a->draw_temperature))
                   ->capture_default_str()->check(CLI::Range(0.0, 100.0));
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
  auto* out_opt = g->add_option("--out", a->out, "drawing runs: write the image of --text to this PNG file (a grid of "
                                                 "up to 8 columns for --n > 1)");
  out_opt->excludes(im)->excludes(au);
  auto* n_opt = g->add_option("--n", a->n, "drawing runs: images to draw")->capture_default_str()
                   ->check(CLI::Range(1, 64));
  auto* guide_opt = g->add_option("--guidance", a->guidance, "drawing runs: classifier-free guidance weight (0 = none)")
      ->capture_default_str()->check(CLI::Range(0.0, 100.0));
  g->add_flag("--json", a->json, "print one JSON object (text, ids, task, prompt, seconds; drawing: out, width, "
                                 "height, n, seconds) instead of streaming");
  out.emplace_back(g, [a, temp, out_opt, n_opt, guide_opt] {
    configure_threads(a->threads);
    const bool drawing = out_opt->count() > 0;
    BRAID_INPUT_CHECK(drawing || (n_opt->count() == 0 && guide_opt->count() == 0),
                      "--n and --guidance apply to drawing (--text \"...\" --out FILE.png)");
    std::unique_ptr<run::Generator> made;
    try {
      made = std::make_unique<run::Generator>(a->run, a->weights, a->device);
    } catch (const InputError& e) {
      if (!drawing) throw;
      const std::string why = e.what();
      input_error("--out needs a run that draws images (model early_fusion): {}", why.substr(0, why.find('\n')));
    }
    run::Generator& gen = *made;
    if (drawing) {
      BRAID_INPUT_CHECK(gen.draws(), "--out {}: {} does not draw images (text -> image needs a run of model "
                        "early_fusion); it answers in text, without --out", a->out, a->run);
      BRAID_INPUT_CHECK(!a->text.empty(), "--out {}: say what to draw with --text, e.g. --text \"red heart\"", a->out);
      return draw_to_file(gen, *a, temp->count() > 0);
    }
    BRAID_INPUT_CHECK(!gen.draws() || a->text.empty(),
                      "{} draws images from text: give --out FILE.png with --text (or --image FILE to name an image)",
                      a->run);
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
