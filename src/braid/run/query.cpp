// braid/run/query.cpp — one user input through the run's preprocessing.
#include "braid/run/query.h"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "braid/core/error.h"
#include "braid/data/preprocess.h"

namespace braid::run {

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

std::string text_prefix(const std::string& text, int64_t max_tokens) {
  const size_t limit = static_cast<size_t>(std::max<int64_t>(4096, max_tokens * 64));
  if (text.size() <= limit) return text;
  size_t cut = limit;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 sequence
  return text.substr(0, cut);
}

torch::Tensor preprocess_query(const data::Preprocessor& pre, const Query& q) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(q.payload.data());
  if (q.modality == "text") {
    BRAID_INPUT_CHECK(!q.payload.empty(), "{}: empty text; expected a non-empty query", q.name);
    return pre.text(text_prefix(q.payload, pre.options().text.max_tokens));
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

Batch query_batch(const std::string& modality, const std::vector<torch::Tensor>& inputs) {
  std::vector<data::SampleTensors> samples(inputs.size());
  std::vector<int64_t> index(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    samples[i].mods[modality] = inputs[i];
    index[i] = static_cast<int64_t>(i);
  }
  return data::collate(samples, {modality}, index);
}

}  // namespace braid::run
