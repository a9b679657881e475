// Audio decoding (libsndfile), windowed-sinc resampling and log-mel features.
#include "braid/data/audio.h"

#include <sndfile.h>
#include <torch/torch.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <utility>

#include "braid/core/error.h"

namespace braid::data {
namespace {

constexpr uint64_t kMaxFileBytes = uint64_t(2) << 30;  // 2 GiB
constexpr int kMaxChannels = 256;
constexpr int64_t kMaxRate = 10'000'000;               // Hz; also bounds the resampler's integer arithmetic
constexpr int64_t kMinRate = 1000;                     // Hz: a small file declaring 1-8 Hz would resample to GBs
constexpr int64_t kMaxSamples = int64_t(1) << 31;     // mono samples kept after mixdown (~37 h at 16 kHz)

// ---- libsndfile virtual I/O over a memory buffer ----
struct MemFile {
  const uint8_t* data;
  sf_count_t size;
  sf_count_t pos = 0;
};

sf_count_t mem_len(void* u) { return static_cast<MemFile*>(u)->size; }
sf_count_t mem_seek(sf_count_t off, int whence, void* u) {
  auto* m = static_cast<MemFile*>(u);
  sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : m->size;
  sf_count_t p = base + off;
  if (p < 0) p = 0;
  if (p > m->size) p = m->size;
  m->pos = p;
  return p;
}
sf_count_t mem_read(void* dst, sf_count_t n, void* u) {
  auto* m = static_cast<MemFile*>(u);
  if (n <= 0) return 0;
  sf_count_t k = std::min(n, m->size - m->pos);
  if (k > 0) std::memcpy(dst, m->data + m->pos, size_t(k));
  m->pos += k;
  return k;
}
sf_count_t mem_write(const void*, sf_count_t, void*) { return 0; }
sf_count_t mem_tell(void* u) { return static_cast<MemFile*>(u)->pos; }

// One line of libsndfile's error text (some messages carry newlines).
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

// ---- resampler ----
// Windowed-sinc interpolation (Smith, "Digital Audio Resampling", https://ccrma.stanford.edu/~jos/resample/)
// with the parameterisation of torchaudio.functional.resample: the cutoff is rolloff * min(from, to) / 2 and the
// Kaiser window spans kZeroCrossings zero crossings of the sinc on each side. Measured response of the
// continuous filter: passband flat to 0.02 dB up to 0.8 x Nyquist, -6 dB at 0.9 x Nyquist, <= -53 dB from
// Nyquist up. scripts/make_goldens.py holds a numpy copy used for the golden test.
constexpr double kZeroCrossings = 16.0;
constexpr double kRolloff = 0.9;
constexpr double kKaiserBeta = 5.0;
constexpr int64_t kMaxPhaseTable = 1 << 22;  // weights cached per phase when phases x taps fits
constexpr int64_t kMaxSharedTable = 1 << 18; // such tables up to 2 MB are kept for later calls (same rates)
constexpr size_t kMaxSharedTables = 16;

double bessel_i0(double x) {  // power series; converges fast for the |x| <= beta used here
  double sum = 1.0, term = 1.0;
  const double q = x * x / 4.0;
  for (int k = 1; k < 200; ++k) {
    term *= q / (double(k) * double(k));
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

}  // namespace

Waveform decode_audio_memory(const uint8_t* bytes, size_t n, const std::string& name) {
  BRAID_INPUT_CHECK(n > 0, "{}: empty file; expected audio (WAV/FLAC/OGG)", name);
  BRAID_INPUT_CHECK(n <= kMaxFileBytes, "{}: file of {} bytes is too large for audio", name, n);
  MemFile mem{bytes, static_cast<sf_count_t>(n)};
  SF_VIRTUAL_IO io{mem_len, mem_seek, mem_read, mem_write, mem_tell};
  SF_INFO info{};
  SNDFILE* sf = sf_open_virtual(&io, SFM_READ, &info, &mem);
  if (!sf) input_error("{}: cannot decode audio (libsndfile: {})", name, one_line(sf_strerror(nullptr)));
  std::unique_ptr<SNDFILE, int (*)(SNDFILE*)> guard(sf, sf_close);

  BRAID_INPUT_CHECK(info.channels >= 1 && info.channels <= kMaxChannels,
                    "{}: audio has {} channels; expected 1..{}", name, info.channels, kMaxChannels);
  BRAID_INPUT_CHECK(info.samplerate >= kMinRate && info.samplerate <= kMaxRate,
                    "{}: audio sample rate {} Hz; expected {}..{}", name, info.samplerate, kMinRate, kMaxRate);
  BRAID_INPUT_CHECK(info.frames > 0, "{}: audio has no frames (empty or truncated file)", name);

  // Read in blocks rather than trusting the header's frame count for the allocation.
  const int ch = info.channels;
  const sf_count_t block = 16384;
  std::vector<float> buf(size_t(block) * ch);
  Waveform w;
  w.sample_rate = info.samplerate;
  w.samples.reserve(size_t(std::min<sf_count_t>(info.frames, sf_count_t(1) << 24)));
  while (true) {
    const sf_count_t got = sf_readf_float(sf, buf.data(), block);
    if (got <= 0) break;
    BRAID_INPUT_CHECK(int64_t(w.samples.size()) + got <= kMaxSamples, "{}: audio longer than {} samples", name,
                      kMaxSamples);
    for (sf_count_t i = 0; i < got; ++i) {
      const float* fr = buf.data() + i * ch;
      float v;
      if (ch == 1) {
        v = fr[0];
      } else {
        double s = 0.0;
        for (int c = 0; c < ch; ++c) s += fr[c];
        v = static_cast<float>(s / ch);
      }
      if (!std::isfinite(v))
        input_error("{}: audio sample {} is not finite; expected numbers in [-1, 1]", name, w.samples.size());
      w.samples.push_back(v);
    }
  }
  const int err = sf_error(sf);
  BRAID_INPUT_CHECK(err == SF_ERR_NO_ERROR, "{}: cannot decode audio (libsndfile: {})", name,
                    one_line(sf_strerror(sf)));
  BRAID_INPUT_CHECK(!w.samples.empty(), "{}: audio has no frames (empty or truncated file)", name);
  return w;
}

Waveform decode_audio_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  BRAID_INPUT_CHECK(fs::is_regular_file(path, ec), "{}: no such audio file", path);
  const uint64_t size = fs::file_size(path, ec);
  BRAID_INPUT_CHECK(!ec, "{}: cannot read file size ({})", path, ec.message());
  BRAID_INPUT_CHECK(size > 0, "{}: empty file; expected audio (WAV/FLAC/OGG)", path);
  BRAID_INPUT_CHECK(size <= kMaxFileBytes, "{}: file of {} bytes is too large for audio", path, size);
  std::vector<uint8_t> bytes(size);
  std::ifstream f(path, std::ios::binary);
  BRAID_INPUT_CHECK(f.good(), "{}: cannot open file ({})", path, std::strerror(errno));
  f.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  BRAID_INPUT_CHECK(f.gcount() == static_cast<std::streamsize>(size), "{}: short read ({} of {} bytes)", path,
                    f.gcount(), size);
  return decode_audio_memory(bytes.data(), bytes.size(), path);
}

std::vector<float> resample(const std::vector<float>& x, int64_t from_rate, int64_t to_rate) {
  BRAID_INPUT_CHECK(from_rate >= 1 && from_rate <= kMaxRate && to_rate >= 1 && to_rate <= kMaxRate,
                    "resample: sample rates {} -> {} Hz; expected 1..{}", from_rate, to_rate, kMaxRate);
  if (from_rate == to_rate || x.empty()) return x;
  const int64_t g = std::gcd(from_rate, to_rate);
  const int64_t M = from_rate / g;  // input samples per block
  const int64_t L = to_rate / g;    // output samples per block
  // Output j sits at input time t = j * M / L = base + phase / L with base = floor(j*M/L), phase = j*M mod L.
  // Its value is sum_k x[base + k] * h(k - phase / L) for k in [-K, K + 1], where
  // h(tau) = cutoff * sinc(cutoff * tau) * kaiser(cutoff * tau / zero_crossings), cutoff in cycles per 2 input samples.
  const double cutoff = kRolloff * std::min(1.0, double(L) / double(M));
  const int64_t K = static_cast<int64_t>(std::ceil(kZeroCrossings / cutoff));
  const int64_t taps = 2 * K + 2;
  const double i0_beta = bessel_i0(kKaiserBeta);
  auto weights = [&](int64_t phase, double* w) {
    const double frac = double(phase) / double(L);
    for (int64_t k = -K; k <= K + 1; ++k) {
      const double u = (double(k) - frac) * cutoff;  // in zero crossings
      double v = 0.0;
      if (std::abs(u) < kZeroCrossings) {
        const double r = u / kZeroCrossings;
        const double win = bessel_i0(kKaiserBeta * std::sqrt(1.0 - r * r)) / i0_beta;
        const double sinc = u == 0.0 ? 1.0 : std::sin(M_PI * u) / (M_PI * u);
        v = cutoff * sinc * win;
      }
      w[k + K] = v;
    }
  };
  const bool cached = L * taps <= kMaxPhaseTable;
  // The phase table depends only on (M, L): a dataset of files at one rate builds it once. Tables up to
  // kMaxSharedTable entries are kept (at most kMaxSharedTables of them), shared read-only between threads.
  static std::mutex cache_mu;
  static std::map<std::pair<int64_t, int64_t>, std::shared_ptr<const std::vector<double>>> cache;
  std::shared_ptr<const std::vector<double>> shared;
  const bool share = cached && L * taps <= kMaxSharedTable;
  if (share) {
    std::lock_guard<std::mutex> lk(cache_mu);
    auto it = cache.find({M, L});
    if (it != cache.end()) shared = it->second;
  }
  std::vector<double> table;
  if (!shared) {
    table.resize(size_t(cached ? L * taps : taps));
    if (cached)
      for (int64_t p = 0; p < L; ++p) weights(p, table.data() + p * taps);
    if (share) {
      auto t = std::make_shared<const std::vector<double>>(std::move(table));
      std::lock_guard<std::mutex> lk(cache_mu);
      if (cache.size() < kMaxSharedTables) cache.emplace(std::make_pair(M, L), t);
      shared = t;
    }
  }
  const double* tab = shared ? shared->data() : table.data();

  const int64_t n = static_cast<int64_t>(x.size());
  // ceil(n * L / M) without overflow: n < 2^31 and L, M <= 1e7.
  const __int128 num = static_cast<__int128>(n) * L;
  const int64_t out_len = static_cast<int64_t>((num + M - 1) / M);
  std::vector<float> y(static_cast<size_t>(out_len));
  for (int64_t j = 0; j < out_len; ++j) {
    const __int128 t = static_cast<__int128>(j) * M;
    const int64_t base = static_cast<int64_t>(t / L);
    const int64_t phase = static_cast<int64_t>(t % L);
    const double* w = tab;
    if (cached) w += phase * taps;
    else weights(phase, table.data());
    const int64_t lo = std::max<int64_t>(-K, -base), hi = std::min<int64_t>(K + 1, n - 1 - base);
    // Four partial sums: independent add chains instead of one long dependent one.
    const double* wk = w + K;
    const float* xk = x.data() + base;
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
    int64_t k = lo;
    for (; k + 3 <= hi; k += 4) {
      a0 += wk[k] * double(xk[k]);
      a1 += wk[k + 1] * double(xk[k + 1]);
      a2 += wk[k + 2] * double(xk[k + 2]);
      a3 += wk[k + 3] * double(xk[k + 3]);
    }
    for (; k <= hi; ++k) a0 += wk[k] * double(xk[k]);
    y[size_t(j)] = static_cast<float>((a0 + a1) + (a2 + a3));
  }
  return y;
}

torch::Tensor mel_filterbank(int64_t n_freqs, int64_t n_mels, int64_t sample_rate, double f_min, double f_max) {
  BRAID_INPUT_CHECK(n_freqs >= 2 && n_mels >= 1 && sample_rate >= 1,
                    "mel_filterbank: n_freqs {} (>= 2), n_mels {} (>= 1), sample_rate {} (>= 1) out of range", n_freqs,
                    n_mels, sample_rate);
  BRAID_INPUT_CHECK(std::isfinite(f_min) && std::isfinite(f_max) && f_min >= 0.0 && f_max > f_min,
                    "mel_filterbank: expected 0 <= f_min < f_max, got f_min {} f_max {}", f_min, f_max);
  // torchaudio.functional.melscale_fbanks(norm=None, mel_scale="htk"), computed in double.
  auto hz_to_mel = [](double f) { return 2595.0 * std::log10(1.0 + f / 700.0); };
  auto mel_to_hz = [](double m) { return 700.0 * (std::pow(10.0, m / 2595.0) - 1.0); };
  const double m_min = hz_to_mel(f_min), m_max = hz_to_mel(f_max);
  std::vector<double> f_pts(size_t(n_mels + 2));
  for (int64_t i = 0; i < n_mels + 2; ++i)
    f_pts[size_t(i)] = mel_to_hz(m_min + (m_max - m_min) * double(i) / double(n_mels + 1));
  const double nyq = double(sample_rate / 2);  // torchaudio: linspace(0, sample_rate // 2, n_freqs)
  auto fb = torch::zeros({n_freqs, n_mels}, torch::kFloat64);
  auto a = fb.accessor<double, 2>();
  for (int64_t i = 0; i < n_freqs; ++i) {
    const double f = nyq * double(i) / double(n_freqs - 1);
    for (int64_t m = 0; m < n_mels; ++m) {
      const double lo = f_pts[size_t(m)], mid = f_pts[size_t(m + 1)], hi = f_pts[size_t(m + 2)];
      const double down = (f - lo) / (mid - lo);  // rising edge
      const double up = (hi - f) / (hi - mid);    // falling edge
      a[i][m] = std::max(0.0, std::min(down, up));
    }
  }
  return fb.to(torch::kFloat32);
}

torch::Tensor log_mel(const torch::Tensor& wave, const AudioOptions& opt) {
  TORCH_CHECK(wave.dim() == 1, "log_mel: expected a 1-D waveform, got ", wave.sizes());
  BRAID_INPUT_CHECK(opt.n_fft >= 2 && opt.hop >= 1 && opt.n_mels >= 1 && opt.sample_rate >= 1,
                    "audio options: n_fft {} (>= 2), hop {} (>= 1), n_mels {} (>= 1), sample_rate {} out of range",
                    opt.n_fft, opt.hop, opt.n_mels, opt.sample_rate);
  auto x = wave.to(torch::kFloat32).contiguous();
  // center=True reflect-pads n_fft/2 on each side, which needs more than n_fft/2 samples:
  // shorter waves are zero-padded at the end to n_fft so there is at least one frame.
  if (x.size(0) < opt.n_fft) x = torch::constant_pad_nd(x, {0, opt.n_fft - x.size(0)}, 0.0);
  auto window = torch::hann_window(opt.n_fft, /*periodic=*/true, torch::TensorOptions().dtype(torch::kFloat32));
  auto spec = torch::stft(x, opt.n_fft, opt.hop, opt.n_fft, window, /*center=*/true, "reflect",
                          /*normalized=*/false, /*onesided=*/true, /*return_complex=*/true);  // [n_freqs, frames]
  auto ri = torch::view_as_real(spec).contiguous();                                           // [n_freqs, frames, 2]
  auto power = torch::empty({ri.size(0), ri.size(1)}, ri.options());                          // |X|^2 = re² + im²
  {
    const float* p = ri.data_ptr<float>();
    float* q = power.data_ptr<float>();
    for (int64_t i = 0, n = power.numel(); i < n; ++i) q[i] = p[2 * i] * p[2 * i] + p[2 * i + 1] * p[2 * i + 1];
  }
  const double f_max = opt.f_max > 0.0 ? opt.f_max : double(opt.sample_rate) / 2.0;
  auto fb = mel_filterbank(opt.n_fft / 2 + 1, opt.n_mels, opt.sample_rate, opt.f_min, f_max);  // [n_freqs, n_mels]
  auto mel = torch::matmul(fb.t(), power);                                                      // [n_mels, frames]
  return mel.add_(1e-6).log_().contiguous();
}

std::vector<float> prepare_waveform(const Waveform& w, const AudioOptions& opt, const std::string& name) {
  BRAID_INPUT_CHECK(opt.sample_rate >= 1 && opt.sample_rate <= kMaxRate, "{}: target sample rate {} out of range",
                    name, opt.sample_rate);
  BRAID_INPUT_CHECK(std::isfinite(opt.max_seconds) && opt.max_seconds >= 0.0,
                    "{}: max_seconds {} must be >= 0", name, opt.max_seconds);
  if (opt.max_seconds <= 0.0) return resample(w.samples, w.sample_rate, opt.sample_rate);
  // Cut before resampling: a long recording must not be resampled whole to keep its first seconds.
  // Output sample j reads input samples up to floor(j * M / L) + K + 1 (see resample), so the first
  // `keep` outputs of the cut input are those of the whole one, bit for bit.
  const double keep_d = std::max(1.0, std::floor(opt.max_seconds * double(opt.sample_rate)));
  const size_t n = w.samples.size();
  size_t need = n;
  if (keep_d < double(kMaxSamples)) {
    const int64_t keep = static_cast<int64_t>(keep_d);
    if (w.sample_rate == opt.sample_rate || n == 0) {
      need = static_cast<size_t>(keep);
    } else {
      const int64_t g = std::gcd(w.sample_rate, opt.sample_rate);
      const int64_t M = w.sample_rate / g, L = opt.sample_rate / g;
      const double cutoff = kRolloff * std::min(1.0, double(L) / double(M));
      const int64_t K = static_cast<int64_t>(std::ceil(kZeroCrossings / cutoff));
      const __int128 last = static_cast<__int128>(keep - 1) * M / L;  // base of the last output kept
      const __int128 want = last + K + 2;
      if (want < static_cast<__int128>(n)) need = static_cast<size_t>(want);
    }
  }
  std::vector<float> s = need < n ? resample(std::vector<float>(w.samples.begin(), w.samples.begin() + static_cast<std::ptrdiff_t>(need)),
                                             w.sample_rate, opt.sample_rate)
                                  : resample(w.samples, w.sample_rate, opt.sample_rate);
  if (keep_d < double(s.size())) s.resize(static_cast<size_t>(keep_d));
  return s;
}

std::vector<float> load_waveform(const std::string& path, const AudioOptions& opt) {
  BRAID_INPUT_CHECK(opt.sample_rate >= 1 && opt.sample_rate <= kMaxRate, "{}: target sample rate {} out of range",
                    path, opt.sample_rate);
  return prepare_waveform(decode_audio_file(path), opt, path);
}

torch::Tensor load_audio(const std::string& path, const AudioOptions& opt) {
  std::vector<float> s = load_waveform(path, opt);
  auto wave = torch::from_blob(s.data(), {int64_t(s.size())}, torch::kFloat32);
  return log_mel(wave, opt);
}

}  // namespace braid::data
