// The "prosody" dataset: a two-target regression set. Short English sentences built from templates
// ("the trip was wonderful today") are spoken by espeak-ng with a controlled speaking rate,
// pitch and amplitude. Targets: an arousal-like value, a fixed linear combination of the
// normalized rate and amplitude (heard, not read), and a valence-like value, the sentiment word's
// lexicon score plus small noise (read, and heard only through the words). See docs/datasets.md.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/core/runtime.h"
#include "braid/data/build/common.h"
#include "braid/data/build/speech.h"

namespace braid::data::build {
namespace fs = std::filesystem;

namespace {

constexpr int64_t kProsodyTotal = 3000;
constexpr int64_t kUtterancesPerSentence = 2;  // each sentence is spoken twice, with independent prosody

// Prosody ranges (espeak-ng -s words/min, -p 0..99, -a 0..200; RMS grows about linearly with -a,
// with espeak's limiter touching the loudest peaks near 180).
constexpr int kSpeedMin = 100, kSpeedMax = 260;
constexpr int kPitchMin = 20, kPitchMax = 80;
constexpr int kAmpMin = 60, kAmpMax = 180;

// arousal = 2 * (kRateWeight * rate01 + kAmpWeight * amp01) - 1, in [-1, 1].
constexpr double kRateWeight = 0.6, kAmpWeight = 0.4;
// valence = clamp(score + kValenceNoise * N(0, 1), -1, 1).
constexpr double kValenceNoise = 0.05;

// Sentiment lexicon: 40 adjectives that fit "<subject> <verb> ___", 18 positive, 4 near-neutral,
// 18 negative. The valence scores in [-1, 1] were set by hand for this dataset (ordering in the
// spirit of general-purpose lexicons such as VADER, but no lexicon's numbers were copied); they
// define the valence target and need no outside authority.
struct Sentiment {
  const char* word;
  double score;
};
constexpr std::array<Sentiment, 40> kLexicon{{
    {"wonderful", 0.90},  {"excellent", 0.90}, {"amazing", 0.85},      {"fantastic", 0.85},  {"brilliant", 0.85},
    {"superb", 0.85},     {"perfect", 0.80},   {"delightful", 0.80},   {"lovely", 0.75},     {"great", 0.75},
    {"pleasant", 0.60},   {"cheerful", 0.60},  {"good", 0.55},         {"nice", 0.50},       {"fine", 0.30},
    {"calm", 0.30},       {"decent", 0.25},    {"okay", 0.10},         {"normal", 0.05},     {"quiet", 0.05},
    {"ordinary", 0.00},   {"average", -0.05},  {"strange", -0.15},     {"dull", -0.40},      {"boring", -0.45},
    {"tense", -0.45},     {"gloomy", -0.55},   {"poor", -0.55},        {"bad", -0.60},       {"disappointing", -0.60},
    {"unpleasant", -0.60}, {"sad", -0.65},     {"painful", -0.70},     {"nasty", -0.75},     {"miserable", -0.80},
    {"terrible", -0.85},  {"awful", -0.85},    {"dreadful", -0.85},    {"horrible", -0.90},  {"disgusting", -0.90},
}};

// Sentence frame = subject + linking verb + (sentiment word) + optional tail: 24 x 7 x 8 = 1,344 frames.
const char* const kSubjects[] = {"the trip",   "my lunch",  "our meeting", "the movie",   "the weather", "his speech",
                                 "her garden", "the concert", "my day",    "the party",   "the hotel",   "your idea",
                                 "the journey", "the dinner", "their house", "the game",  "my exam",     "the song",
                                 "the book",   "our holiday", "the show",  "the food",    "the class",   "the weekend"};
const char* const kVerbs[] = {"was", "is", "felt", "seemed", "looked", "sounded", "turned out"};
const char* const kTails[] = {"", "today", "again", "this time", "last night", "to me", "in the end", "for once"};
constexpr int64_t kNumSubjects = sizeof(kSubjects) / sizeof(kSubjects[0]);
constexpr int64_t kNumVerbs = sizeof(kVerbs) / sizeof(kVerbs[0]);
constexpr int64_t kNumTails = sizeof(kTails) / sizeof(kTails[0]);
constexpr int64_t kFrames = kNumSubjects * kNumVerbs * kNumTails;

std::string sentence_text(int64_t frame, const char* word) {
  const int64_t t = frame % kNumTails, v = (frame / kNumTails) % kNumVerbs, s = frame / (kNumTails * kNumVerbs);
  std::string text = fmt::format("{} {} {}", kSubjects[s], kVerbs[v], word);
  if (kTails[t][0] != '\0') text += std::string(" ") + kTails[t];
  return text;
}

double round4(double x) { return std::round(x * 1e4) / 1e4; }

struct Sample {
  Record record;
  std::string voice, word;
  int speed = 0, pitch = 0, amplitude = 0;
  double score = 0, arousal = 0, valence = 0;
};

// The manifest line: id, split, target [arousal, valence], text, audio.
std::string manifest_line(const Sample& s) {
  nlohmann::ordered_json j;
  j["id"] = s.record.id;
  j["split"] = s.record.split;
  j["target"] = {s.arousal, s.valence};
  j["text"] = s.record.text;
  j["audio"] = s.record.audio;
  return j.dump();
}

}  // namespace

BuildReport build_prosody(const BuildOptions& opt) {
  const int64_t total = opt.limit > 0 ? opt.limit : kProsodyTotal;
  const int64_t n_sentences = (total + kUtterancesPerSentence - 1) / kUtterancesPerSentence;
  const int64_t n_words = static_cast<int64_t>(kLexicon.size());
  BRAID_INPUT_CHECK(n_sentences <= kFrames * n_words, "data build prosody: limit {} needs {} distinct sentences; the templates make {}",
                    total, n_sentences, kFrames * n_words);

  // ---- sentences: word j % 40 of a seeded word order, each word's frames in a seeded order ----
  std::vector<int64_t> word_order(static_cast<size_t>(n_words));
  for (int64_t w = 0; w < n_words; ++w) word_order[static_cast<size_t>(w)] = w;
  Rng(braid::mix_seed(opt.seed, hash_string("prosody-words"))).shuffle(word_order);
  std::vector<std::vector<int64_t>> frames_of(static_cast<size_t>(n_words));
  std::vector<int64_t> sentence_word(static_cast<size_t>(n_sentences));
  std::vector<std::string> sentences(static_cast<size_t>(n_sentences));
  for (int64_t j = 0; j < n_sentences; ++j) {
    const int64_t w = word_order[static_cast<size_t>(j % n_words)];
    auto& frames = frames_of[static_cast<size_t>(w)];
    if (frames.empty()) {
      frames.resize(static_cast<size_t>(kFrames));
      for (int64_t f = 0; f < kFrames; ++f) frames[static_cast<size_t>(f)] = f;
      Rng(braid::mix_seed(opt.seed, hash_string("prosody-frames"), static_cast<uint64_t>(w))).shuffle(frames);
    }
    sentence_word[static_cast<size_t>(j)] = w;
    sentences[static_cast<size_t>(j)] = sentence_text(frames[static_cast<size_t>(j / n_words)], kLexicon[static_cast<size_t>(w)].word);
  }

  // ---- splits per sentence (all utterances of a sentence share it, so test sentences are unseen in
  // training): exactly 70 / 15 / 15 of the sentences, at least one val and one test from 3 on ----
  std::vector<std::string> split_of_sentence(static_cast<size_t>(n_sentences), "train");
  {
    int64_t val = n_sentences * 15 / 100, test = n_sentences * 15 / 100;
    if (n_sentences >= 3) val = std::max<int64_t>(val, 1), test = std::max<int64_t>(test, 1);
    for (int64_t j = 0; j < val + test; ++j) split_of_sentence[static_cast<size_t>(j)] = j < val ? "val" : "test";
    Rng(braid::mix_seed(opt.seed, hash_string("prosody-splits"))).shuffle(split_of_sentence);
  }

  // ---- samples: voice and prosody drawn per sample id ----
  const fs::path out(opt.out_dir);
  const std::string main_name = "manifest.jsonl", params_name = "prosody_params.tsv";
  remove_stale_manifests(opt.out_dir, {main_name, params_name});
  braid::make_dirs((out / "audio").string());
  const auto voices = english_voices();
  std::vector<Sample> samples;
  std::vector<SpeechJob> speak;
  samples.reserve(static_cast<size_t>(total));
  for (int64_t k = 0; k < total; ++k) {
    const int64_t j = k / kUtterancesPerSentence;
    const Sentiment& sw = kLexicon[static_cast<size_t>(sentence_word[static_cast<size_t>(j)])];
    Sample s;
    s.record.id = fmt::format("s{:05}-{}", j, k % kUtterancesPerSentence);
    s.record.split = split_of_sentence[static_cast<size_t>(j)];
    s.record.text = sentences[static_cast<size_t>(j)];
    s.record.audio = "audio/" + s.record.id + ".wav";
    Rng rng(braid::mix_seed(opt.seed, hash_string("prosody-sample"), hash_string(s.record.id)));
    s.voice = voices[static_cast<size_t>(rng.below(static_cast<int64_t>(voices.size())))];
    s.speed = static_cast<int>(rng.range(kSpeedMin, kSpeedMax));
    s.pitch = static_cast<int>(rng.range(kPitchMin, kPitchMax));
    s.amplitude = static_cast<int>(rng.range(kAmpMin, kAmpMax));
    s.word = sw.word;
    s.score = sw.score;
    const double rate01 = static_cast<double>(s.speed - kSpeedMin) / (kSpeedMax - kSpeedMin);
    const double amp01 = static_cast<double>(s.amplitude - kAmpMin) / (kAmpMax - kAmpMin);
    s.arousal = round4(2.0 * (kRateWeight * rate01 + kAmpWeight * amp01) - 1.0);
    s.valence = round4(std::clamp(sw.score + kValenceNoise * rng.normal(), -1.0, 1.0));
    speak.push_back({s.voice, s.speed, s.pitch, s.amplitude, s.record.text.get<std::string>(), (out / s.record.audio).string()});
    samples.push_back(std::move(s));
  }

  speak_to_files(speak, opt.threads, "prosody speech");

  // The generating parameters, for analysis (not read by braid), then the manifest last.
  std::string params = "id\tsplit\tvoice\tspeed\tpitch\tamplitude\tword\tscore\tarousal\tvalence\ttext\n";
  std::string manifest;
  std::vector<Record> records;
  for (const auto& s : samples) {
    params += fmt::format("{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n", s.record.id, s.record.split, s.voice, s.speed, s.pitch,
                          s.amplitude, s.word, s.score, s.arousal, s.valence, s.record.text.get<std::string>());
    manifest += manifest_line(s) + "\n";
    records.push_back(s.record);
  }
  braid::atomic_write_text((out / params_name).string(), params);
  BuildReport report;
  report.manifest = (out / main_name).string();
  braid::atomic_write_text(report.manifest, manifest);
  count_splits(records, report);
  spdlog::info("prosody: {} sentences ({} words x {} frames available), {} utterances each", n_sentences, n_words, kFrames,
               kUtterancesPerSentence);
  return report;
}

}  // namespace braid::data::build
