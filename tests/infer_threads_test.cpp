// nn::infer_rows (nn/infer_threads.h, issue 19): the split and one-thread modes give what the forward as it is gives
// (a Transformer block with and without pre-packed weights, with key padding, 1 to 33 rows), run every chunk with one
// intra-op thread and the caller's grad mode, put the caller's thread count back, and fall back to the forward as it
// is where they must (grad mode on, one thread, switched off, an output that is not row-wise). Speed: bench/engine.sh.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "braid/nn/blocks.h"
#include "braid/nn/infer_threads.h"
#include "braid/nn/prepack.h"

using namespace braid;

namespace {

using Threads = nn::ScopedIntraOpThreads;  // intra-op threads for a test, the old count put back

struct SplitOn {  // the switch on during a test, and as it was after it
  SplitOn() : was_(nn::infer_split_enabled()) { nn::set_infer_split(true); }
  ~SplitOn() { nn::set_infer_split(was_); }
  bool was_;
};

// The ranges infer_rows asked `forward` for, each returning [r1 - r0, 3] zeros.
struct Recorder {
  std::mutex mu;
  std::set<std::pair<int64_t, int64_t>> ranges;
  std::vector<int> threads;
  std::vector<bool> grad;
  nn::RowsForward forward() {
    return [this](int64_t r0, int64_t r1) {
      std::lock_guard<std::mutex> lock(mu);
      ranges.insert({r0, r1});
      threads.push_back(at::get_num_threads());
      grad.push_back(at::GradMode::is_enabled());
      return torch::zeros({r1 - r0, 3});
    };
  }
};

}  // namespace

TEST(InferThreads, SplitAndOneThreadMatchTheForwardAsItIs) {
  Threads t(2);
  SplitOn s;
  torch::manual_seed(0);
  nn::TransformerBlock block(nn::TransformerBlockOptions{64, 4, 4, 0.0});
  block->eval();
  for (bool packed : {false, true}) {
    if (packed && nn::prepack_linears(*block) == 0) continue;  // built without oneDNN
    torch::NoGradGuard ng;
    for (int64_t B : {1, 2, 3, 5, 8, 17, 33, 2, 8, 33}) {  // repeats: two chunks running the same kernels at once
      auto x = torch::randn({B, 17, 64});
      auto pad = torch::arange(17).unsqueeze(0).expand({B, 17}) >= (17 - torch::arange(B) % 5).unsqueeze(1);
      auto fwd = [&](int64_t r0, int64_t r1) { return block->forward(x.slice(0, r0, r1), pad.slice(0, r0, r1)); };
      nn::set_infer_split(false);
      ASSERT_EQ(nn::infer_mode(B), nn::InferMode::AsIs);
      auto want = nn::infer_rows(B, fwd);
      nn::set_infer_split(true);
      EXPECT_EQ(nn::infer_mode(B), B == 1 ? nn::InferMode::OneThread : nn::InferMode::Split);
      auto got = nn::infer_rows(B, fwd);
      const std::string what = (packed ? "packed, " : "ATen, ") + std::to_string(B) + " rows";
      ASSERT_EQ(got.sizes(), want.sizes()) << what;
      EXPECT_LE((got - want).abs().max().item<double>(), 1e-4) << what;
      EXPECT_EQ(at::get_num_threads(), 2) << what << ": the caller's thread count is put back";
    }
  }
  nn::clear_prepacked();
}

TEST(InferThreads, ChunksRunOnOneThreadWithTheCallersGradMode) {
  Threads t(2);
  SplitOn s;
  torch::NoGradGuard ng;
  Recorder r;
  auto out = nn::infer_rows(5, r.forward());
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{5, 3}));
  EXPECT_EQ(r.ranges, (std::set<std::pair<int64_t, int64_t>>{{0, 2}, {2, 5}}));
  for (int n : r.threads) EXPECT_EQ(n, 1);
  for (bool g : r.grad) EXPECT_FALSE(g);
  EXPECT_EQ(at::get_num_threads(), 2);
  Recorder one;
  nn::infer_rows(1, one.forward());
  EXPECT_EQ(one.ranges, (std::set<std::pair<int64_t, int64_t>>{{0, 1}}));
  EXPECT_EQ(one.threads, std::vector<int>{1});
  EXPECT_EQ(at::get_num_threads(), 2);
}

