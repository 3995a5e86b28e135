// NCCL through c10d's ProcessGroupNCCL on LibTorch CUDA tensors: one rank per visible GPU, each
// rank a thread of this process, rendezvous through a shared HashStore.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace {

// Runs body(rank, world, pg) on every rank and joins; failures are collected per rank.
template <typename Body>
void OnEveryRank(int world, Body body) {
  auto store = c10::make_intrusive<c10d::HashStore>();
  std::vector<std::string> errors(world);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < world; ++rank) {
    threads.emplace_back([&, rank] {
      try {
        c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(rank));
        auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world);
        body(rank, world, *pg);
        pg->shutdown();
      } catch (const std::exception& e) {
        errors[rank] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int rank = 0; rank < world; ++rank) EXPECT_EQ(errors[rank], "") << "rank " << rank;
}

int World() { return std::min<int>(c10::cuda::device_count(), 2); }

TEST(ProcessGroupNccl, AllReduceSumsOverRanks) {
  ASSERT_GE(c10::cuda::device_count(), 1) << "no CUDA device";
  const int world = World();
  std::vector<float> sums(world, -1.0f);
  std::vector<float> lasts(world, -1.0f);
  OnEveryRank(world, [&](int rank, int n, c10d::ProcessGroupNCCL& pg) {
    const auto device = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(rank));
    // rank r holds (r + 1) * [0, 1, ..., 4095]
    std::vector<at::Tensor> t = {at::arange(4096, at::TensorOptions().dtype(at::kFloat).device(device)) * (rank + 1)};
    pg.allreduce(t)->wait();
    at::Tensor host = t[0].cpu();
    sums[rank] = host.sum().item<float>();
    lasts[rank] = host[4095].item<float>();
    (void)n;
  });
  const float ranks_factor = world * (world + 1) / 2.0f;  // sum over r of (r + 1)
  for (int r = 0; r < world; ++r) {
    EXPECT_FLOAT_EQ(lasts[r], 4095.0f * ranks_factor) << "rank " << r;
    EXPECT_FLOAT_EQ(sums[r], 4095.0f * 4096.0f / 2 * ranks_factor) << "rank " << r;
  }
}

TEST(ProcessGroupNccl, BroadcastCopiesRootToAll) {
  ASSERT_GE(c10::cuda::device_count(), 1) << "no CUDA device";
  const int world = World();
  std::vector<bool> ok(world, false);
  OnEveryRank(world, [&](int rank, int, c10d::ProcessGroupNCCL& pg) {
    const auto device = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(rank));
    std::vector<at::Tensor> t = {at::full({1000}, rank == 0 ? 7.0 : -1.0, at::TensorOptions().device(device))};
    c10d::BroadcastOptions opts;
    opts.rootRank = 0;
    pg.broadcast(t, opts)->wait();
    ok[rank] = t[0].eq(7.0).all().item<bool>();
  });
  for (int r = 0; r < world; ++r) EXPECT_TRUE(ok[r]) << "rank " << r;
}

}  // namespace
