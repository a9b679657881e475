// The "fashion-mnist" dataset: Debian's dataset-fashion-mnist (IDX, gzip) as 28 x 28 grey PNGs
// with a templated caption; train file -> train (first 90 %) and val (last 10 %), test -> test.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <climits>
#include <filesystem>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/core/runtime.h"
#include "braid/data/build/common.h"
#include "braid/data/image.h"

namespace braid::data::build {
namespace fs = std::filesystem;

namespace {

const char* const kDir = "/usr/share/datasets/fashion-mnist";
constexpr int64_t kFashionTotal = 10000;
constexpr int64_t kTrainFile = 60000, kTestFile = 10000, kValFromTrain = 6000;

// Class names as in the package README (label = index).
const char* const kClasses[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                  "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
// Noun phrases for captions: (article, noun).
const char* const kNouns[10][2] = {{"a", "t-shirt or top"}, {"a pair of", "trousers"}, {"a", "pullover"}, {"a", "dress"},
                                   {"a", "coat"},    {"a", "sandal"},           {"a", "shirt"},    {"a", "sneaker"},
                                   {"a", "bag"},     {"an", "ankle boot"}};
const char* const kTemplates[] = {"a photo of {a} {n}", "a black and white photo of {a} {n}", "a low resolution photo of {a} {n}",
                                  "a picture of {a} {n}", "a small grey image of {a} {n}", "a product photo of {a} {n}"};

uint32_t be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// Whole gunzipped IDX file; `max_bytes` bounds what an untrusted file can make us allocate.
std::vector<unsigned char> gunzip(const std::string& path, size_t max_bytes) {
  require_source(path, "fashion-mnist: Debian package dataset-fashion-mnist");
  gzFile f = gzopen(path.c_str(), "rb");
  BRAID_INPUT_CHECK(f != nullptr, "{}: cannot open", path);
  std::vector<unsigned char> out;
  std::vector<unsigned char> buf(1 << 20);
  for (;;) {
    int k = gzread(f, buf.data(), static_cast<unsigned>(buf.size()));
    if (k < 0) {
      int err = 0;
      std::string msg = gzerror(f, &err);
      gzclose(f);
      braid::input_error("{}: corrupt gzip data ({})", path, msg);
    }
    if (k == 0) break;
    out.insert(out.end(), buf.begin(), buf.begin() + k);
    if (out.size() > max_bytes) {
      gzclose(f);
      braid::input_error("{}: more than {} bytes after decompression; not a Fashion-MNIST IDX file", path, max_bytes);
    }
  }
  gzclose(f);
  return out;
}

// IDX images: magic 0x00000803, count, rows, cols, then count*rows*cols bytes.
std::vector<unsigned char> read_idx_images(const std::string& path, int64_t expected) {
  auto b = gunzip(path, 16 + static_cast<size_t>(expected) * 784);
  BRAID_INPUT_CHECK(b.size() >= 16, "{}: {} bytes is too short for an IDX header", path, b.size());
  BRAID_INPUT_CHECK(be32(b.data()) == 0x803, "{}: magic {:#010x}, expected 0x00000803 (IDX uint8 3-D)", path, be32(b.data()));
  uint32_t n = be32(b.data() + 4), rows = be32(b.data() + 8), cols = be32(b.data() + 12);
  BRAID_INPUT_CHECK(n == expected && rows == 28 && cols == 28, "{}: header says {} x {} x {}, expected {} x 28 x 28", path, n, rows,
                    cols, expected);
  BRAID_INPUT_CHECK(b.size() == 16 + static_cast<size_t>(n) * 784, "{}: {} bytes, expected {} for {} images", path, b.size(),
                    16 + static_cast<size_t>(n) * 784, n);
  return std::vector<unsigned char>(b.begin() + 16, b.end());
}

// IDX labels: magic 0x00000801, count, then count bytes in 0..9.
std::vector<unsigned char> read_idx_labels(const std::string& path, int64_t expected) {
  auto b = gunzip(path, 8 + static_cast<size_t>(expected));
  BRAID_INPUT_CHECK(b.size() >= 8, "{}: {} bytes is too short for an IDX header", path, b.size());
  BRAID_INPUT_CHECK(be32(b.data()) == 0x801, "{}: magic {:#010x}, expected 0x00000801 (IDX uint8 1-D)", path, be32(b.data()));
  uint32_t n = be32(b.data() + 4);
  BRAID_INPUT_CHECK(n == expected && b.size() == 8 + static_cast<size_t>(n), "{}: {} labels in {} bytes, expected {}", path, n,
                    b.size(), expected);
  for (size_t i = 8; i < b.size(); ++i) BRAID_INPUT_CHECK(b[i] < 10, "{}: label {} is {}, expected 0..9", path, i - 8, b[i]);
  return std::vector<unsigned char>(b.begin() + 8, b.end());
}

}  // namespace

BuildReport build_fashion_mnist(const BuildOptions& opt) {
  const fs::path dir(kDir);
  auto train_x = read_idx_images((dir / "train-images-idx3-ubyte.gz").string(), kTrainFile);
  auto train_y = read_idx_labels((dir / "train-labels-idx1-ubyte.gz").string(), kTrainFile);
  auto test_x = read_idx_images((dir / "t10k-images-idx3-ubyte.gz").string(), kTestFile);
  auto test_y = read_idx_labels((dir / "t10k-labels-idx1-ubyte.gz").string(), kTestFile);

  // Sizes in the proportions of the full set: 54,000 train / 6,000 val / 10,000 test.
  const int64_t all = kTrainFile + kTestFile;
  const int64_t total = std::min(opt.limit > 0 ? opt.limit : kFashionTotal, all);
  const int64_t n_val = total * kValFromTrain / all;
  const int64_t n_test = total * kTestFile / all;
  const int64_t n_train = total - n_val - n_test;

  struct Item {
    bool test_file;
    int64_t index;
    int split;
  };
  std::vector<Item> items;
  for (int64_t i = 0; i < n_train; ++i) items.push_back({false, i, 0});
  for (int64_t i = 0; i < n_val; ++i) items.push_back({false, kTrainFile - kValFromTrain + i, 1});
  for (int64_t i = 0; i < n_test; ++i) items.push_back({true, i, 2});

  const fs::path out(opt.out_dir);
  const std::string main_name = "manifest.jsonl";
  remove_stale_manifests(opt.out_dir, {main_name});
  braid::make_dirs((out / "images").string());

  std::vector<Record> records(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const Item& it = items[i];
    int cls = (it.test_file ? test_y : train_y)[static_cast<size_t>(it.index)];
    Record& r = records[i];
    r.id = fmt::format("{}-{:05}", it.test_file ? "test" : "train", it.index);
    r.split = it.split == 0 ? "train" : it.split == 1 ? "val" : "test";
    r.label = kClasses[cls];
    Rng rng(braid::mix_seed(opt.seed, hash_string("fashion-caption"), hash_string(r.id)));
    const char* tmpl = kTemplates[rng.below(std::size(kTemplates))];
    r.text = fmt::format(fmt::runtime(tmpl), fmt::arg("a", kNouns[cls][0]), fmt::arg("n", kNouns[cls][1]));
    r.image = "images/" + r.id + ".png";
  }
  parallel_for(
      static_cast<int64_t>(items.size()), opt.threads,
      [&](int64_t i) {
        const Item& it = items[static_cast<size_t>(i)];
        const auto& x = it.test_file ? test_x : train_x;
        write_png((out / records[static_cast<size_t>(i)].image).string(), 28, 28, 1, x.data() + it.index * 784);
      },
      "fashion-mnist images");

  BuildReport report;
  report.manifest = (out / main_name).string();
  write_manifest(report.manifest, records);
  count_splits(records, report);
  return report;
}

}  // namespace braid::data::build
