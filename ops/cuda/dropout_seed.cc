#include "ops/cuda/dropout_seed.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Generator.h>

#include <mutex>

namespace zt::ops::cuda {
namespace {

thread_local std::uint64_t test_seed = 0;

}  // namespace

std::uint64_t NextDropoutSeed() {
  if (test_seed != 0) {
    const std::uint64_t s = test_seed;
    test_seed = 0;
    return s;
  }
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get<at::CPUGeneratorImpl>()->random64();
}

void SetNextDropoutSeedForTesting(std::uint64_t seed) { test_seed = seed; }

}  // namespace zt::ops::cuda
