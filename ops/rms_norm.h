// T5's layer norm (HF's T5LayerNorm, an RMS norm without mean or bias): the reference and the
// entry point models call; the fused CUDA kernels (//ops/cuda:rms_norm_autograd) register
// themselves here.
//
//   at::Tensor y = zt::ops::RmsNorm(x, weight, eps);   // x [..., d], weight [d]
//
// y = weight * h, h = x * rsqrt(mean(x^2 in float32) + eps), h cast to the weight's dtype when
// that is 16-bit; y has the weight's dtype then, else the promoted dtype (float32).
// ZT_RMS_NORM=reference forces the reference (for comparisons).
//
// A pre-norm residual block (x + f(RmsNorm(x))) takes its residual from the norm:
//
//   auto [y, r] = zt::ops::RmsNormResidual(x, weight, eps);   // r is x, as an output of the norm
//   out = r + f(y);
//
// so that the fused backward adds r's gradient into x's in its own pass, where autograd would
// otherwise add the two gradients of x in a separate kernel.
#ifndef ZEROTRAIN_OPS_RMS_NORM_H_
#define ZEROTRAIN_OPS_RMS_NORM_H_

#include <ATen/core/Tensor.h>

#include <array>

namespace zt::ops {

// Plain differentiable ATen ops on any device.
at::Tensor RmsNormReference(const at::Tensor& x, const at::Tensor& weight, double eps);

// The fused CUDA kernel where registered and the dtypes are supported, else the reference.
at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps);

// {RmsNorm(x, weight, eps), x}: the fused kernel's residual form where registered, else the
// reference's y and x itself.
std::array<at::Tensor, 2> RmsNormResidual(const at::Tensor& x, const at::Tensor& weight, double eps);

// The CUDA library's implementations; they return undefined tensors for dtypes they do not take.
using RmsNormFn = at::Tensor (*)(const at::Tensor& x, const at::Tensor& weight, double eps);
using RmsNormResidualFn = std::array<at::Tensor, 2> (*)(const at::Tensor& x, const at::Tensor& weight, double eps);
void RegisterCudaRmsNorm(RmsNormFn fn);
void RegisterCudaRmsNormResidual(RmsNormResidualFn fn);
bool HasCudaRmsNorm();

}  // namespace zt::ops

#endif  // ZEROTRAIN_OPS_RMS_NORM_H_
