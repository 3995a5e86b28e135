// CUDA kernels of ops/rms_norm.h (T5's RMS layer norm): forward and backward fused, raw device
// pointers; ops/cuda/rms_norm_autograd.h wraps them for at::Tensor and autograd.
//
// x [rows, d] in `x_dtype`, weight [d] in `w_dtype`; y [rows, d] in the weight's dtype when it is
// 16-bit, else float32 (HF's T5LayerNorm): y = w * round_w(x * rstd), rstd = rsqrt(mean(x^2) + eps)
// with every sum in float32.  The forward writes rstd [rows] (float32) for the backward.
// Backward: dx [rows, d] in x's dtype (plus dres [rows, d], x's dtype, when not null: the
// gradient of a residual branch that takes x as well); dw [d] in the weight's dtype, the sum over rows of
// dy * round_w(x * rstd): float32 sums of row groups first, in the workspace dw_partial
// [RmsNormWeightGroups(rows), d], then their sum.
//
// Dtype pairs (x, w): (bf16, bf16), (f16, f16), (f32, f32), (f32, bf16), (f32, f16); others
// return cudaErrorInvalidValue.  Asynchronous on `stream`.
#ifndef ZEROTRAIN_OPS_CUDA_RMS_NORM_H_
#define ZEROTRAIN_OPS_CUDA_RMS_NORM_H_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "ops/cuda/element_type.h"

namespace zt::ops::cuda {

bool RmsNormSupports(ElementType x, ElementType w);
int RmsNormWeightGroups(std::int64_t rows);

cudaError_t LaunchRmsNormForward(ElementType x_dtype, ElementType w_dtype, const void* x, const void* weight,
                                 std::int64_t rows, std::int64_t d, float eps, void* y, float* rstd,
                                 cudaStream_t stream);

cudaError_t LaunchRmsNormBackward(ElementType x_dtype, ElementType w_dtype, const void* x, const void* weight,
                                  const float* rstd, const void* dy, const void* dres, std::int64_t rows,
                                  std::int64_t d, void* dx, float* dw_partial, void* dw, cudaStream_t stream);

}  // namespace zt::ops::cuda

#endif  // ZEROTRAIN_OPS_CUDA_RMS_NORM_H_
