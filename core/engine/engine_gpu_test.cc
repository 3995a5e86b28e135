// The equivalence law on GPUs over NCCL, stages 0-3: rank r trains on cuda:r (world 1, and 2 where the
// machine has two GPUs), compared with one process on cuda:0.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/cuda/CUDAFunctions.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/engine/equivalence.h"
#include "gtest/gtest.h"

namespace zt::testing {
namespace {

std::vector<EquivalenceCase> GpuCases() {
  const int gpus = static_cast<int>(c10::cuda::device_count());
  std::vector<EquivalenceCase> cases;
  for (Net net : {Net::kMlp, Net::kBlock})
    for (int stage : {0, 1, 2, 3})
      for (int world : {1, 2})
        for (int gas : {1, 3})
          for (double clip : {0.0, 0.05}) {
            if (world <= gpus) cases.push_back({net, stage, world, gas, clip});
          }
  return cases;
}

class GpuEquivalence : public ::testing::TestWithParam<EquivalenceCase> {
 protected:
  static void SetUpTestSuite() {
    // Same arithmetic on both sides: no TF32 shortcuts in matmuls.
    at::globalContext().setAllowTF32CuBLAS(false);
  }
};

// fp32 over NCCL: max abs diff <= 1e-5 after 10 steps, as on the CPU.
TEST_P(GpuEquivalence, MatchesOneProcessOnTheGlobalBatch) {
  const EquivalenceCase& c = GetParam();
  ASSERT_GE(c10::cuda::device_count(), c.world);
  LocalGroupOptions options;
  options.backend = CommBackend::kNccl;
  absl::Status s = TrainAndCompare(c, ReferenceParameters(c.net, c.clip, at::Device(at::kCUDA, 0)), 1e-5, options);
  EXPECT_TRUE(s.ok()) << s;
}

INSTANTIATE_TEST_SUITE_P(Nccl, GpuEquivalence, ::testing::ValuesIn(GpuCases()),
                         [](const auto& info) { return CaseName(info.param); });

// Offloaded optimizer state (pinned host memory, gradients copied down on a side stream, CPU
// Adam, parameters copied back up) and offloaded parameter shards, against the same reference.
INSTANTIATE_TEST_SUITE_P(NcclOffload, GpuEquivalence,
                         ::testing::ValuesIn(OffloadCases(std::min(2, static_cast<int>(c10::cuda::device_count())))),
                         [](const auto& info) { return CaseName(info.param); });

// Optimizer state swapped to NVMe (the test's temporary directory on the GPU machine's disk):
// pinned swap buffers, the CPU Adam output copied up from them.
std::string SwapDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

INSTANTIATE_TEST_SUITE_P(NcclNvme, GpuEquivalence,
                         ::testing::ValuesIn(NvmeCases(std::min(2, static_cast<int>(c10::cuda::device_count())),
                                                       SwapDir())),
                         [](const auto& info) { return CaseName(info.param); });

}  // namespace
}  // namespace zt::testing
