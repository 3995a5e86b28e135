// The law of the engine (CPU, Gloo): for every stage (0-3), world size, accumulation and
// clipping setting, N ranks training with ZeRO compute the update one process computes on the
// global batch.
#include "core/engine/engine.h"

#include <ATen/Parallel.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "core/engine/equivalence.h"
#include "gtest/gtest.h"

namespace zt::testing {
namespace {

std::vector<EquivalenceCase> AllCases() {
  std::vector<EquivalenceCase> cases;
  for (Net net : {Net::kMlp, Net::kBlock})
    for (int stage : {0, 1, 2, 3})
      for (int world : {1, 2, 4})
        for (int gas : {1, 3})
          for (double clip : {0.0, 0.05}) cases.push_back({net, stage, world, gas, clip});
  return cases;
}

class Equivalence : public ::testing::TestWithParam<EquivalenceCase> {
 protected:
  static void SetUpTestSuite() { at::set_num_threads(1); }  // ranks are threads on few cores
};

// fp32: max abs diff <= 1e-5 after 10 steps.  (LibTorch's AdamW forms m with mul/add where the
// engine uses PyTorch's lerp, and ranks sum gradients in another order: a few float ulps.)
TEST_P(Equivalence, MatchesOneProcessOnTheGlobalBatch) {
  const EquivalenceCase& c = GetParam();
  absl::Status s = TrainAndCompare(c, ReferenceParameters(c.net, c.clip, at::kCPU), 1e-5);
  EXPECT_TRUE(s.ok()) << s;
}

INSTANTIATE_TEST_SUITE_P(Fp32, Equivalence, ::testing::ValuesIn(AllCases()),
                         [](const auto& info) { return CaseName(info.param); });

INSTANTIATE_TEST_SUITE_P(Offload, Equivalence, ::testing::ValuesIn(OffloadCases(/*max_world=*/2)),
                         [](const auto& info) { return CaseName(info.param); });

std::string SwapDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

INSTANTIATE_TEST_SUITE_P(Nvme, Equivalence, ::testing::ValuesIn(NvmeCases(/*max_world=*/2, SwapDir())),
                         [](const auto& info) { return CaseName(info.param); });

}  // namespace
}  // namespace zt::testing
