#include <cstdint>

#include "ops/cuda/unscale.h"

namespace zt::ops::cuda {
namespace {

constexpr int kThreads = 256;

// Grid-stride loop; a block ORs its threads' flags and one thread writes the result.  The
// store of 1 is idempotent, so blocks need no atomics.
__global__ void NonFiniteCheckAndUnscaleKernel(float* __restrict__ data, std::int64_t n, float inv_scale,
                                               int* __restrict__ found) {
  int local = 0;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float v = data[i];
    local |= !isfinite(v);
    if (inv_scale != 1.0f) data[i] = v * inv_scale;
  }
  if (__syncthreads_or(local) && threadIdx.x == 0) *found = 1;
}

}  // namespace

cudaError_t LaunchNonFiniteCheckAndUnscale(float* data, std::int64_t n, float inv_scale, int* found,
                                           cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  int device = 0, sms = 0;
  cudaError_t e = cudaGetDevice(&device);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (e != cudaSuccess) return e;
  const std::int64_t needed = (n + kThreads - 1) / kThreads;
  const int blocks = static_cast<int>(needed < 4LL * sms ? needed : 4LL * sms);
  NonFiniteCheckAndUnscaleKernel<<<blocks, kThreads, 0, stream>>>(data, n, inv_scale, found);
  return cudaGetLastError();
}

}  // namespace zt::ops::cuda
