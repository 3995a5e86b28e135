#include "ops/cuda/dropout_autograd.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>

#include <optional>

#include "ops/cuda/dropout.h"
#include "ops/cuda/dropout_seed.h"
#include "ops/cuda/element_type_of.h"
#include "ops/dropout.h"

namespace zt::ops::cuda {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

void Check(cudaError_t e, const char* what) {
  TORCH_CHECK(e == cudaSuccess, "fused dropout: ", what, " failed: ", cudaGetErrorString(e));
}

// The draw saved with a node: the seed travels as two halves (saved_data holds int64).
void SaveDraw(AutogradContext* ctx, const DropoutDraw& d) {
  ctx->saved_data["seed"] = static_cast<std::int64_t>(d.seed);
  ctx->saved_data["threshold"] = static_cast<std::int64_t>(d.threshold);
}
DropoutDraw LoadDraw(AutogradContext* ctx) {
  return DropoutDraw{static_cast<std::uint64_t>(ctx->saved_data["seed"].toInt()),
                     static_cast<std::uint32_t>(ctx->saved_data["threshold"].toInt())};
}

class DropoutAddFunction : public torch::autograd::Function<DropoutAddFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& h, double p) {
    const at::Tensor xc = x.contiguous(), hc = h.contiguous();
    const DropoutDraw draw = MakeDropoutDraw(p, NextDropoutSeed(), nullptr);
    at::Tensor y = at::empty_like(xc);
    Check(LaunchDropoutAddForward(*ElementTypeOf(xc.scalar_type()), xc.data_ptr(), hc.data_ptr(), xc.numel(), draw,
                                  y.data_ptr(), at::cuda::getCurrentCUDAStream()),
          "DropoutAdd forward");
    SaveDraw(ctx, draw);
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const at::Tensor& dy = grad_outputs[0];
    if (!dy.defined()) return {at::Tensor(), at::Tensor(), at::Tensor()};
    const at::Tensor dyc = dy.contiguous();
    const c10::cuda::CUDAGuard guard(dyc.device());
    at::Tensor dh = at::empty_like(dyc);
    Check(LaunchDropoutAddBackward(*ElementTypeOf(dyc.scalar_type()), dyc.data_ptr(), dyc.numel(), LoadDraw(ctx),
                                   dh.data_ptr(), at::cuda::getCurrentCUDAStream()),
          "DropoutAdd backward");
    return {dy, dh, at::Tensor()};
  }
};

class ReluDropoutFunction : public torch::autograd::Function<ReluDropoutFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& h, double p) {
    const at::Tensor hc = h.contiguous();
    const DropoutDraw draw = MakeDropoutDraw(p, NextDropoutSeed(), nullptr);
    at::Tensor y = at::empty_like(hc);
    Check(LaunchReluDropoutForward(*ElementTypeOf(hc.scalar_type()), hc.data_ptr(), hc.numel(), draw, y.data_ptr(),
                                   at::cuda::getCurrentCUDAStream()),
          "ReluDropout forward");
    SaveDraw(ctx, draw);
    ctx->save_for_backward({y});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const at::Tensor& dy = grad_outputs[0];
    if (!dy.defined()) return {at::Tensor(), at::Tensor()};
    const at::Tensor y = ctx->get_saved_variables()[0];
    const at::Tensor dyc = dy.to(y.scalar_type()).contiguous();
    const c10::cuda::CUDAGuard guard(y.device());
    at::Tensor dh = at::empty_like(y);
    Check(LaunchReluDropoutBackward(*ElementTypeOf(y.scalar_type()), y.data_ptr(), dyc.data_ptr(), y.numel(),
                                    LoadDraw(ctx), dh.data_ptr(), at::cuda::getCurrentCUDAStream()),
          "ReluDropout backward");
    return {dh, at::Tensor()};
  }
};

bool Takes(const at::Tensor& t, double p) { return t.is_cuda() && ElementTypeOf(t.scalar_type()) && p > 0 && p < 1; }

const DropoutFns kFns{&DropoutAddCuda, &ReluDropoutCuda};

[[maybe_unused]] const bool kRegistered = [] {
  RegisterCudaDropout(&kFns);
  return true;
}();

}  // namespace

at::Tensor DropoutAddCuda(const at::Tensor& x, const at::Tensor& h, double p) {
  TORCH_CHECK(x.is_cuda() && h.is_cuda() && x.device() == h.device() && x.sizes() == h.sizes() &&
                  x.scalar_type() == h.scalar_type(),
              "DropoutAddCuda: x and h must be CUDA tensors of one device, shape and dtype, got ", x.sizes(), " ",
              x.scalar_type(), " on ", x.device(), " and ", h.sizes(), " ", h.scalar_type(), " on ", h.device());
  if (!Takes(x, p)) return at::Tensor();
  const c10::cuda::CUDAGuard guard(x.device());
  return DropoutAddFunction::apply(x, h, p);
}

at::Tensor ReluDropoutCuda(const at::Tensor& h, double p) {
  TORCH_CHECK(h.is_cuda(), "ReluDropoutCuda: h must be a CUDA tensor, got one on ", h.device());
  if (!Takes(h, p)) return at::Tensor();
  const c10::cuda::CUDAGuard guard(h.device());
  return ReluDropoutFunction::apply(h, p);
}

}  // namespace zt::ops::cuda
