// The loader's decoded-sample cache under a memory cap (data.cache_max_mb; issue 18 "Data at scale"), and
// the bounds on workers / prefetch.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "braid/core/error.h"
#include "braid/data/loader.h"
#include "test_util.h"

using namespace braid::data;
using namespace braid::test;

namespace {

struct Fixture {
  std::shared_ptr<Manifest> manifest;
  std::shared_ptr<Preprocessor> pre;
  std::shared_ptr<ClassMap> classes;
};

Fixture make(const std::string& dir) {
  Fixture f;
  ToyOptions o;
  o.n = 40;
  o.audio = o.text = false;  // images only: every sample decodes to one [3, 8, 8] float tensor (768 bytes)
  f.manifest = std::make_shared<Manifest>(Manifest::load(make_toy_dataset(dir, o)));
  PreprocessOptions po;
  po.image.size = 8;
  f.pre = std::make_shared<Preprocessor>(po, std::vector<std::string>{"image"}, nullptr);
  f.classes = std::make_shared<ClassMap>(ClassMap::from_manifest(*f.manifest));
  return f;
}

// Every batch of `epochs` epochs, image tensors concatenated in delivery order.
torch::Tensor drain(Loader& l, int epochs) {
  std::vector<torch::Tensor> all;
  for (int e = 0; e < epochs; ++e) {
    l.start_epoch(e);
    while (auto b = l.next()) all.push_back(b->mods.at("image").data);
  }
  return torch::cat(all);
}

}  // namespace

TEST(LoaderCache, CapBoundsCachedBytesAndBatchesStayTheSame) {
  braid::test::TempDir tmp("loader_cache");
  auto f = make(tmp.path.string());
  auto idx = f.manifest->split_indices("");
  ASSERT_EQ(idx.size(), 40u);
  const int64_t per_sample = 3 * 8 * 8 * 4;
  LoaderOptions o;
  o.batch_size = 4;
  o.workers = 2;
  Loader full(f.manifest, idx, f.pre, o, Targets::Labels, f.classes);
  auto ref = drain(full, 2);
  EXPECT_EQ(full.cached_bytes(), 40 * per_sample);  // the default cap (RAM / 4) holds everything
  EXPECT_EQ(full.cache_misses_full(), 0);

  o.cache_max_bytes = 10 * per_sample + per_sample / 2;  // room for 10 samples on top of what `full` holds
  o.cache_max_bytes += full.cached_bytes();               // (the cap is over all loaders of the process)
  Loader capped(f.manifest, idx, f.pre, o, Targets::Labels, f.classes);
  auto got = drain(capped, 2);
  EXPECT_EQ(capped.cached_bytes(), 10 * per_sample);
  EXPECT_EQ(capped.cache_misses_full(), 30 + 30);  // the other 30 are decoded again in epoch 2
  EXPECT_TRUE(torch::equal(ref, got)) << "a capped cache changed the batches";

  o.cache_max_bytes = 0;
  Loader none(f.manifest, idx, f.pre, o, Targets::Labels, f.classes);
  EXPECT_TRUE(torch::equal(ref, drain(none, 2)));
  EXPECT_EQ(none.cached_bytes(), 0);
  EXPECT_GT(Loader::default_cache_max_bytes(), int64_t(1) << 20);
}

TEST(LoaderCache, WorkersPrefetchAndCapAreBounded) {
  braid::test::TempDir tmp("loader_bounds");
  auto f = make(tmp.path.string());
  auto idx = f.manifest->split_indices("");
  auto build = [&](int workers, int prefetch, int64_t cap) {
    LoaderOptions o;
    o.workers = workers;
    o.prefetch = prefetch;
    o.cache_max_bytes = cap;
    Loader l(f.manifest, idx, f.pre, o, Targets::Labels, f.classes);
  };
  EXPECT_NO_THROW(build(LoaderOptions::kMaxWorkers, LoaderOptions::kMaxPrefetch, 0));
  EXPECT_THROW(build(0, 4, -1), braid::InputError);
  EXPECT_THROW(build(LoaderOptions::kMaxWorkers + 1, 4, -1), braid::InputError);
  EXPECT_THROW(build(2, 0, -1), braid::InputError);
  EXPECT_THROW(build(2, LoaderOptions::kMaxPrefetch + 1, -1), braid::InputError);
  EXPECT_THROW(build(2, 4, -2), braid::InputError);
}
