// The fused CUDA RMS norm (ops/cuda/rms_norm.h) on at::Tensor, with autograd.  Linking
// //ops/cuda:rms_norm_autograd registers it with zt::ops::RmsNorm and RmsNormResidual (a static initializer; the
// target is alwayslink).  Calling it directly is for tests and benchmarks.
#ifndef ZEROTRAIN_OPS_CUDA_RMS_NORM_AUTOGRAD_H_
#define ZEROTRAIN_OPS_CUDA_RMS_NORM_AUTOGRAD_H_

#include <ATen/ATen.h>

#include <array>

namespace zt::ops::cuda {

// x [..., d] and weight [d] CUDA tensors of one device; an undefined tensor when their dtype pair
// is not one the kernels take (ops/cuda/rms_norm.h).  Differentiable in x and weight.
at::Tensor RmsNormCuda(const at::Tensor& x, const at::Tensor& weight, double eps);

// {RmsNormCuda(x, weight, eps), x}: x handed back as an output of the norm for a residual branch,
// whose gradient the norm's backward adds into x's (ops/rms_norm.h's RmsNormResidual); {} when
// the dtypes are not ones the kernels take.
std::array<at::Tensor, 2> RmsNormResidualCuda(const at::Tensor& x, const at::Tensor& weight, double eps);

}  // namespace zt::ops::cuda

#endif  // ZEROTRAIN_OPS_CUDA_RMS_NORM_AUTOGRAD_H_
