// The "ave" dataset: AVE-style audio-visual event localization sequences (Tian et al. 2018,
// https://arxiv.org/abs/1803.08842) made from the emoji sources. Each sequence is 10 one-second segments;
// an event (one emoji shown and its English name spoken) covers a contiguous span, the other segments show
// other emoji and hear noise or other emoji's names, never the name of the emoji on screen. Labels per
// segment: the event emoji's category inside the span, "background" outside. Splits by emoji: an emoji's
// images and speech occur in one split only. Layout: data/build/ave.h; docs/datasets.md, section `ave`.
#include "braid/data/build/ave.h"

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
#include "braid/data/build/emoji_source.h"
#include "braid/data/image.h"

namespace braid::data {

const std::vector<std::string>& ave_segment_classes() {
  static const std::vector<std::string> c{"background",    "Activities", "Animals & Nature",
                                          "Flags",         "Food & Drink", "Objects",
                                          "People & Body", "Smileys & Emotion", "Symbols",
                                          "Travel & Places"};
  return c;
}

namespace build {
namespace fs = std::filesystem;

namespace {

constexpr int64_t T = kAveSegments;
constexpr int64_t kDefaultSequences = 900;   // 600 / 150 / 150
constexpr int64_t kUtterancesPerEmoji = 2;   // speech pool: two voices per emoji
constexpr int64_t kMinPool = 30;             // emoji in the pool of a small build (>= 2 per split)
constexpr int64_t kMinSpan = 2, kMaxSpan = 8; // event length in segments
constexpr int64_t kMaxRun = kMaxSpan;        // background images and sounds last 1..8 segments, like events
constexpr double kBackgroundSpeech = 0.7;    // share of background sound runs that are another emoji's name
constexpr int64_t kFramePixels = 3 * kAveFrameSide * kAveFrameSide;
const char* const kStyles[2] = {"google", "twitter"};

// What one sequence shows and says (also written to events.tsv).
struct Plan {
  int split = 0;
  int64_t event = 0;                 // pool index of the event emoji
  int64_t start = 0, end = 0;        // event span [start, end) in segments
  std::array<int64_t, T> frame{};    // pool index of the emoji shown in segment t
  std::array<int, T> style{};        // 0 google, 1 twitter
  std::array<int64_t, T> speech{};   // pool index of the name heard in segment t, -1 = noise only
};

// A pool emoji other than `event` and the ones in `avoid` from `choices` (-1 when none after a few tries).
int64_t pick_other(const std::vector<int64_t>& choices, int64_t event, const std::vector<int64_t>& avoid, Rng& rng) {
  for (int attempt = 0; attempt < 16; ++attempt) {
    int64_t c = choices[static_cast<size_t>(rng.below(static_cast<int64_t>(choices.size())))];
    if (c != event && std::find(avoid.begin(), avoid.end(), c) == avoid.end()) return c;
  }
  return -1;
}

// Add `utt` (peak 1) times `gain` repeatedly from `from` until `to` (samples), with gaps of 50..300 ms;
// the last copy is cut at `to` with a 10 ms fade-out.
void add_speech(std::vector<float>& wave, const std::vector<float>& utt, double gain, int64_t from, int64_t to, Rng& rng) {
  const int64_t rate = kAveSampleRate, fade = rate / 100;
  int64_t pos = from + rng.below(rate / 10);
  while (pos < to) {
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(utt.size()), to - pos);
    const bool cut = n < static_cast<int64_t>(utt.size());
    for (int64_t i = 0; i < n; ++i) {
      double g = gain;
      if (cut && i >= n - fade) g *= static_cast<double>(n - i) / static_cast<double>(fade);
      wave[static_cast<size_t>(pos + i)] += static_cast<float>(g * utt[static_cast<size_t>(i)]);
    }
    pos += static_cast<int64_t>(utt.size()) + static_cast<int64_t>(rng.uniform(0.05, 0.30) * static_cast<double>(rate));
  }
}

}  // namespace

BuildReport build_ave(const BuildOptions& opt) {
  EmojiSource source = load_emoji_source(opt, "ave");
  const auto& classes = ave_segment_classes();
  auto class_id = [&](const std::string& category) {
    auto it = std::find(classes.begin() + 1, classes.end(), category);
    return it == classes.end() ? int64_t{-1} : static_cast<int64_t>(it - classes.begin());
  };
  for (const auto& e : source.entries)
    BRAID_INPUT_CHECK(class_id(e.category) > 0, "ave: emoji-datasource category '{}' of {} is not one of the 9 expected ({})",
                      e.category, e.unified, fmt::join(classes.begin() + 1, classes.end(), ", "));

  // ---- sizes: sequences per split, the emoji pool and its split ----
  const int64_t n_seq = opt.limit > 0 ? opt.limit : kDefaultSequences;
  BRAID_INPUT_CHECK(n_seq >= 3, "data build ave: --limit {} is too small (at least 3 sequences: one per split)", n_seq);
  const std::array<int64_t, 3> seq_count = {n_seq - 2 * std::max<int64_t>(1, n_seq / 6), std::max<int64_t>(1, n_seq / 6),
                                            std::max<int64_t>(1, n_seq / 6)};
  const int64_t want_pool = std::max<int64_t>(kMinPool, (2 * n_seq + 2) / 3);
  const std::vector<EmojiEntry> pool = evenly_spaced(source.entries, want_pool);
  const int64_t P = static_cast<int64_t>(pool.size());
  BRAID_INPUT_CHECK(P >= kMinPool, "ave: only {} emoji after the join; at least {} are needed", P, kMinPool);
  std::array<std::vector<int64_t>, 3> by_split;  // pool indices of each split's emoji, in pool order
  {
    std::vector<int64_t> order(static_cast<size_t>(P));
    for (int64_t i = 0; i < P; ++i) order[static_cast<size_t>(i)] = i;
    Rng rng(braid::mix_seed(opt.seed, hash_string("ave-split")));
    rng.shuffle(order);
    const int64_t val = std::max<int64_t>(2, P * 15 / 100), test = val, train = P - val - test;
    std::vector<int> split_of_emoji(static_cast<size_t>(P));
    for (int64_t k = 0; k < P; ++k)
      split_of_emoji[static_cast<size_t>(order[static_cast<size_t>(k)])] = k < train ? 0 : k < train + val ? 1 : 2;
    for (int64_t i = 0; i < P; ++i) by_split[static_cast<size_t>(split_of_emoji[static_cast<size_t>(i)])].push_back(i);
  }

  const fs::path out(opt.out_dir);
  const std::string main_name = "manifest.jsonl", events_name = "events.tsv";
  remove_stale_manifests(opt.out_dir, {main_name});
  const fs::path pool_dir = out / ".ave-pool";
  braid::make_dirs(pool_dir.string());
  braid::make_dirs((out / "frames").string());
  braid::make_dirs((out / "audio").string());

  // ---- speech pool: each pool emoji's English name, two voices, trimmed, peak 1, at 16 kHz ----
  const auto voices = english_voices();
  std::vector<SpeechJob> speak;
  for (int64_t i = 0; i < P; ++i)
    for (int64_t u = 0; u < kUtterancesPerEmoji; ++u) {
      Rng rng(braid::mix_seed(opt.seed, hash_string("ave-voice-" + pool[static_cast<size_t>(i)].unified), static_cast<uint64_t>(u)));
      const std::string& voice = voices[static_cast<size_t>(rng.below(static_cast<int64_t>(voices.size())))];
      const int speed = static_cast<int>(rng.range(150, 220));
      const int pitch = static_cast<int>(rng.range(30, 70));
      speak.push_back({voice, speed, pitch, -1, pool[static_cast<size_t>(i)].en_label,
                       (pool_dir / fmt::format("{}-{}.wav", i, u)).string()});
    }
  speak_to_files(speak, opt.threads, "ave speech pool");
  std::vector<std::vector<float>> utterances(static_cast<size_t>(P * kUtterancesPerEmoji));
  parallel_for(
      static_cast<int64_t>(utterances.size()), opt.threads,
      [&](int64_t k) {
        const std::string path = (pool_dir / fmt::format("{}-{}.wav", k / kUtterancesPerEmoji, k % kUtterancesPerEmoji)).string();
        int64_t rate = 0;
        auto wave = trim_normalize(read_wav_mono(path, &rate), rate, path);
        wave = resample(wave, rate, kAveSampleRate);
        float peak = 0;
        for (float v : wave) peak = std::max(peak, std::fabs(v));
        for (auto& v : wave) v /= std::max(peak, 1e-6f);
        utterances[static_cast<size_t>(k)] = std::move(wave);
      },
      "ave speech pool");

  // ---- frames: each pool emoji in both styles, composited over white, 32 x 32 ----
  std::vector<std::vector<float>> frames(static_cast<size_t>(P * 2));  // [3, 32, 32] in [0, 1]
  parallel_for(
      static_cast<int64_t>(frames.size()), opt.threads,
      [&](int64_t k) {
        const EmojiEntry& e = pool[static_cast<size_t>(k / 2)];
        const std::string path = (fs::path(source.style_dirs.at(kStyles[k % 2])) / e.image).string();
        BRAID_INPUT_CHECK(is_png(path), "ave: expected a PNG image at {} (missing or not a PNG); `bash scripts/setup.sh` installs it",
                          path);
        torch::Tensor img = resize_image(decode_image_file(path, 1.0), kAveFrameSide, kAveFrameSide).contiguous();
        const float* p = img.data_ptr<float>();
        frames[static_cast<size_t>(k)].assign(p, p + kFramePixels);
      },
      "ave frames");

  // ---- plans: event emoji cycle through a seeded order of their split's emoji ----
  std::vector<Plan> plans;
  for (int s = 0; s < 3; ++s) {
    std::vector<int64_t> events = by_split[static_cast<size_t>(s)];
    Rng order_rng(braid::mix_seed(opt.seed, hash_string("ave-events"), static_cast<uint64_t>(s)));
    order_rng.shuffle(events);
    for (int64_t j = 0; j < seq_count[static_cast<size_t>(s)]; ++j) {
      Plan p;
      p.split = s;
      p.event = events[static_cast<size_t>(j % static_cast<int64_t>(events.size()))];
      plans.push_back(p);
    }
  }
  std::vector<std::string> ids(plans.size());
  for (size_t i = 0; i < plans.size(); ++i) ids[i] = fmt::format("ave-{:05}", i);

  // ---- render: every draw of sequence i comes from its own stream, so threads do not change the bytes ----
  parallel_for(
      static_cast<int64_t>(plans.size()), opt.threads,
      [&](int64_t i) {
        Plan& p = plans[static_cast<size_t>(i)];
        const auto& choices = by_split[static_cast<size_t>(p.split)];
        Rng rng(braid::mix_seed(opt.seed, hash_string("ave-sequence"), static_cast<uint64_t>(i)));
        const int64_t len = rng.range(kMinSpan, kMaxSpan);
        p.start = rng.range(0, T - len);
        p.end = p.start + len;
        const int event_style = static_cast<int>(rng.below(2));
        const int64_t event_utt = rng.below(kUtterancesPerEmoji);
        // Visual: the event emoji over the span; elsewhere other emoji held for 1..8 segments (never across the span),
        // so how long a picture stays says nothing about whether it is the event.
        for (int64_t t = 0; t < T;) {
          if (t >= p.start && t < p.end) {
            p.frame[static_cast<size_t>(t)] = p.event, p.style[static_cast<size_t>(t)] = event_style, ++t;
            continue;
          }
          const int64_t stop = t < p.start ? p.start : T;
          const int64_t run_end = std::min(stop, t + rng.range(1, kMaxRun));
          const int64_t other = pick_other(choices, p.event, {}, rng);
          if (other < 0) throw std::runtime_error(fmt::format("ave: split {} has no emoji besides the event's", split_name(p.split)));
          const int st = static_cast<int>(rng.below(2));
          for (; t < run_end; ++t) p.frame[static_cast<size_t>(t)] = other, p.style[static_cast<size_t>(t)] = st;
        }
        // Audio: the event name over the span; elsewhere runs of 1..8 segments of another emoji's name (p = 0.7; never
        // the event's nor one shown during the run) or noise only.
        std::vector<float> wave(static_cast<size_t>(T * kAveSampleRate), 0.0f);
        p.speech.fill(-1);
        const double event_gain = rng.uniform(0.3, 0.7);
        add_speech(wave, utterances[static_cast<size_t>(p.event * kUtterancesPerEmoji + event_utt)], event_gain,
                   p.start * kAveSampleRate, p.end * kAveSampleRate, rng);
        for (int64_t t = p.start; t < p.end; ++t) p.speech[static_cast<size_t>(t)] = p.event;
        for (int64_t t = 0; t < T;) {
          if (t >= p.start && t < p.end) {
            ++t;
            continue;
          }
          const int64_t stop = t < p.start ? p.start : T;
          const int64_t run_end = std::min(stop, t + rng.range(1, kMaxRun));
          if (rng.uniform() < kBackgroundSpeech) {
            std::vector<int64_t> shown;
            for (int64_t k = t; k < run_end; ++k) shown.push_back(p.frame[static_cast<size_t>(k)]);
            const int64_t other = pick_other(choices, p.event, shown, rng);
            if (other >= 0) {
              const int64_t u = rng.below(kUtterancesPerEmoji);
              add_speech(wave, utterances[static_cast<size_t>(other * kUtterancesPerEmoji + u)], rng.uniform(0.3, 0.7),
                         t * kAveSampleRate, run_end * kAveSampleRate, rng);
              for (int64_t k = t; k < run_end; ++k) p.speech[static_cast<size_t>(k)] = other;
            }
          }
          t = run_end;
        }
        // Background noise over the whole clip (white or pink, RMS 0.005..0.04), then a random peak 0.5..0.9.
        double npow = 0;
        const auto noise = noise_wave(static_cast<int64_t>(wave.size()), rng.uniform() < 0.5, rng, &npow);
        const double noise_scale = rng.uniform(0.005, 0.04) / std::sqrt(std::max(npow, 1e-12));
        float peak = 0;
        for (size_t k = 0; k < wave.size(); ++k) {
          wave[k] += static_cast<float>(noise_scale * noise[k]);
          peak = std::max(peak, std::fabs(wave[k]));
        }
        const float g = static_cast<float>(rng.uniform(0.5, 0.9) / std::max(peak, 1e-6f));
        for (auto& v : wave) v *= g;
        write_wav((out / "audio" / (ids[static_cast<size_t>(i)] + ".wav")).string(), wave, kAveSampleRate);

        // Frames: each with its own pixel noise (sigma 0.02..0.08), laid out in the 4 x 4 grid.
        constexpr int64_t side = kAveGridCols * kAveFrameSide;
        std::vector<uint8_t> grid(static_cast<size_t>(side * side * 3), 255);
        for (int64_t t = 0; t < T; ++t) {
          const auto& f = frames[static_cast<size_t>(p.frame[static_cast<size_t>(t)] * 2 + p.style[static_cast<size_t>(t)])];
          const double sigma = rng.uniform(0.02, 0.08);
          const int64_t y0 = (t / kAveGridCols) * kAveFrameSide, x0 = (t % kAveGridCols) * kAveFrameSide;
          for (int64_t c = 0; c < 3; ++c)
            for (int64_t y = 0; y < kAveFrameSide; ++y)
              for (int64_t x = 0; x < kAveFrameSide; ++x) {
                double v = f[static_cast<size_t>((c * kAveFrameSide + y) * kAveFrameSide + x)] + sigma * rng.normal();
                grid[static_cast<size_t>(((y0 + y) * side + x0 + x) * 3 + c)] =
                    static_cast<uint8_t>(std::lround(std::clamp(v, 0.0, 1.0) * 255.0));
              }
        }
        write_png((out / "frames" / (ids[static_cast<size_t>(i)] + ".png")).string(), side, side, 3, grid.data());
      },
      "ave sequences");
  try {
    braid::remove_tree(pool_dir);
  } catch (...) {  // a leftover scratch folder does not spoil the dataset
  }

  // ---- events.tsv (for analysis; braid does not read it), then the manifest ----
  BuildReport report;
  report.per_split = {{"train", 0}, {"val", 0}, {"test", 0}};
  std::string tsv = "id\tsplit\tevent\tname\tlabel\tstart\tend\tframes\tspeech\n", manifest;
  for (size_t i = 0; i < plans.size(); ++i) {
    const Plan& p = plans[i];
    const EmojiEntry& ev = pool[static_cast<size_t>(p.event)];
    const int64_t cid = class_id(ev.category);
    std::vector<int64_t> target(T, 0);
    std::vector<std::string> shown, heard;
    for (int64_t t = 0; t < T; ++t) {
      if (t >= p.start && t < p.end) target[static_cast<size_t>(t)] = cid;
      shown.push_back(pool[static_cast<size_t>(p.frame[static_cast<size_t>(t)])].unified + "-" + kStyles[p.style[static_cast<size_t>(t)]]);
      heard.push_back(p.speech[static_cast<size_t>(t)] < 0 ? "-" : pool[static_cast<size_t>(p.speech[static_cast<size_t>(t)])].unified);
    }
    nlohmann::ordered_json j;
    j["id"] = ids[i];
    j["split"] = split_name(p.split);
    j["label"] = ev.category;
    j["group"] = ev.unified;
    j["target"] = target;
    j["image"] = "frames/" + ids[i] + ".png";
    j["audio"] = "audio/" + ids[i] + ".wav";
    manifest += j.dump() + "\n";
    tsv += fmt::format("{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n", ids[i], split_name(p.split), ev.unified, ascii_lower(ev.en_label),
                       ev.category, p.start, p.end, fmt::join(shown, ","), fmt::join(heard, ","));
    report.per_split[split_name(p.split)]++;
  }
  braid::atomic_write_text((out / events_name).string(), tsv);
  report.manifest = (out / main_name).string();
  braid::atomic_write_text(report.manifest, manifest);
  report.samples = static_cast<int64_t>(plans.size());
  spdlog::info("ave: {} emoji in the pool ({} / {} / {} train / val / test), {} utterances", P, by_split[0].size(),
               by_split[1].size(), by_split[2].size(), utterances.size());
  return report;
}

}  // namespace build
}  // namespace braid::data
