#include "ops/linear_cross_entropy.h"

#include <ATen/ATen.h>

#include "ops/fused_impl.h"

namespace zt::ops {
namespace {

FusedImpl<LinearCrossEntropyFn>& Impl() {
  static FusedImpl<LinearCrossEntropyFn> impl("ZT_CROSS_ENTROPY");
  return impl;
}

}  // namespace

at::Tensor LinearCrossEntropyReference(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                                       std::int64_t ignore_index) {
  return at::cross_entropy_loss(at::linear(hidden, weight).to(at::kFloat), labels, {}, at::Reduction::Mean,
                                ignore_index);
}

at::Tensor LinearCrossEntropy(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                              std::int64_t ignore_index) {
  TORCH_CHECK(hidden.dim() == 2 && weight.dim() == 2 && hidden.size(1) == weight.size(1),
              "LinearCrossEntropy: hidden must be [N, D] and weight [V, D], got ", hidden.sizes(), " and ",
              weight.sizes());
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == hidden.size(0) && labels.scalar_type() == at::kLong,
              "LinearCrossEntropy: labels must be int64 [N] = [", hidden.size(0), "], got ", labels.scalar_type(), " ",
              labels.sizes());
  if (hidden.is_cuda() && weight.is_cuda() && labels.is_cuda()) {
    if (LinearCrossEntropyFn fused = Impl().Get()) {
      at::Tensor loss = fused(hidden, weight, labels, ignore_index);
      if (loss.defined()) return loss;
    }
  }
  return LinearCrossEntropyReference(hidden, weight, labels, ignore_index);
}

void RegisterCudaLinearCrossEntropy(LinearCrossEntropyFn fn) { Impl().Set(fn); }

bool HasCudaLinearCrossEntropy() { return Impl().registered(); }

}  // namespace zt::ops
