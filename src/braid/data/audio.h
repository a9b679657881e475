// braid/data/audio.h — audio decoding (WAV/FLAC/OGG via libsndfile), resampling and log-mel features.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace braid::data {

struct AudioOptions {
  int64_t sample_rate = 16000;  // every file is resampled to this rate (Hz)
  int64_t n_fft = 400;          // STFT window and FFT size (samples)
  int64_t hop = 160;            // STFT hop (samples)
  int64_t n_mels = 64;          // mel bands (HTK mel scale, no filter normalization)
  double f_min = 0.0;           // lowest mel frequency (Hz)
  double f_max = 0.0;           // highest mel frequency (Hz); 0 = sample_rate / 2
  double max_seconds = 0.0;     // keep at most this many seconds from the start; 0 = whole file
};

// Mono float samples in [-1, 1] (channels averaged) at the file's own rate. Decoding errors (empty,
// truncated, unrecognised, 0 frames, NaN samples) are InputErrors naming the file or `name`.
struct Waveform {
  std::vector<float> samples;
  int64_t sample_rate = 0;
};

Waveform decode_audio_file(const std::string& path);
Waveform decode_audio_memory(const uint8_t* bytes, size_t n, const std::string& name);

// Band-limited (windowed-sinc) resampling from `from_rate` to `to_rate`: Kaiser window (beta 5), 16 zero
// crossings, cutoff 0.9 x min(from, to) / 2. Returns ceil(n * to / from) samples; a copy when the rates are equal.
std::vector<float> resample(const std::vector<float>& x, int64_t from_rate, int64_t to_rate);

// [n_freqs = n_fft/2+1, n_mels] triangular HTK mel filters (torchaudio.functional.melscale_fbanks defaults).
torch::Tensor mel_filterbank(int64_t n_freqs, int64_t n_mels, int64_t sample_rate, double f_min, double f_max);

// log(mel power + 1e-6): [n_mels, frames]; STFT with a periodic Hann window, center=True, reflect padding,
// frames = 1 + max(T, n_fft) / hop (a wave shorter than n_fft is zero-padded to n_fft first).
// f_max = 0 means sample_rate / 2. `wave` is a 1-D tensor.
torch::Tensor log_mel(const torch::Tensor& wave, const AudioOptions& opt);

// decode -> mono -> resample to opt.sample_rate -> crop to opt.max_seconds.
std::vector<float> load_waveform(const std::string& path, const AudioOptions& opt);
// The same from a decoded waveform (uploads decoded with decode_audio_memory); `name` labels errors.
std::vector<float> prepare_waveform(const Waveform& w, const AudioOptions& opt, const std::string& name);

// load_waveform -> log-mel: [n_mels, frames] float32.
torch::Tensor load_audio(const std::string& path, const AudioOptions& opt);

// Write mono float samples as 16-bit PCM WAV (used by dataset builders and tests).
void write_wav(const std::string& path, const std::vector<float>& samples, int64_t sample_rate);

}  // namespace braid::data