TEST(InferThreads, FallsBackToTheForwardAsItIs) {
  SplitOn s;
  {
    Threads t(2);
    Recorder grad_on;  // training: never split
    nn::infer_rows(4, grad_on.forward());
    EXPECT_EQ(grad_on.ranges, (std::set<std::pair<int64_t, int64_t>>{{0, 4}}));
    EXPECT_EQ(grad_on.threads, std::vector<int>{2});
    torch::NoGradGuard ng;
    nn::set_infer_split(false);
    Recorder off;
    nn::infer_rows(4, off.forward());
    EXPECT_EQ(off.ranges, (std::set<std::pair<int64_t, int64_t>>{{0, 4}}));
    nn::set_infer_split(true);
    // an output that is not row-wise (a scalar): the whole batch again, unsplit
    std::vector<std::pair<int64_t, int64_t>> calls;
    std::mutex mu;
    auto out = nn::infer_rows(4, [&](int64_t r0, int64_t r1) {
      std::lock_guard<std::mutex> lock(mu);
      calls.emplace_back(r0, r1);
      return torch::tensor(static_cast<float>(r1 - r0));
    });
    EXPECT_EQ(out.item<float>(), 4.0f);
    EXPECT_EQ(calls.back(), (std::pair<int64_t, int64_t>{0, 4}));
    // a chunk's exception reaches the caller; the thread count is put back
    EXPECT_THROW(nn::infer_rows(4, [](int64_t r0, int64_t r1) -> at::Tensor {
                   if (r0 > 0) throw std::runtime_error("chunk failed");
                   return torch::zeros({r1 - r0});
                 }),
                 std::runtime_error);
    EXPECT_EQ(at::get_num_threads(), 2);
  }
  Threads t(1);
  torch::NoGradGuard ng;
  EXPECT_EQ(nn::infer_mode(8), nn::InferMode::AsIs);
}

TEST(InferThreads, ScopedThreadsPutTheCountBack) {
  Threads t(2);
  {
    nn::ScopedIntraOpThreads one(1);
    EXPECT_EQ(at::get_num_threads(), 1);
    {
      nn::ScopedIntraOpThreads three(3);
      EXPECT_EQ(at::get_num_threads(), 3);
    }
    EXPECT_EQ(at::get_num_threads(), 1);
  }
  EXPECT_EQ(at::get_num_threads(), 2);
}

TEST(InferThreads, BatchRowsSlicesEveryField) {
  Batch b;
  b.index = {10, 11, 12, 13};
  b.mods["text"] = {torch::arange(8).view({4, 2}), torch::tensor({2, 1, 2, 2}), torch::ones({4}, torch::kBool)};
  b.mods["image"] = {torch::zeros({4, 3, 2, 2}), {}, {}};
  b.labels = torch::tensor({0, 1, 2, 3});
  auto s = nn::batch_rows(b, 1, 3);
  EXPECT_EQ(s.index, (std::vector<int64_t>{11, 12}));
  EXPECT_TRUE(s.mods.at("text").data.equal(torch::tensor({2, 3, 4, 5}).view({2, 2})));
  EXPECT_TRUE(s.mods.at("text").lengths.equal(torch::tensor({1, 2})));
  EXPECT_EQ(s.mods.at("text").present.size(0), 2);
  EXPECT_EQ(s.mods.at("image").data.size(0), 2);
  EXPECT_FALSE(s.mods.at("image").lengths.defined());
  EXPECT_TRUE(s.labels.equal(torch::tensor({1, 2})));
  EXPECT_FALSE(s.targets.defined());
}

// oneDNN's default scratchpad belongs to the thread that created a primitive: a packed kernel created on one thread
// and run on another (the server's batcher, a split chunk) must still give the same rows (nn/prepack.cpp, execute()).
TEST(InferThreads, PackedKernelsRunOnAnotherThreadAsOnTheirOwn) {
  torch::manual_seed(1);
  nn::TransformerBlock block(nn::TransformerBlockOptions{64, 4, 4, 0.0});
  block->eval();
  if (nn::prepack_linears(*block) == 0) GTEST_SKIP() << "built without oneDNN";
  torch::NoGradGuard ng;
  Threads one(1);
  for (int64_t B : {1, 3, 8}) {
    auto x = torch::randn({B, 17, 64});
    auto want = block->forward(x, {});  // creates the kernels on this thread
    at::Tensor got;
    std::thread t([&] {
      torch::NoGradGuard ng2;
      Threads one2(1);
      got = block->forward(x, {});
    });
    t.join();
    EXPECT_LE((got - want).abs().max().item<double>(), 1e-5) << B << " rows";
  }
  nn::clear_prepacked();
}
