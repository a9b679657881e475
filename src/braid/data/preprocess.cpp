#include "braid/data/preprocess.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <random>

#include "braid/core/error.h"
#include "braid/core/runtime.h"
#include "braid/data/series.h"

namespace braid::data {

PreprocessOptions PreprocessOptions::from_config(const Config& d) {
  PreprocessOptions o;
  auto im = d.at("image");
  o.image.size = im.get<int64_t>("size", o.image.size);
  o.image.mean = im.get<std::vector<double>>("mean", o.image.mean);
  o.image.std = im.get<std::vector<double>>("std", o.image.std);
  o.image.background = im.get<double>("background", o.image.background);
  o.image.resize = im.get<std::string>("resize", o.image.resize);
  o.image.resize_size = im.get<int64_t>("resize_size", o.image.resize_size);
  o.image.filter = im.get<std::string>("filter", o.image.filter);
  BRAID_INPUT_CHECK(o.image.resize == "square" || o.image.resize == "shortest",
                    "{}: recipe key '{}': expected square or shortest, got '{}'", d.origin(), im.full("resize"),
                    o.image.resize);
  BRAID_INPUT_CHECK(o.image.filter == "bilinear" || o.image.filter == "bicubic",
                    "{}: recipe key '{}': expected bilinear or bicubic, got '{}'", d.origin(), im.full("filter"),
                    o.image.filter);
  BRAID_INPUT_CHECK(o.image.resize_size == 0 || (o.image.resize_size >= o.image.size && o.image.resize_size <= 16384),
                    "{}: recipe key '{}': expected 0 or {}..16384 (at least '{}'), got {}", d.origin(),
                    im.full("resize_size"), o.image.size, im.full("size"), o.image.resize_size);
  BRAID_INPUT_CHECK(o.image.size > 0 && o.image.size <= 4096, "{}: recipe key '{}': expected 1..4096, got {}",
                    d.origin(), im.full("size"), o.image.size);
  BRAID_INPUT_CHECK(o.image.mean.size() == 3 && o.image.std.size() == 3, "{}: recipe keys '{}' and '{}' need 3 values",
                    d.origin(), im.full("mean"), im.full("std"));
  for (double s : o.image.std) BRAID_INPUT_CHECK(s > 0, "{}: recipe key '{}' must be positive", d.origin(), im.full("std"));

  auto au = d.at("audio");
  o.audio.sample_rate = au.get<int64_t>("sample_rate", o.audio.sample_rate);
  o.audio.n_fft = au.get<int64_t>("n_fft", o.audio.n_fft);
  o.audio.hop = au.get<int64_t>("hop", o.audio.hop);
  o.audio.n_mels = au.get<int64_t>("n_mels", o.audio.n_mels);
  o.audio.f_min = au.get<double>("f_min", o.audio.f_min);
  o.audio.f_max = au.get<double>("f_max", o.audio.f_max);
  o.audio.max_seconds = au.get<double>("max_seconds", o.audio.max_seconds);
  o.audio_normalize = au.get<bool>("normalize", o.audio_normalize);
  BRAID_INPUT_CHECK(o.audio.sample_rate >= 1000 && o.audio.n_fft >= 16 && o.audio.hop > 0 && o.audio.n_mels > 0,
                    "{}: recipe section '{}': need sample_rate >= 1000, n_fft >= 16, hop > 0, n_mels > 0", d.origin(),
                    au.path());

  auto tx = d.at("text");
  o.text.view = tx.get<std::string>("view", o.text.view);
  o.text.max_tokens = tx.get<int64_t>("max_tokens", o.text.max_tokens);
  o.text.vocab = tx.get<int64_t>("vocab", o.text.vocab);
  o.text.tokenizer = tx.get<std::string>("tokenizer", o.text.tokenizer);
  BRAID_INPUT_CHECK(o.text.max_tokens > 0, "{}: recipe key '{}' must be positive", d.origin(), tx.full("max_tokens"));

  auto se = d.at("series");
  o.series.max_steps = se.get<int64_t>("max_steps", o.series.max_steps);
  o.series.normalize = se.get<bool>("normalize", o.series.normalize);
  return o;
}

Preprocessor::Preprocessor(PreprocessOptions opt, std::vector<std::string> modalities,
                           std::shared_ptr<const Tokenizer> tok)
    : opt_(std::move(opt)), modalities_(std::move(modalities)), tok_(std::move(tok)) {}

bool Preprocessor::noisy(const char* modality) const { return opt_.noise.level > 0 && opt_.noise.modality == modality; }

torch::Tensor Preprocessor::image_pixels(const RawImage& img, uint64_t rng_seed) const {
  auto x = fit_image(img, opt_.image);
  if (noisy("image")) {
    auto gen = at::detail::createCPUGenerator(rng_seed);
    auto sigma = x.std();
    x = (x + opt_.noise.level * sigma * at::randn(x.sizes(), gen)).clamp(0.0, 1.0);
  }
  return normalize_image(x, opt_.image);
}

torch::Tensor Preprocessor::image(const std::string& path, uint64_t rng_seed) const {
  return image_pixels(decode_image_file(path, opt_.image.background), rng_seed);
}

torch::Tensor Preprocessor::image_bytes(const uint8_t* bytes, size_t n, const std::string& name,
                                        uint64_t rng_seed) const {
  return image_pixels(decode_image_memory(bytes, n, name, opt_.image.background), rng_seed);
}

torch::Tensor Preprocessor::audio_wave(std::vector<float> s, uint64_t rng_seed) const {
  auto wave = torch::from_blob(s.data(), {static_cast<int64_t>(s.size())}, torch::kFloat32);
  if (noisy("audio")) {
    auto gen = at::detail::createCPUGenerator(rng_seed);
    auto rms = wave.pow(2).mean().sqrt();
    wave = wave + opt_.noise.level * rms * at::randn(wave.sizes(), gen);
  }
  auto m = log_mel(wave, opt_.audio);
  if (opt_.audio_normalize) {
    auto mean = m.mean();
    auto std = m.std(/*unbiased=*/false).clamp_min(1e-3);
    m = (m - mean) / std;
  }
  return m;
}

torch::Tensor Preprocessor::audio(const std::string& path, uint64_t rng_seed) const {
  return audio_wave(load_waveform(path, opt_.audio), rng_seed);
}

torch::Tensor Preprocessor::audio_bytes(const uint8_t* bytes, size_t n, const std::string& name,
                                        uint64_t rng_seed) const {
  return audio_wave(prepare_waveform(decode_audio_memory(bytes, n, name), opt_.audio, name), rng_seed);
}

torch::Tensor Preprocessor::text(const std::string& s, uint64_t rng_seed) const {
  BRAID_INPUT_CHECK(tok_ != nullptr, "text given but no tokenizer is loaded");
  auto ids = tok_->encode(s, static_cast<int>(opt_.text.max_tokens));
  if (noisy("text")) {
    std::mt19937_64 rng(rng_seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    const int vocab = tok_->vocab_size();
    std::vector<int> kept;
    for (int id : ids) {
      double r = u(rng);
      if (r < opt_.noise.level / 2) continue;                                                   // drop
      if (r < opt_.noise.level && vocab > 4) id = 4 + static_cast<int>(rng() % (vocab - 4));   // substitute
      kept.push_back(id);
    }
    ids = kept;
  }
  if (ids.empty()) ids.push_back(1);  // an empty text is one unknown token, so it is still "present"
  return torch::tensor(std::vector<int64_t>(ids.begin(), ids.end()), torch::kLong);
}

static torch::Tensor normalize_series(torch::Tensor x, const SeriesOptions& o, const Noise& noise, uint64_t seed) {
  if (o.max_steps > 0 && x.size(0) > o.max_steps) x = x.slice(0, 0, o.max_steps);
  if (o.normalize) {
    auto mean = x.mean(0, true);
    auto std = x.std(0, /*unbiased=*/false, true).clamp_min(1e-6);
    x = (x - mean) / std;
  }
  if (noise.level > 0 && noise.modality == "series") {
    auto gen = at::detail::createCPUGenerator(seed);
    x = x + noise.level * x.std(0, /*unbiased=*/false, true) * at::randn(x.sizes(), gen);
  }
  return x.contiguous();
}

std::vector<std::string> TextOptions::view_parts() const {
  std::vector<std::string> parts;
  for (size_t a = 0, b; a <= view.size(); a = b + 1) {
    b = std::min(view.find('+', a), view.size());
    parts.push_back(view.substr(a, b - a));
  }
  return parts;
}

// The text of the view(s) `opt` names; a view "a+b" is the texts of views a and b, each on its own
// line (those the sample has; none of them: nullptr), kept in `joined`.
static const std::string* view_text(const SampleRecord& s, const TextOptions& opt, std::string& joined) {
  if (opt.view.find('+') == std::string::npos) return s.text_view(opt.view);
  bool any = false;
  for (const auto& v : opt.view_parts())
    if (const std::string* t = s.text_view(v)) joined += (any ? "\n" : "") + *t, any = true;
  return any ? &joined : nullptr;
}

SampleTensors Preprocessor::process(const SampleRecord& s, const std::string& manifest_path) const {
  SampleTensors out;
  const std::string at = s.where(manifest_path);
  const uint64_t seed = mix_seed(opt_.noise.seed, static_cast<uint64_t>(s.line), 0x5eed);
  for (const auto& m : modalities_) {
    if (!s.has(m)) continue;
    try {
      if (m == "image") {
        out.mods[m] = image(s.image, seed);
      } else if (m == "audio") {
        out.mods[m] = audio(s.audio, seed);
      } else if (m == "text") {
        if (opt_.text.view == "random") {
          // every view ("text:<view>"); "text" is the first one. The loader picks one per epoch.
          if (s.text.empty()) continue;
          for (const auto& [view, t] : s.text) out.mods["text:" + view] = text(t, seed);
          out.mods[m] = out.mods["text:" + s.text.front().first];
          continue;
        }
        std::string joined;
        const std::string* t = view_text(s, opt_.text, joined);
        if (!t) continue;  // this sample lacks the requested view
        out.mods[m] = text(*t, seed);
      } else if (m == "series") {
        auto x = s.series_path.empty() ? series_from_json(s.series_inline, at + ": series") : load_series_file(s.series_path);
        out.mods[m] = normalize_series(x, opt_.series, opt_.noise, seed);
      }
    } catch (const InputError& e) {
      throw InputError(at + ": " + e.what());
    }
  }
  return out;
}

Batch collate(const std::vector<SampleTensors>& samples, const std::vector<std::string>& modalities,
              const std::vector<int64_t>& index) {
  Batch b;
  b.index = index;
  const int64_t B = static_cast<int64_t>(samples.size());
  for (const auto& m : modalities) {
    // find a present example to learn the shape
    torch::Tensor ref;
    int64_t max_len = 0;
    for (const auto& s : samples) {
      auto it = s.mods.find(m);
      if (it == s.mods.end()) continue;
      if (!ref.defined()) ref = it->second;
      int64_t len = m == "image" ? 1 : (m == "audio" ? it->second.size(1) : it->second.size(0));
      max_len = std::max(max_len, len);
    }
    ModalityBatch mb;
    mb.present = torch::zeros({B}, torch::kBool);
    mb.lengths = torch::zeros({B}, torch::kLong);
    if (!ref.defined()) {  // nobody in this batch has it: an all-absent placeholder
      mb.data = torch::Tensor();
      b.mods[m] = mb;
      continue;
    }
    std::vector<int64_t> shape;
    if (m == "image") shape = {B, ref.size(0), ref.size(1), ref.size(2)};
    else if (m == "audio") shape = {B, ref.size(0), max_len};
    else if (m == "text") shape = {B, max_len};
    else shape = {B, max_len, ref.size(1)};
    mb.data = torch::zeros(shape, ref.options());
    auto pres = mb.present.accessor<bool, 1>();
    auto lens = mb.lengths.accessor<int64_t, 1>();
    for (int64_t i = 0; i < B; ++i) {
      auto it = samples[i].mods.find(m);
      if (it == samples[i].mods.end()) continue;
      const auto& t = it->second;
      pres[i] = true;
      if (m == "image") {
        TORCH_CHECK(t.sizes() == ref.sizes(), "image sizes differ inside a batch");
        mb.data[i].copy_(t);
        lens[i] = 1;
      } else if (m == "audio") {
        mb.data[i].narrow(1, 0, t.size(1)).copy_(t);
        lens[i] = t.size(1);
      } else if (m == "text") {
        mb.data[i].narrow(0, 0, t.size(0)).copy_(t);
        lens[i] = t.size(0);
      } else {
        BRAID_INPUT_CHECK(t.size(1) == ref.size(1), "series with {} channels next to series with {} channels; every series must have the same channel count",
                          t.size(1), ref.size(1));
        mb.data[i].narrow(0, 0, t.size(0)).copy_(t);
        lens[i] = t.size(0);
      }
    }
    b.mods[m] = mb;
  }
  return b;
}

}  // namespace braid::data
