// Writers for the formats braid reads: PNG (stb_image_write) and 16-bit PCM WAV (libsndfile).
#include <sndfile.h>

#include <algorithm>
#include <cmath>

#include "braid/core/error.h"
#include "braid/data/audio.h"
#include "braid/data/image.h"

#ifndef BRAID_STB_LIBRARY
#define STB_IMAGE_WRITE_IMPLEMENTATION
#endif
#include <stb_image_write.h>

namespace braid::data {

void write_png(const std::string& path, int64_t width, int64_t height, int64_t channels, const uint8_t* pixels) {
  int ok = stbi_write_png(path.c_str(), static_cast<int>(width), static_cast<int>(height), static_cast<int>(channels),
                          pixels, static_cast<int>(width * channels));
  if (!ok) throw std::runtime_error(path + ": cannot write PNG");
}

void write_wav(const std::string& path, const std::vector<float>& samples, int64_t sample_rate) {
  SF_INFO info{};
  info.samplerate = static_cast<int>(sample_rate);
  info.channels = 1;
  info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
  SNDFILE* f = sf_open(path.c_str(), SFM_WRITE, &info);
  if (!f) throw std::runtime_error(path + ": cannot write WAV: " + sf_strerror(nullptr));
  std::vector<float> clipped(samples.size());
  std::transform(samples.begin(), samples.end(), clipped.begin(), [](float v) { return std::clamp(v, -1.0f, 1.0f); });
  sf_count_t n = sf_write_float(f, clipped.data(), static_cast<sf_count_t>(clipped.size()));
  sf_close(f);
  if (n != static_cast<sf_count_t>(clipped.size())) throw std::runtime_error(path + ": short write");
}

}  // namespace braid::data
