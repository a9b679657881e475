// braid/serve/embedder.cpp — one-input preprocessing and embedding shared by the CLI and the server.
#include "braid/serve/embedder.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/eval/evaluate.h"
#include "braid/nn/infer_threads.h"
#include "braid/nn/prepack.h"
#include "braid/run/run_dir.h"

namespace braid::serve {

Embedder::Embedder(const std::string& run, const std::string& weights, bool prepack, bool int8)
    : run_(run), p_(run::open_run(run, weights)) {
  BRAID_INPUT_CHECK(p_.task == run::Task::Align || (p_.task == run::Task::Generate && !p_.model->capabilities().embeds.empty()),
                    "{}: run was trained with a task other than 'align' or 'generate'; "
                    "embedding needs a model with a shared space (task: align)", run);
  p_.model->eval();
  // The modalities the model embeds that a query can carry (text, image or audio).
  for (const auto& m : p_.model->capabilities().embeds)
    if (m == "text" || m == "image" || m == "audio") embeds_.push_back(m);
  BRAID_INPUT_CHECK(!embeds_.empty(), "{}: the model embeds none of its modalities", run);
  BRAID_INPUT_CHECK(!int8 || p_.device.is_cpu(), "{}: --precision int8 runs on the CPU; this run's device is {}", run,
                    p_.device.str());
  if (int8) {  // the Linear layers in int8 (embed runs without autocast: fp32 activations whatever the recipe says)
    prepacked_ = nn::prepack_linears(*p_.model, nn::PackPrecision::Int8);
    int8_ = prepacked_ > 0 && nn::int8_support().ok;
    spdlog::info("{}: {} Linear layers packed in {} (oneDNN); attention fp32", run, prepacked_, int8_ ? "int8" : "fp32");
  } else if (prepack && p_.device.is_cpu() && p_.precision == Precision::FP32) {
    prepacked_ = nn::prepack_linears(*p_.model);
  }
}

Embedder::~Embedder() {
  if (prepacked_ > 0) nn::release_prepacked(*p_.model);
}

bool Embedder::embeds(const std::string& modality) const {
  return std::find(embeds_.begin(), embeds_.end(), modality) != embeds_.end();
}

torch::Tensor Embedder::embed(const std::string& modality, const ModalityBatch& mb) {
  BRAID_INPUT_CHECK(embeds(modality), "{}: the model does not embed '{}'; it embeds {}", run_, modality,
                    fmt::format("{}", fmt::join(embeds_, ", ")));
  torch::NoGradGuard ng;
  std::lock_guard<std::mutex> lock(mu_);
  const auto in = mb.to(p_.device);
  auto rows = [&](int64_t r0, int64_t r1) { return p_.model->embed(modality, nn::batch_rows(in, r0, r1)); };
  const int64_t n = in.data.size(0);
  // on the CPU through nn::infer_rows: the rows split over the intra-op threads, one row on one thread
  auto e = p_.device.is_cpu() ? nn::infer_rows(n, rows) : rows(0, n);
  return e.to(torch::kCPU).to(torch::kFloat).contiguous();
}

torch::Tensor Embedder::embed_query(const Query& q) {
  BRAID_INPUT_CHECK(embeds(q.modality), "{}: the model does not embed '{}'; it embeds {}", run_, q.modality,
                    fmt::format("{}", fmt::join(embeds_, ", ")));
  auto b = query_batch(q.modality, {preprocess_query(*p_.pre, q)});
  return embed(q.modality, b.mods.at(q.modality))[0];
}

namespace {

std::string absolute_path(const std::string& p) {
  if (p.empty()) return p;
  std::error_code ec;
  auto a = std::filesystem::absolute(p, ec);
  return ec ? p : a.lexically_normal().string();
}

}  // namespace

EmbeddingSet embed_manifest(Embedder& emb, const std::string& manifest_path, const std::string& split,
                            const std::string& modality, const std::string& text_view) {
  auto& p = emb.pipeline();
  BRAID_INPUT_CHECK(emb.embeds(modality), "{}: the model does not embed '{}'; it embeds {}", emb.run(), modality,
                    fmt::format("{}", fmt::join(emb.modalities(), ", ")));
  auto m = std::make_shared<data::Manifest>(data::Manifest::load(manifest_path));
  auto opts = p.pre->options();
  if (!text_view.empty()) opts.text.view = text_view;
  if (opts.text.view == "random") opts.text.view = "";
  const std::string view = opts.text.view;
  std::vector<int64_t> rows;
  for (int64_t i : m->split_indices(split)) {
    const auto& s = m->samples()[static_cast<size_t>(i)];
    if (modality == "text" ? s.text_view(view) != nullptr : s.has(modality)) rows.push_back(i);
  }
  BRAID_INPUT_CHECK(!rows.empty(), "{}: no samples with {} in split '{}'", manifest_path, modality,
                    split.empty() ? "(all)" : split);
  // Only the requested modality is decoded; otherwise the same preprocessor as training.
  auto pre = std::make_shared<data::Preprocessor>(opts, std::vector<std::string>{modality}, p.tokenizer);
  data::Loader loader(m, rows, pre, p.loader_options(false), data::Targets::None);
  auto all = eval::embed_all(p, loader, "embed " + modality);
  EmbeddingSet e;
  e.vectors = all.vectors.at(modality).contiguous();
  e.run = absolute_path(emb.run());
  e.modality = modality;
  e.manifest = absolute_path(manifest_path);
  e.split = split;
  auto idx = all.index.at(modality);
  auto ia = idx.accessor<int64_t, 1>();
  for (int64_t k = 0; k < idx.numel(); ++k) {
    const auto& s = m->samples()[static_cast<size_t>(ia[k])];
    const std::string path = modality == "image" ? s.image : modality == "audio" ? s.audio : "";
    e.entries.push_back({ia[k], s.id, absolute_path(path), s.label.value_or("")});
  }
  return e;
}

}  // namespace braid::serve
