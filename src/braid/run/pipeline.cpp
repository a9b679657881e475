#include "braid/run/pipeline.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <filesystem>

#include "braid/core/cpu_features.h"
#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/core/runtime.h"
#include "braid/data/series.h"
#include "braid/run/chat.h"
#include "braid/run/run_dir.h"

namespace braid::run {

namespace fs = std::filesystem;

torch::Device parse_device(const std::string& s) {
  if (s == "cpu") return torch::kCPU;
  if (s.rfind("cuda", 0) == 0) {
    BRAID_INPUT_CHECK(torch::cuda::is_available(), "device '{}' requested but no CUDA device is available to this build", s);
    try {
      return torch::Device(s);
    } catch (const c10::Error&) {
    }
  }
  input_error("device '{}' is not one of cpu, cuda, cuda:N", s);
}

data::LoaderOptions Pipeline::loader_options(bool train) const {
  auto d = recipe.at("data");
  data::LoaderOptions o;
  o.batch_size = recipe.at("train").get<int64_t>("batch_size", 64);
  const int64_t workers = d.get<int64_t>("workers", 2), prefetch = d.get<int64_t>("prefetch", 4);
  BRAID_INPUT_CHECK(workers >= 1 && prefetch >= 1 && workers <= data::LoaderOptions::kMaxWorkers &&
                        prefetch <= data::LoaderOptions::kMaxPrefetch,
                    "{}: data.workers is {} and data.prefetch {}; expected 1..{} and 1..{}", recipe.origin(), workers,
                    prefetch, data::LoaderOptions::kMaxWorkers, data::LoaderOptions::kMaxPrefetch);
  o.workers = static_cast<int>(workers);
  o.prefetch = static_cast<int>(prefetch);
  o.cache = d.get<bool>("cache", true);
  const double cap_mb = d.get<double>("cache_max_mb", -1.0);  // -1: a quarter of physical memory
  BRAID_INPUT_CHECK(cap_mb == -1.0 || (cap_mb >= 0.0 && cap_mb < 1e12), "{}: data.cache_max_mb is {}; expected -1 "
                    "(a quarter of physical memory) or a size in MiB", recipe.origin(), cap_mb);
  o.cache_max_bytes = cap_mb < 0 ? -1 : static_cast<int64_t>(cap_mb * 1048576.0);
  o.stall_seconds = d.get<double>("stall_seconds", 300.0);
  o.seed = static_cast<uint64_t>(recipe.get<int64_t>("seed", 0));
  o.shuffle = train;
  o.drop_last = false;
  o.random_text_view = train && d.at("text").get<std::string>("view", "") == "random";
  o.pin_memory = device.is_cuda();
  return o;
}

std::unique_ptr<data::Loader> Pipeline::loader(std::shared_ptr<const data::Manifest> m, const std::string& split,
                                               bool train) const {
  auto idx = m->split_indices(split);
  return std::make_unique<data::Loader>(m, idx, pre, loader_options(train), targets(), classes);
}

static Task parse_task(const Config& r) {
  auto t = r.get<std::string>("task", "classify");
  if (t == "classify") return Task::Classify;
  if (t == "regress") return Task::Regress;
  if (t == "align") return Task::Align;
  if (t == "generate") return Task::Generate;
  input_error("{}: recipe key 'task': expected classify, regress, align or generate, got '{}'", r.origin(), t);
}

// Recipe key `channels_last`: true | false | auto (the default: on for a CPU model under bf16, where oneDNN's
// channels-last convolutions and pooling made the AV-MNIST training step ~15-30 % faster; fp32 keeps NCHW and
// its results as they were).
static bool conv_channels_last(const Config& r, const c10::Device& device, Precision precision) {
  if (r.get<std::string>("channels_last", "auto") != "auto") return r.get<bool>("channels_last", false);
  return device.is_cpu() && precision == Precision::BF16;
}

// Build preprocessor + model from the recipe and the facts in `p.facts`.
static void build(Pipeline& p) {
  auto data_cfg = p.recipe.at("data");
  auto popt = data::PreprocessOptions::from_config(data_cfg);
  p.pre = std::make_shared<data::Preprocessor>(popt, p.modalities, p.tokenizer);
  models::ModelContext ctx;
  ctx.modalities = p.modalities;
  ctx.outputs = p.outputs;
  ctx.task = p.task;
  auto mcfg = p.recipe.at("model");
  if (p.task == Task::Generate) {
    BRAID_INPUT_CHECK(p.tokenizer, "{}: task 'generate' needs 'text' in model.modalities (the answers)",
                      p.recipe.origin());
    // model 'lm' (a plain causal LM, e.g. imported) continues text without the chat template
    // model 'early_fusion' has no chat either: its own sequences of text and image codes (models/early_fusion.h)
    const auto name = mcfg.get<std::string>("name", "");
    if (name == "early_fusion") {
      ctx.chat.pad = std::max(p.tokenizer->pad_id(), 0);
      ctx.chat.bos = p.tokenizer->bos_id();
      ctx.chat.eos = p.tokenizer->eos_id();
    } else if (name != "lm") {
      ctx.chat = chat_spec(*p.tokenizer, mcfg);
    }
  }
  if ((p.task == Task::Align || p.task == Task::Generate) && p.classes && p.tokenizer) {
    auto cb = text_batch(*p.pre, p.classes->names());
    ctx.class_text = cb.data;
    ctx.class_text_lengths = cb.lengths;
  }
  p.device = parse_device(p.recipe.get<std::string>("device", "cpu"));
  // fp32 | bf16 | auto (bf16 on CPUs with native bf16 GEMMs; core/cpu_features.h)
  p.precision = resolve_precision(p.recipe.get<std::string>("precision", "fp32"), p.device.type(), p.recipe.origin())
                    .precision;
  const bool channels_last = conv_channels_last(p.recipe, p.device, p.precision);
  for (const auto& m : p.modalities) {
    nn::EncoderContext e;
    e.modality = m;
    e.vocab_size = p.tokenizer ? p.tokenizer->vocab_size() : 0;
    e.image_size = popt.image.size;
    e.image_mean = popt.image.mean;
    e.image_std = popt.image.std;
    e.n_mels = popt.audio.n_mels;
    e.series_channels = p.facts.value("series_channels", 0);
    e.channels_last = channels_last;
    ctx.encoders[m] = e;
  }
  mcfg.get<std::vector<std::string>>("modalities", p.modalities);
  p.model = models::model_registry().make(mcfg, ctx);
  p.model->to(p.device);
  // these are read by the trainer and the CLI; touch them so they count as known
  p.loader_options(true);
  p.recipe.get<int64_t>("threads", 0);
  p.recipe.at("data").get<std::string>("manifest", "");
  p.recipe.at("data").get<std::string>("train_split", "train");
  p.recipe.at("data").get<std::string>("val_split", "val");
}

ModalityBatch text_batch(const data::Preprocessor& pre, const std::vector<std::string>& texts) {
  std::vector<data::SampleTensors> ss;
  std::vector<int64_t> idx;
  for (size_t i = 0; i < texts.size(); ++i) {
    data::SampleTensors st;
    st.mods["text"] = pre.text(texts[i]);
    ss.push_back(std::move(st));
    idx.push_back(static_cast<int64_t>(i));
  }
  return data::collate(ss, {"text"}, idx).mods.at("text");
}

void set_text_view(Pipeline& p, const std::string& view) {
  BRAID_INPUT_CHECK(p.tokenizer, "--text-view {}: the run reads no text", view);
  auto opt = p.pre->options();
  opt.text.view = view;
  p.pre = std::make_shared<data::Preprocessor>(opt, p.modalities, p.tokenizer);
}

Pipeline create_pipeline(Config recipe, const data::Manifest& manifest, const std::string& run_dir) {
  Pipeline p;
  p.recipe = recipe;
  p.task = parse_task(recipe);
  auto d = recipe.at("data");
  const std::string train_split = d.get<std::string>("train_split", "train");
  auto train_idx = manifest.split_indices(train_split);
  BRAID_INPUT_CHECK(!train_idx.empty(), "{}: no samples in split '{}'", manifest.path(), train_split);

  // modalities: the recipe's list, or every modality the train split has
  auto mcfg = recipe.at("model");
  std::vector<std::string> present;
  for (const auto& m : data::all_modalities())
    for (auto i : train_idx)
      if (manifest.samples()[i].has(m)) {
        present.push_back(m);
        break;
      }
  p.modalities = mcfg.has("modalities") ? mcfg.get<std::vector<std::string>>("modalities", {}) : present;
  BRAID_INPUT_CHECK(!p.modalities.empty(), "{}: recipe key 'model.modalities' is empty", recipe.origin());
  for (const auto& m : p.modalities) {
    BRAID_INPUT_CHECK(std::find(data::all_modalities().begin(), data::all_modalities().end(), m) !=
                          data::all_modalities().end(),
                      "{}: recipe key 'model.modalities': unknown modality '{}' (expected image, audio, text, series)",
                      recipe.origin(), m);
    BRAID_INPUT_CHECK(std::find(present.begin(), present.end(), m) != present.end(),
                      "{}: the model reads '{}' but no sample of split '{}' in {} has it", recipe.origin(), m,
                      train_split, manifest.path());
  }

  make_dirs(run_dir);
  const RunDir rd(run_dir);
  auto popt = data::PreprocessOptions::from_config(d);
  auto views = manifest.text_views();
  const auto parts = popt.text.view_parts();  // "en+zh": the views joined; each must exist
  if (!popt.text.view.empty() && popt.text.view != "random" && !views.empty() &&
      std::any_of(parts.begin(), parts.end(),
                  [&](const std::string& v) { return std::find(views.begin(), views.end(), v) == views.end(); })) {
    // a recipe written for another dataset: read each sample's first view rather than no text at all
    spdlog::warn("text view '{}' (data.text.view) is not in {}; using each sample's first text view", popt.text.view,
                 manifest.path());
    d.at("text").set_path("view", "\"\"");
    popt.text.view.clear();
  }
  if (std::find(p.modalities.begin(), p.modalities.end(), "text") != p.modalities.end()) {
    std::string tok_path = rd.tokenizer();
    // a generative run initialized from another generative run (stage 2 from stage 1) reads text with that
    // run's tokenizer: its LM's embedding rows are those token ids (a new tokenizer would scramble them)
    std::string inherited;
    if (p.task == Task::Generate && popt.text.tokenizer.empty()) {
      const YAML::Node in = mcfg.node()["init_from"];
      std::vector<std::string> inits;
      if (in && in.IsSequence())
        for (const auto& x : in) inits.push_back(x.as<std::string>());
      else if (in && in.IsScalar())
        inits.push_back(in.as<std::string>());
      for (const auto& dir : inits) {
        const RunDir from(dir);
        if (!file_exists(from.facts()) || !file_exists(from.tokenizer())) continue;
        try {
          // (not from an imported LM, `braid import hf`: its tokenizer has no chat pieces; the decoder layers
          // still load by name and shape, the embeddings only with the same vocabulary)
          const auto f = nlohmann::json::parse(read_text_file(from.facts()));
          if (f.value("task", "") == "generate" && !f.contains("imported")) inherited = from.tokenizer();
        } catch (const nlohmann::json::exception&) {
        }
      }
    }
    if (!popt.text.tokenizer.empty() || !inherited.empty()) {
      std::string src = inherited.empty() ? resolve_relative(recipe.origin(), popt.text.tokenizer) : inherited;
      auto t = data::Tokenizer::load(src);
      if (!inherited.empty()) spdlog::info("tokenizer of {} (model.init_from): its LM's token ids", src);
      tok_path = rd.tokenizer_as(src);  // the same kind of file: tokenizer.model, tokenizer.json or vocab.txt
      atomic_write_text(tok_path, read_text_file(src));
      const std::string tok_cfg = (fs::path(src).parent_path() / "tokenizer_config.json").string();
      if (tok_path == rd.tokenizer_as("vocab.txt") && file_exists(tok_cfg))
        atomic_write_text(rd.tokenizer_config(), read_text_file(tok_cfg));
    } else {
      // the corpus is the text the model reads
      std::vector<std::string> corpus;
      for (auto i : train_idx) {
        const auto& s = manifest.samples()[i];
        if (popt.text.view == "random") {
          for (const auto& vt : s.text) corpus.push_back(vt.second);  // every view: one tokenizer for all
        } else {
          for (const auto& v : parts)
            if (const std::string* t = s.text_view(v)) corpus.push_back(*t);
        }
      }
      BRAID_INPUT_CHECK(!corpus.empty(), "{}: no train sample has text view '{}' (data.text.view)", manifest.path(),
                        popt.text.view);
      std::vector<std::string> specials;
      if (p.task == Task::Generate) {
        // a generative run also says its prompts and class names, and holds the chat tokens as single pieces
        specials = nn::lm::chat_pieces();
        for (auto i : train_idx)
          if (const auto& l = manifest.samples()[i].label) corpus.push_back(*l);
        const YAML::Node tasks = mcfg.node()["tasks"];
        if (tasks && tasks.IsSequence())
          for (const auto& t : tasks)
            if (t.IsMap() && t["prompt"] && t["prompt"].IsScalar()) corpus.push_back(t["prompt"].as<std::string>());
      }
      spdlog::info("training a {}-piece tokenizer on {} texts of the train split", popt.text.vocab, corpus.size());
      data::Tokenizer::train(corpus, static_cast<int>(popt.text.vocab), tok_path, specials);
    }
    p.tokenizer = std::make_shared<data::Tokenizer>(data::Tokenizer::load(tok_path));
  }
  if (p.task == Task::Classify) {
    p.classes = std::make_shared<data::ClassMap>(data::ClassMap::from_manifest(manifest, train_split));
    p.classes->save(rd.classes());
    p.outputs = p.classes->size();
  } else if (p.task == Task::Align || p.task == Task::Generate) {
    // labels are optional here: with them, zero-shot and linear-probe evaluations have classes
    bool labelled = false;
    for (auto i : train_idx) labelled = labelled || manifest.samples()[i].label.has_value();
    if (labelled) {
      p.classes = std::make_shared<data::ClassMap>(data::ClassMap::from_manifest(manifest, train_split));
      p.classes->save(rd.classes());
    }
    p.outputs = 0;
  } else {
    BRAID_INPUT_CHECK(manifest.target_dim() > 0, "{}: task 'regress' needs a 'target' on the samples", manifest.path());
    p.outputs = manifest.target_dim();
  }
  p.facts = {{"task", recipe.get<std::string>("task", "classify")},
             {"modalities", p.modalities},
             {"outputs", p.outputs},
             {"braid_version", BRAID_VERSION}};
  if (std::find(p.modalities.begin(), p.modalities.end(), "series") != p.modalities.end()) {
    for (auto i : train_idx) {
      const auto& s = manifest.samples()[i];
      if (!s.has("series")) continue;
      auto x = s.series_path.empty() ? data::series_from_json(s.series_inline, s.where(manifest.path()) + ": series")
                                     : data::load_series_file(s.series_path);
      p.facts["series_channels"] = x.size(1);
      break;
    }
  }
  build(p);
  recipe.check_all_used();
  atomic_write_text(rd.facts(), p.facts.dump(1) + "\n");
  return p;
}

Pipeline open_pipeline(const std::string& run_dir) {
  const RunDir rd(run_dir);
  const std::string rp = rd.recipe();
  BRAID_INPUT_CHECK(file_exists(rp), "{}: not a braid run directory (no {})", run_dir, rp);
  Pipeline p;
  p.recipe = Config::from_file(rp);
  // A run's recipe.resolved.yaml records every default the run read. A Uni-Code run without
  // model.semantic_norm was trained before that key existed (71896bd), with no normalization: open
  // it as it was trained rather than with today's default.
  if (p.recipe.has("model") && p.recipe.at("model").has("name") &&
      p.recipe.at("model").get<std::string>("name", "") == "unicode" && !p.recipe.at("model").has("semantic_norm")) {
    p.recipe.set_path("model.semantic_norm", "none");
    spdlog::info("{}: a Uni-Code run from before model.semantic_norm: opened with semantic_norm: none", rp);
  }
  p.task = parse_task(p.recipe);
  try {
    p.facts = nlohmann::json::parse(read_text_file(rd.facts()));
    p.modalities = p.facts.at("modalities").get<std::vector<std::string>>();
    p.outputs = p.facts.at("outputs").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    input_error("{}: unreadable run facts ({})", rd.facts(), e.what());
  }
  if (std::find(p.modalities.begin(), p.modalities.end(), "text") != p.modalities.end())
    p.tokenizer = std::make_shared<data::Tokenizer>(data::Tokenizer::load(rd.tokenizer()));
  if ((p.task == Task::Align || p.task == Task::Generate) && file_exists(rd.classes()))
    p.classes = std::make_shared<data::ClassMap>(data::ClassMap::load(rd.classes()));
  if (p.task == Task::Classify) {
    p.classes = std::make_shared<data::ClassMap>(data::ClassMap::load(rd.classes()));
    BRAID_INPUT_CHECK(p.classes->size() == p.outputs, "{}: {} classes, but {} says {}", rd.classes(),
                      p.classes->size(), rd.facts(), p.outputs);
  }
  build(p);
  return p;
}

}  // namespace braid::run
