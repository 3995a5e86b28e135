#include "ops/cuda/rms_norm_autograd.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>

#include <array>
#include <optional>

#include "ops/cuda/element_type_of.h"
#include "ops/cuda/rms_norm.h"
#include "ops/rms_norm.h"

namespace zt::ops::cuda {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

void CheckLaunch(cudaError_t e, const char* what) {
  TORCH_CHECK(e == cudaSuccess, "RmsNormCuda: ", what, " failed: ", cudaGetErrorString(e));
}

// y = RmsNorm(x, weight), saving what the backward needs.
at::Tensor NormForward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, double eps) {
  const at::Tensor xc = x.contiguous(), wc = weight.contiguous();
  const std::int64_t d = wc.size(0), rows = xc.numel() / d;
  const at::ScalarType out_type = wc.scalar_type() == at::kFloat ? at::kFloat : wc.scalar_type();
  at::Tensor y = at::empty(xc.sizes(), xc.options().dtype(out_type));
  at::Tensor rstd = at::empty({rows}, xc.options().dtype(at::kFloat));
  CheckLaunch(LaunchRmsNormForward(*ElementTypeOf(xc.scalar_type()), *ElementTypeOf(wc.scalar_type()), xc.data_ptr(),
                                   wc.data_ptr(), rows, d, static_cast<float>(eps), y.data_ptr(),
                                   rstd.data_ptr<float>(), at::cuda::getCurrentCUDAStream()),
              "forward kernel");
  ctx->save_for_backward({xc, wc, rstd});
  return y;
}

// {dx, dweight, -}: the norm's gradient from dy, plus dres (the residual branch's gradient of x)
// when defined.
variable_list NormBackward(AutogradContext* ctx, const at::Tensor& dy_in, const at::Tensor& dres_in) {
  const variable_list saved = ctx->get_saved_variables();
  const at::Tensor &x = saved[0], &w = saved[1], &rstd = saved[2];
  if (!dy_in.defined())
    return {dres_in.defined() ? dres_in.to(x.scalar_type()) : at::Tensor(), at::Tensor(), at::Tensor()};
  const at::ScalarType out_type = w.scalar_type() == at::kFloat ? at::kFloat : w.scalar_type();
  const at::Tensor dy = dy_in.to(out_type).contiguous();
  const at::Tensor dres = dres_in.defined() ? dres_in.to(x.scalar_type()).contiguous() : at::Tensor();
  const c10::cuda::CUDAGuard guard(x.device());
  const std::int64_t d = w.size(0), rows = x.numel() / d;
  at::Tensor dx = at::empty(x.sizes(), x.options());
  const at::Tensor partial = at::empty({RmsNormWeightGroups(rows), d}, x.options().dtype(at::kFloat));
  at::Tensor dw = at::empty({d}, w.options());
  CheckLaunch(LaunchRmsNormBackward(*ElementTypeOf(x.scalar_type()), *ElementTypeOf(w.scalar_type()), x.data_ptr(),
                                    w.data_ptr(), rstd.data_ptr<float>(), dy.data_ptr(),
                                    dres.defined() ? dres.data_ptr() : nullptr, rows, d, dx.data_ptr(),
                                    partial.data_ptr<float>(), dw.data_ptr(), at::cuda::getCurrentCUDAStream()),
              "backward kernels");
  return {dx, dw, at::Tensor()};
}

class RmsNormFunction : public torch::autograd::Function<RmsNormFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, double eps) {
    return NormForward(ctx, x, weight, eps);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    if (!grad_outputs[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor()};
    return NormBackward(ctx, grad_outputs[0], at::Tensor());
  }
};

// {y, x}: x handed back as the residual branch's input (autograd makes it a view of x whose
// gradient comes to this node), so that one kernel adds both gradients of x.
class RmsNormResidualFunction : public torch::autograd::Function<RmsNormResidualFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, double eps) {
    return {NormForward(ctx, x, weight, eps), x};
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    return NormBackward(ctx, grad_outputs[0], grad_outputs[1]);
  }
};

bool Takes(const at::Tensor& x, const at::Tensor& weight) {
  TORCH_CHECK(x.is_cuda() && weight.is_cuda() && x.device() == weight.device(),
              "RmsNormCuda: x and weight must be CUDA tensors of one device, got ", x.device(), " and ",
              weight.device());
  TORCH_CHECK(weight.dim() == 1 && x.dim() >= 1 && x.size(-1) == weight.size(0), "RmsNormCuda: x ", x.sizes(),
              " does not end in the weight's size ", weight.sizes());
  const std::optional<ElementType> xd = ElementTypeOf(x.scalar_type()), wd = ElementTypeOf(weight.scalar_type());
  return xd && wd && RmsNormSupports(*xd, *wd) && x.numel() > 0;
}

[[maybe_unused]] const bool kRegistered = [] {
  RegisterCudaRmsNorm(&RmsNormCuda);
  RegisterCudaRmsNormResidual(&RmsNormResidualCuda);
  return true;
}();

}  // namespace

at::Tensor RmsNormCuda(const at::Tensor& x, const at::Tensor& weight, double eps) {
  if (!Takes(x, weight)) return at::Tensor();
  const c10::cuda::CUDAGuard guard(x.device());
  return RmsNormFunction::apply(x, weight, eps);
}

std::array<at::Tensor, 2> RmsNormResidualCuda(const at::Tensor& x, const at::Tensor& weight, double eps) {
  if (!Takes(x, weight)) return {};
  const c10::cuda::CUDAGuard guard(x.device());
  const variable_list yr = RmsNormResidualFunction::apply(x, weight, eps);
  return {yr[0], yr[1]};
}

}  // namespace zt::ops::cuda
