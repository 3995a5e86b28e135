// T5's layer norm (HF's T5LayerNorm, an RMS norm without mean or bias): the reference and the
// entry point models call; the fused CUDA kernels (//ops/cuda:rms_norm_autograd) register
// themselves here.
//
//   at::Tensor y = zt::ops::RmsNorm(x, weight, eps);   // x [..., d], weight [d]
//
// y = weight * h, h = x * rsqrt(mean(x^2 in float32) + eps), h cast to the weight's dtype when
// that is 16-bit; y has the weight's dtype then, else the promoted dtype (float32).
// ZT_RMS_NORM=reference forces the reference (for comparisons).
#ifndef ZEROTRAIN_OPS_RMS_NORM_H_
#define ZEROTRAIN_OPS_RMS_NORM_H_

#include <ATen/core/Tensor.h>

namespace zt::ops {

// Plain differentiable ATen ops on any device.
at::Tensor RmsNormReference(const at::Tensor& x, const at::Tensor& weight, double eps);

// The fused CUDA kernel where registered and the dtypes are supported, else the reference.
at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps);

// The CUDA library's implementation; it returns an undefined tensor for dtypes it does not take.
using RmsNormFn = at::Tensor (*)(const at::Tensor& x, const at::Tensor& weight, double eps);
void RegisterCudaRmsNorm(RmsNormFn fn);
bool HasCudaRmsNorm();

}  // namespace zt::ops

#endif  // ZEROTRAIN_OPS_RMS_NORM_H_
