// braid/serve/embedder.cpp — one-input preprocessing and embedding shared by the CLI and the server.
#include "braid/serve/embedder.h"

#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/train/checkpoint.h"

namespace braid::serve {

Query query_from_file(const std::string& modality, const std::string& path, size_t max_bytes) {
  namespace fs = std::filesystem;
  std::error_code ec;
  BRAID_INPUT_CHECK(fs::is_regular_file(path, ec), "{}: no such {} file", path, modality);
  const auto size = fs::file_size(path, ec);
  BRAID_INPUT_CHECK(!ec, "{}: cannot read file size ({})", path, ec.message());
  BRAID_INPUT_CHECK(size <= max_bytes, "{}: file of {} bytes is larger than the {} byte limit", path, size, max_bytes);
  std::ifstream f(path, std::ios::binary);
  BRAID_INPUT_CHECK(f.good(), "{}: cannot open file", path);
  Query q{modality, std::string(size, '\0'), path};
  f.read(q.payload.data(), static_cast<std::streamsize>(size));
  BRAID_INPUT_CHECK(f.gcount() == static_cast<std::streamsize>(size), "{}: short read", path);
  return q;
}

torch::Tensor preprocess_query(const data::Preprocessor& pre, const Query& q) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(q.payload.data());
  if (q.modality == "text") {
    BRAID_INPUT_CHECK(!q.payload.empty(), "{}: empty text; expected a non-empty query", q.name);
    return pre.text(q.payload);
  }
  if (q.modality == "image") {
    BRAID_INPUT_CHECK(!q.payload.empty(), "{}: empty file; expected an image (PNG, JPEG or BMP)", q.name);
    return pre.image_bytes(bytes, q.payload.size(), q.name);
  }
  if (q.modality == "audio") {
    BRAID_INPUT_CHECK(!q.payload.empty(), "{}: empty file; expected audio (WAV/FLAC/OGG)", q.name);
    return pre.audio_bytes(bytes, q.payload.size(), q.name);
  }
  input_error("{}: unknown modality '{}'; expected text, image or audio", q.name, q.modality);
}

data::Batch query_batch(const std::string& modality, const std::vector<torch::Tensor>& inputs) {
  std::vector<data::SampleTensors> samples(inputs.size());
  std::vector<int64_t> index(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    samples[i].mods[modality] = inputs[i];
    index[i] = static_cast<int64_t>(i);
  }
  return data::collate(samples, {modality}, index);
}

Embedder::Embedder(const std::string& run, const std::string& weights) : run_(run), p_(eval::open_pipeline(run)) {
  BRAID_INPUT_CHECK(p_.task == eval::Task::Align, "{}: run was trained with a task other than 'align'; "
                    "embedding needs a model with a shared space (task: align)", run);
  const std::string w = weights == "model" ? run + "/model.pt"
                        : weights == "best" ? run + "/checkpoints/best.pt" : weights;
  BRAID_INPUT_CHECK(file_exists(w), "{}: no weights at {} (did training finish?)", run, w);
  train::load_weights(*p_.model, w);
  p_.model->eval();
  // Which modalities does the model embed? Probe each with a tiny all-absent-free batch.
  torch::NoGradGuard ng;
  for (const auto& m : p_.modalities) {
    torch::Tensor x;
    const auto& o = p_.pre->options();
    if (m == "image") x = torch::zeros({3, o.image.size, o.image.size});
    else if (m == "audio") x = torch::zeros({o.audio.n_mels, 8});
    else if (m == "text") x = torch::ones({2}, torch::kLong);
    else continue;
    auto b = query_batch(m, {x});
    auto e = p_.model->embed(m, b.mods.at(m).to(p_.device));
    if (e.defined()) embeds_.push_back(m);
  }
  BRAID_INPUT_CHECK(!embeds_.empty(), "{}: the model embeds none of its modalities", run);
}

bool Embedder::embeds(const std::string& modality) const {
  return std::find(embeds_.begin(), embeds_.end(), modality) != embeds_.end();
}

torch::Tensor Embedder::embed(const std::string& modality, const data::ModalityBatch& mb) {
  BRAID_INPUT_CHECK(embeds(modality), "{}: the model does not embed '{}'; it embeds {}", run_, modality,
                    fmt::format("{}", fmt::join(embeds_, ", ")));
  torch::NoGradGuard ng;
  std::lock_guard<std::mutex> lock(mu_);
  auto e = p_.model->embed(modality, mb.to(p_.device));
  return e.to(torch::kCPU).to(torch::kFloat).contiguous();
}

torch::Tensor Embedder::embed_query(const Query& q) {
  BRAID_INPUT_CHECK(embeds(q.modality), "{}: the model does not embed '{}'; it embeds {}", run_, q.modality,
                    fmt::format("{}", fmt::join(embeds_, ", ")));
  auto b = query_batch(q.modality, {preprocess_query(*p_.pre, q)});
  return embed(q.modality, b.mods.at(q.modality))[0];
}

}  // namespace braid::serve
