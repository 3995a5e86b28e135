// Runs the nvcc-built kernel on LibTorch CUDA tensors and compares it with the CPU reference.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>

#include <cmath>
#include <limits>

#include "gtest/gtest.h"
#include "ops/cuda/unscale.h"
#include "ops/unscale.h"

namespace zt::ops::cuda {
namespace {

struct Result {
  at::Tensor values;  // on the CPU
  bool found;
};

Result RunOnGpu(const at::Tensor& cpu_values, float inv_scale) {
  at::Tensor x = cpu_values.to(at::kCUDA);
  at::Tensor found = at::zeros({1}, at::TensorOptions().dtype(at::kInt).device(at::kCUDA));
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  cudaError_t e =
      LaunchNonFiniteCheckAndUnscale(x.data_ptr<float>(), x.numel(), inv_scale, found.data_ptr<int>(), stream);
  EXPECT_EQ(e, cudaSuccess) << cudaGetErrorString(e);
  return {x.cpu(), found.item<int>() != 0};
}

Result RunReference(const at::Tensor& cpu_values, float inv_scale) {
  at::Tensor y = cpu_values.clone();
  bool found = NonFiniteCheckAndUnscale(y.data_ptr<float>(), y.numel(), inv_scale);
  return {y, found};
}

class UnscaleCuda : public ::testing::TestWithParam<std::int64_t> {};

TEST_P(UnscaleCuda, MatchesReferenceBitForBit) {
  ASSERT_TRUE(at::hasCUDA()) << "no CUDA device";
  at::manual_seed(GetParam());
  at::Tensor g = at::randn({GetParam()}) * 1000.0;
  for (float inv_scale : {1.0f, 1.0f / 65536, 0.37f}) {
    Result gpu = RunOnGpu(g, inv_scale);
    Result ref = RunReference(g, inv_scale);
    EXPECT_FALSE(gpu.found);
    EXPECT_EQ(gpu.found, ref.found);
    EXPECT_TRUE(at::equal(gpu.values, ref.values)) << "inv_scale " << inv_scale;
  }
}

TEST_P(UnscaleCuda, FlagsOneInfOrNanAnywhere) {
  const std::int64_t n = GetParam();
  at::manual_seed(n + 1);
  at::Tensor g = at::randn({n});
  for (float bad : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(), std::nanf("")}) {
    for (std::int64_t pos : {std::int64_t{0}, n / 2, n - 1}) {
      at::Tensor h = g.clone();
      h[pos].fill_(bad);
      Result gpu = RunOnGpu(h, 0.5f);
      EXPECT_TRUE(gpu.found) << "value " << bad << " at " << pos << " of " << n;
      EXPECT_EQ(gpu.found, RunReference(h, 0.5f).found);
    }
  }
}

// Sizes: one element, a partial block, more elements than one grid pass covers.
INSTANTIATE_TEST_SUITE_P(Sizes, UnscaleCuda, ::testing::Values(1, 1000, 1 << 24 | 7));

}  // namespace
}  // namespace zt::ops::cuda
