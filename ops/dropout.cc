#include "ops/dropout.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include "ops/fused_impl.h"

namespace zt::ops {
namespace {

FusedImpl<const DropoutFns*>& Impl() {
  static FusedImpl<const DropoutFns*> impl("ZT_DROPOUT");
  return impl;
}

void CheckRate(const char* op, double p) {
  TORCH_CHECK(p >= 0 && p <= 1, op, ": dropout probability has to be between 0 and 1, got ", p);
}

// The fused kernels when they may run: a dropout that drops something, on CUDA.
const DropoutFns* Fused(double p, bool training, const at::Tensor& h) {
  if (!training || p <= 0 || p >= 1 || !h.is_cuda()) return nullptr;
  return Impl().Get();
}

}  // namespace

at::Tensor DropoutAddReference(const at::Tensor& x, const at::Tensor& h, double p, bool training) {
  return x + at::dropout(h, p, training);
}

at::Tensor ReluDropoutReference(const at::Tensor& h, double p, bool training) {
  return at::dropout(at::relu(h), p, training);
}

at::Tensor DropoutAdd(const at::Tensor& x, const at::Tensor& h, double p, bool training) {
  CheckRate("DropoutAdd", p);
  if (const DropoutFns* fused = Fused(p, training, h)) {
    if (x.is_cuda() && x.device() == h.device() && x.sizes() == h.sizes() && x.scalar_type() == h.scalar_type()) {
      at::Tensor y = fused->dropout_add(x, h, p);
      if (y.defined()) return y;
    }
  }
  return DropoutAddReference(x, h, p, training);
}

at::Tensor ReluDropout(const at::Tensor& h, double p, bool training) {
  CheckRate("ReluDropout", p);
  if (const DropoutFns* fused = Fused(p, training, h)) {
    at::Tensor y = fused->relu_dropout(h, p);
    if (y.defined()) return y;
  }
  return ReluDropoutReference(h, p, training);
}

void RegisterCudaDropout(const DropoutFns* fns) { Impl().Set(fns); }

bool HasCudaDropout() { return Impl().registered(); }

}  // namespace zt::ops
