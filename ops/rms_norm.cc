#include "ops/rms_norm.h"

#include <ATen/ATen.h>

#include "ops/fused_impl.h"

namespace zt::ops {
namespace {

FusedImpl<RmsNormFn>& Impl() {
  static FusedImpl<RmsNormFn> impl("ZT_RMS_NORM");
  return impl;
}

FusedImpl<RmsNormResidualFn>& ResidualImpl() {
  static FusedImpl<RmsNormResidualFn> impl("ZT_RMS_NORM");
  return impl;
}

void CheckShapes(const at::Tensor& x, const at::Tensor& weight) {
  TORCH_CHECK(weight.dim() == 1 && x.dim() >= 1 && x.size(-1) == weight.size(0), "RmsNorm: x ", x.sizes(),
              " does not end in the weight's size ", weight.sizes());
}

}  // namespace

at::Tensor RmsNormReference(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const at::Tensor variance = x.to(at::kFloat).pow(2).mean(-1, /*keepdim=*/true);
  at::Tensor h = x * at::rsqrt(variance + eps);
  if (weight.scalar_type() == at::kHalf || weight.scalar_type() == at::kBFloat16) h = h.to(weight.scalar_type());
  return weight * h;
}

at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  CheckShapes(x, weight);
  if (x.is_cuda() && weight.is_cuda()) {
    if (RmsNormFn fused = Impl().Get()) {
      at::Tensor y = fused(x, weight, eps);
      if (y.defined()) return y;
    }
  }
  return RmsNormReference(x, weight, eps);
}

std::array<at::Tensor, 2> RmsNormResidual(const at::Tensor& x, const at::Tensor& weight, double eps) {
  CheckShapes(x, weight);
  if (x.is_cuda() && weight.is_cuda()) {
    if (RmsNormResidualFn fused = ResidualImpl().Get()) {
      std::array<at::Tensor, 2> yr = fused(x, weight, eps);
      if (yr[0].defined()) return yr;
    }
  }
  return {RmsNorm(x, weight, eps), x};
}

void RegisterCudaRmsNorm(RmsNormFn fn) { Impl().Set(fn); }

void RegisterCudaRmsNormResidual(RmsNormResidualFn fn) { ResidualImpl().Set(fn); }

bool HasCudaRmsNorm() { return Impl().registered(); }

}  // namespace zt::ops
