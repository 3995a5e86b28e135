// CUDA kernels of ops/dropout.h on raw device pointers; ops/cuda/dropout_autograd.h wraps them
// for at::Tensor and autograd.  Every tensor is contiguous with n elements of `dtype`.
//
// Element i is kept when its 16-bit draw is at least `threshold` (= round(p * 65536)); one hash of
// (seed, i / 2) gives the draws of elements i and i + 1 (i even) so a kernel recomputes the mask
// from the seed alone.  Kept elements are scaled by keep_scale = 65536 / (65536 - threshold).
//
//   DropoutAddForward:    y = x + keep * h * keep_scale           (computed in float, rounded once)
//   DropoutAddBackward:   dh = keep * dy * keep_scale            (dx is dy itself)
//   ReluDropoutForward:   y = keep * max(h, 0) * keep_scale
//   ReluDropoutBackward:  dh = (y > 0) * dy * keep_scale         (no mask: y > 0 exactly where it flows)
//
// Asynchronous on `stream`; cudaErrorInvalidValue for a threshold outside [1, 65535].
#ifndef ZEROTRAIN_OPS_CUDA_DROPOUT_H_
#define ZEROTRAIN_OPS_CUDA_DROPOUT_H_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "ops/cuda/element_type.h"

namespace zt::ops::cuda {

struct DropoutDraw {
  std::uint64_t seed;
  std::uint32_t threshold;  // out of 65536
};

// The draw for rate p: its threshold, and 1 / (1 - threshold / 65536) in *keep_scale.
DropoutDraw MakeDropoutDraw(double p, std::uint64_t seed, float* keep_scale);

cudaError_t LaunchDropoutAddForward(ElementType dtype, const void* x, const void* h, std::int64_t n, DropoutDraw draw,
                                    void* y, cudaStream_t stream);
cudaError_t LaunchDropoutAddBackward(ElementType dtype, const void* dy, std::int64_t n, DropoutDraw draw, void* dh,
                                     cudaStream_t stream);
cudaError_t LaunchReluDropoutForward(ElementType dtype, const void* h, std::int64_t n, DropoutDraw draw, void* y,
                                     cudaStream_t stream);
cudaError_t LaunchReluDropoutBackward(ElementType dtype, const void* y, const void* dy, std::int64_t n,
                                      DropoutDraw draw, void* dh, cudaStream_t stream);

}  // namespace zt::ops::cuda

#endif  // ZEROTRAIN_OPS_CUDA_DROPOUT_H_
