#include "ops/linear.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>

#include <vector>

#include "ops/fused_impl.h"

namespace zt::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// x as [rows, in]: a view where its strides allow one, else a copy.
at::Tensor Rows(const at::Tensor& x) { return x.reshape({-1, x.size(-1)}); }

at::Tensor OutSizes(const at::Tensor& y2, const at::Tensor& x) {
  std::vector<std::int64_t> sizes(x.sizes().begin(), x.sizes().end());
  sizes.back() = y2.size(1);
  return y2.view(sizes);
}

class LinearFunction : public torch::autograd::Function<LinearFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight) {
    ctx->save_for_backward({x, weight});
    return OutSizes(at::mm(Rows(x), weight.t()), x);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const at::Tensor& dy = grad_outputs[0];
    if (!dy.defined()) return {at::Tensor(), at::Tensor()};
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1];
    const at::Tensor dy2 = Rows(dy);
    at::Tensor dx, dw;
    if (ctx->needs_input_grad(0)) dx = at::mm(dy2, weight).view(x.sizes());
    if (ctx->needs_input_grad(1)) dw = at::mm(dy2.t(), Rows(x));
    return {dx, dw};
  }
};

}  // namespace

at::Tensor Linear(const at::Tensor& x, const at::Tensor& weight) {
  TORCH_CHECK(weight.dim() == 2 && x.dim() >= 1 && x.size(-1) == weight.size(1), "Linear: x ", x.sizes(),
              " does not end in the weight's input size ", weight.sizes());
  TORCH_CHECK(x.scalar_type() == weight.scalar_type() && x.device() == weight.device(), "Linear: x is ",
              x.scalar_type(), " on ", x.device(), " but the weight is ", weight.scalar_type(), " on ",
              weight.device());
  static const bool reference = ReferenceForced("ZT_LINEAR");
  if (reference || (!x.requires_grad() && !weight.requires_grad())) return at::linear(x, weight);
  return LinearFunction::apply(x, weight);
}

}  // namespace zt::ops
