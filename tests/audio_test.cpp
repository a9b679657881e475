// Audio decoding, resampling and log-mel features against goldens from scripts/make_goldens.py.
//
// Tolerances: decoded samples are exact (int16 / 32768 and the mean of two such values are exact in float32).
// The resampler golden is a float64 numpy copy of the same filter, rounded to float32: 1e-6 (measured 0).
// The mel filterbank golden is float64 numpy rounded to float32: 1e-6 (measured 0). The log-mel goldens are
// float64 (torch.stft + numpy filterbank) while the C++ runs the STFT in float32, whose rounding error is
// ~1e-7 of the largest bin; in the quieter mel bands that is up to a few 1e-5 in log units (measured 2.6e-5
// here). 2e-4 absolute on the log values leaves ~8x margin for other FFT backends (MKL, LibTorch 2.x).
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <vector>

#include "braid/core/error.h"
#include "braid/data/audio.h"
#include "braid/data/npy.h"
#include "test_util.h"
#include "braid/core/fs.h"

namespace {

namespace bd = braid::data;
using braid::test::AllClose;
using braid::test::broken;
using braid::test::ExpectInputError;
using braid::test::golden;

constexpr double kLogMelTol = 2e-4;


// Shapes equal and max |got - want| <= atol; the message names the worst element.

torch::Tensor vec(const std::vector<float>& v) {
  return torch::from_blob(const_cast<float*>(v.data()), {int64_t(v.size())}, torch::kFloat32).clone();
}
std::vector<float> to_vec(const torch::Tensor& t) {
  auto c = t.to(torch::kFloat32).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

std::vector<float> sine(double freq, int64_t rate, int64_t n, double amp = 0.5) {
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[size_t(i)] = float(amp * std::sin(2.0 * M_PI * freq * double(i) / double(rate)));
  return x;
}

double rms(const std::vector<float>& x) {
  double s = 0;
  for (float v : x) s += double(v) * v;
  return std::sqrt(s / double(x.size()));
}

// Frequency (Hz) of the largest |rfft| bin of x sampled at `rate`, and the bin width.
std::pair<double, double> dominant_frequency(const std::vector<float>& x, int64_t rate) {
  auto spec = torch::fft::rfft(vec(x).to(torch::kFloat64)).abs();
  const int64_t k = spec.argmax().item<int64_t>();
  const double bin = double(rate) / double(x.size());
  return {double(k) * bin, bin};
}

TEST(AudioDecode, MonoWavSamplesAreExact) {
  auto w = bd::decode_audio_file(golden("mono16k.wav"));
  EXPECT_EQ(w.sample_rate, 16000);
  EXPECT_TRUE(AllClose(vec(w.samples), bd::read_npy(golden("mono16k_samples.npy")), 0.0, "mono samples"));
}

TEST(AudioDecode, StereoIsAveragedToMono) {
  auto w = bd::decode_audio_file(golden("stereo22k.wav"));
  EXPECT_EQ(w.sample_rate, 22050);
  EXPECT_TRUE(AllClose(vec(w.samples), bd::read_npy(golden("stereo22k_mono.npy")), 0.0, "stereo mixdown"));
}

TEST(AudioDecode, MemoryEqualsFile) {
  std::ifstream f(golden("stereo22k.wav"), std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), {});
  auto a = bd::decode_audio_memory(bytes.data(), bytes.size(), "mem.wav");
  auto b = bd::decode_audio_file(golden("stereo22k.wav"));
  EXPECT_EQ(a.sample_rate, b.sample_rate);
  EXPECT_EQ(a.samples, b.samples);
}

TEST(AudioDecode, WriteWavRoundTrip) {
  auto dir = std::filesystem::temp_directory_path() / ("braid_audio_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto x = sine(440.0, 8000, 1000, 0.9);
  bd::write_wav((dir / "a.wav").string(), x, 8000);
  auto w = bd::decode_audio_file((dir / "a.wav").string());
  EXPECT_EQ(w.sample_rate, 8000);
  EXPECT_TRUE(AllClose(vec(w.samples), vec(x), 2.0 / 32768.0, "16-bit round trip"));  // *32767 on write, /32768 on read
  braid::remove_tree(dir);
}

TEST(AudioResample, MatchesReferenceImplementation) {
  auto mono = to_vec(bd::read_npy(golden("stereo22k_mono.npy")));
  EXPECT_TRUE(AllClose(vec(bd::resample(mono, 22050, 16000)), bd::read_npy(golden("stereo22k_mono_to16k.npy")), 1e-6,
                       "resample 22050 -> 16000"));
  auto head = to_vec(bd::read_npy(golden("mono16k_samples.npy")));
  std::vector<float> h800(head.begin(), head.begin() + 800), h400(head.begin(), head.begin() + 400);
  EXPECT_TRUE(AllClose(vec(bd::resample(h800, 16000, 44100)), bd::read_npy(golden("mono16k_head800_to44100.npy")),
                       1e-6, "resample 16000 -> 44100"));
  // coprime rates: too many phases for the weight table, weights are computed per output sample
  EXPECT_TRUE(AllClose(vec(bd::resample(h400, 16000, 192001)), bd::read_npy(golden("mono16k_head400_to192001.npy")),
                       1e-6, "resample 16000 -> 192001"));
}

TEST(AudioResample, SineKeepsFrequencyAndLevel) {
  // 1 kHz at 22050 Hz for 1 s -> 16000 Hz: 16000 samples, peak at 1 kHz, same RMS.
  auto x = sine(1000.0, 22050, 22050);
  auto y = bd::resample(x, 22050, 16000);
  ASSERT_EQ(y.size(), size_t(16000));
  auto [f, bin] = dominant_frequency(y, 16000);
  EXPECT_NEAR(f, 1000.0, 0.5 * bin);
  EXPECT_NEAR(rms(y) / rms(x), 1.0, 0.02);
  // upsampling, and the per-sample-weights path (44100 -> 192001 Hz has 192001 phases, too many to tabulate)
  for (int64_t to : {48000, 192001}) {
    auto x2 = sine(1000.0, 44100, 4410);
    auto y2 = bd::resample(x2, 44100, to);
    EXPECT_EQ(int64_t(y2.size()), (int64_t(4410) * to + 44099) / 44100) << to;
    auto [f2, bin2] = dominant_frequency(y2, to);
    EXPECT_NEAR(f2, 1000.0, bin2) << to;
    EXPECT_NEAR(rms(y2) / rms(x2), 1.0, 0.02) << to;
  }
}

TEST(AudioResample, RemovesContentAboveTheNewNyquist) {
  // 11 kHz at 44.1 kHz cannot exist at 16 kHz: it must be filtered out, not aliased to 5 kHz.
  auto y = bd::resample(sine(11000.0, 44100, 44100), 44100, 16000);
  std::vector<float> mid(y.begin() + 1000, y.end() - 1000);
  EXPECT_LT(rms(mid), 0.5 / std::sqrt(2.0) * 0.01);  // below -40 dB
}

TEST(AudioResample, IdentityAndLengths) {
  auto x = sine(300.0, 16000, 999);
  EXPECT_EQ(bd::resample(x, 16000, 16000), x);
  EXPECT_EQ(bd::resample(x, 16000, 8000).size(), size_t(500));   // ceil(999 / 2)
  EXPECT_EQ(bd::resample(x, 16000, 32000).size(), size_t(1998));
  EXPECT_TRUE(bd::resample({}, 16000, 8000).empty());
  EXPECT_THROW(bd::resample(x, 0, 16000), braid::InputError);
}

TEST(AudioMel, FilterbankMatchesTorchaudioFormula) {
  auto fb = bd::mel_filterbank(257, 40, 16000, 20.0, 7600.0);
  EXPECT_TRUE(AllClose(fb, bd::read_npy(golden("melfb_257_40_16000_20_7600.npy")), 1e-6, "mel filterbank"));
  // a different shape: rows are frequencies, columns mels, all within [0, 1]
  auto fb2 = bd::mel_filterbank(201, 64, 16000, 0.0, 8000.0);
  EXPECT_EQ(fb2.sizes(), torch::IntArrayRef({201, 64}));
  EXPECT_LE(fb2.max().item<double>(), 1.0);
  EXPECT_GE(fb2.min().item<double>(), 0.0);
  EXPECT_THROW(bd::mel_filterbank(201, 64, 16000, 100.0, 50.0), braid::InputError);
}

TEST(AudioMel, LogMelMatchesTorchStft) {
  auto wave = bd::read_npy(golden("mono16k_samples.npy"));
  bd::AudioOptions a;  // 400 / 160 / 64, f_max = sr / 2
  EXPECT_TRUE(AllClose(bd::log_mel(wave, a), bd::read_npy(golden("mono16k_logmel_400_160_64.npy")), kLogMelTol,
                       "log-mel 400/160/64"));
  bd::AudioOptions b;
  b.n_fft = 512;
  b.hop = 128;
  b.n_mels = 40;
  b.f_min = 20.0;
  b.f_max = 7600.0;
  EXPECT_TRUE(AllClose(bd::log_mel(wave, b), bd::read_npy(golden("mono16k_logmel_512_128_40.npy")), kLogMelTol,
                       "log-mel 512/128/40"));
}

TEST(AudioMel, ShortAndSilentWaves) {
  bd::AudioOptions opt;
  for (int64_t n : {0, 1, 100, 200, 201, 399, 400}) {
    auto m = bd::log_mel(torch::full({n}, 0.25f), opt);
    EXPECT_EQ(m.size(0), 64) << n;
    EXPECT_EQ(m.size(1), 1 + std::max<int64_t>(n, 400) / 160) << n;
    EXPECT_TRUE(torch::isfinite(m).all().item<bool>()) << n;
  }
  auto silent = bd::log_mel(torch::zeros({1600}), opt);
  EXPECT_TRUE(AllClose(silent, torch::full_like(silent, std::log(1e-6)), 1e-4, "silence"));
}

TEST(AudioLoad, DecodeResampleCropLogMel) {
  bd::AudioOptions opt;  // 16 kHz, 400 / 160 / 64
  auto m = bd::load_audio(golden("stereo22k.wav"), opt);
  EXPECT_EQ(m.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(AllClose(m, bd::read_npy(golden("stereo22k_load_400_160_64.npy")), kLogMelTol, "load_audio"));
  opt.max_seconds = 0.1;
  EXPECT_TRUE(AllClose(bd::load_audio(golden("stereo22k.wav"), opt),
                       bd::read_npy(golden("stereo22k_load_400_160_64_max0.1s.npy")), kLogMelTol,
                       "load_audio max 0.1 s"));
  bd::AudioOptions same;  // mono 16 kHz file: no resampling, equals log_mel of the samples
  EXPECT_TRUE(AllClose(bd::load_audio(golden("mono16k.wav"), same),
                       bd::read_npy(golden("mono16k_logmel_400_160_64.npy")), kLogMelTol, "load_audio mono"));
}

TEST(AudioBroken, TinySampleRateIsRefused) {
  // 4000 samples declared at 8 Hz: 500 s of audio that would resample to 8 M samples per second of
  // file at 16 kHz. Refused from the header.
  auto dir = std::filesystem::temp_directory_path() / ("braid_audio_rate_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = (dir / "slow.wav").string();
  bd::write_wav(path, std::vector<float>(4000, 0.1f), 8);
  ExpectInputError([&] { bd::decode_audio_file(path); }, "slow.wav", "sample rate 8 Hz; expected 1000..");
  braid::remove_tree(dir);
}

TEST(AudioBroken, EachBadFileIsAnInputError) {
  ExpectInputError([] { bd::decode_audio_file(broken("truncated.wav")); }, "truncated.wav");
  ExpectInputError([] { bd::decode_audio_file(broken("not_audio.wav")); }, "not_audio.wav", "cannot decode audio");
  ExpectInputError([] { bd::decode_audio_file(broken("empty.wav")); }, "empty.wav", "empty");
  ExpectInputError([] { bd::decode_audio_file(broken("does_not_exist.wav")); }, "does_not_exist.wav");
  bd::AudioOptions opt;
  ExpectInputError([&] { bd::load_audio(broken("truncated.wav"), opt); }, "truncated.wav");
}

TEST(AudioBroken, EveryPrefixOfAWavIsHandled) {
  std::ifstream f(golden("stereo22k.wav"), std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), {});
  for (size_t n : {size_t(0), size_t(4), size_t(12), size_t(40), size_t(44), size_t(46), size_t(1000)}) {
    try {
      auto w = bd::decode_audio_memory(bytes.data(), n, "cut.wav");
      // a cut inside the data chunk gives the frames that are there
      EXPECT_FALSE(w.samples.empty());
      EXPECT_LE(w.samples.size(), (n - 44) / 4);
    } catch (const braid::InputError& e) {
      EXPECT_NE(std::string(e.what()).find("cut.wav"), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    }
  }
}

}  // namespace

// max_seconds cuts the recording before resampling: the first seconds of a 10-minute file cost what a
// 1-second file costs, and are bit for bit those of the whole file resampled and then cut.
TEST(AudioLoad, LongRecordingIsCutBeforeResampling) {
  auto noise = [](int64_t n) {
    std::vector<float> v(static_cast<size_t>(n));
    uint32_t x = 7;
    for (auto& f : v) f = static_cast<float>(int32_t(x = x * 1664525u + 1013904223u)) / 2147483648.0f;
    return v;
  };
  bd::AudioOptions opt;
  opt.sample_rate = 16000;
  opt.max_seconds = 1.5;
  for (int64_t rate : {44100, 48000, 22050, 8000, 16000, 11025}) {
    bd::Waveform w{noise(20 * rate), rate};
    auto whole = bd::resample(w.samples, rate, opt.sample_rate);
    whole.resize(24000);
    const auto cut = bd::prepare_waveform(w, opt, "long.wav");
    ASSERT_EQ(cut.size(), whole.size()) << rate << " Hz";
    EXPECT_EQ(std::memcmp(cut.data(), whole.data(), cut.size() * sizeof(float)), 0) << rate << " Hz: samples differ";
  }
  // 10 minutes at 22.05 kHz (13 M samples; resampled whole: 0.3 s here, cut first: 0.2 ms), 1 second kept
  bd::Waveform long_wave{noise(600 * 22050), 22050};
  opt.max_seconds = 1.0;
  bd::prepare_waveform(bd::Waveform{noise(22050), 22050}, opt, "warm-up");  // the shared phase table
  const auto t0 = std::chrono::steady_clock::now();
  const auto s = bd::prepare_waveform(long_wave, opt, "long.wav");
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("1 s of a 10-minute recording prepared in %.2f ms\n", took * 1e3);
  EXPECT_EQ(s.size(), 16000u);
  EXPECT_LT(took, 0.05) << "the whole recording was resampled before the cut (1 s kept of it: 0.2 ms)";
}
