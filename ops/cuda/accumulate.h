// CUDA kernel of ops/accumulate.h on raw device pointers: dst[i] += float(src[i]) (or = when the
// slice assigns) for many slices
// in one launch per kAccumulateBatch of them; //ops/cuda:accumulate_slices registers it for
// at::Tensor slices.  Asynchronous on `stream`.
#ifndef ZEROTRAIN_OPS_CUDA_ACCUMULATE_H_
#define ZEROTRAIN_OPS_CUDA_ACCUMULATE_H_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "ops/cuda/element_type.h"

namespace zt::ops::cuda {

struct RawSlice {
  const void* src;  // n elements of `dtype`
  float* dst;       // n floats
  std::int64_t n;
  ElementType dtype;
  bool assign;  // dst = src: dst is not read
};

constexpr int kAccumulateBatch = 64;  // slices per launch (they travel as kernel arguments)

// cudaErrorInvalidValue for a negative count or n; slices may not overlap one another's dst.
cudaError_t LaunchAccumulate(const RawSlice* slices, int count, cudaStream_t stream);

}  // namespace zt::ops::cuda

#endif  // ZEROTRAIN_OPS_CUDA_ACCUMULATE_H_
