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

// The weights as one [out_1 + .. + out_n, in] matrix when they lie back to back in one buffer
// (contiguous, each starting where the one before ends); undefined otherwise.
at::Tensor Stacked(at::TensorList ws) {
  const at::Tensor& w0 = ws[0];
  const std::int64_t in = w0.size(1);
  std::int64_t rows = 0;
  for (const at::Tensor& w : ws) {
    if (!w.is_contiguous() || w.size(1) != in || !w.storage().is_alias_of(w0.storage()) ||
        w.storage_offset() != w0.storage_offset() + rows * in) {
      return at::Tensor();
    }
    rows += w.size(0);
  }
  return w0.as_strided({rows, in}, {in, 1});
}

// Gradients [rows, out_i] as one [rows, out_1 + .. + out_n] matrix when they are its column
// blocks in one buffer; undefined otherwise.
at::Tensor Joined(const std::vector<at::Tensor>& dys) {
  const at::Tensor& d0 = dys[0];
  std::int64_t cols = 0;
  for (const at::Tensor& d : dys) cols += d.defined() ? d.size(1) : 0;
  std::int64_t offset = 0;
  for (const at::Tensor& d : dys) {
    if (!d.defined() || d.size(0) != d0.size(0) || d.stride(1) != 1 || d.stride(0) != cols ||
        !d.storage().is_alias_of(d0.storage()) || d.storage_offset() != d0.storage_offset() + offset) {
      return at::Tensor();
    }
    offset += d.size(1);
  }
  return d0.as_strided({d0.size(0), cols}, {cols, 1});
}

// y_i = x @ w_i^T: one product where the weights stack, the outputs its column blocks.
std::vector<at::Tensor> Project(const at::Tensor& x, at::TensorList weights) {
  const at::Tensor x2 = Rows(x), all = Stacked(weights);
  std::vector<at::Tensor> ys;
  if (all.defined()) {
    const at::Tensor y = at::mm(x2, all.t());
    std::int64_t offset = 0;
    for (const at::Tensor& w : weights) {
      ys.push_back(OutSizes(y.narrow(1, offset, w.size(0)), x));
      offset += w.size(0);
    }
  } else {
    for (const at::Tensor& w : weights) ys.push_back(OutSizes(at::mm(x2, w.t()), x));
  }
  return ys;
}

class LinearsFunction : public torch::autograd::Function<LinearsFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, at::TensorList weights) {
    variable_list saved = {x};
    saved.insert(saved.end(), weights.begin(), weights.end());
    ctx->save_for_backward(saved);
    return Project(x, weights);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::TensorList weights = at::TensorList(saved).slice(1);
    const std::size_t n = weights.size();
    variable_list grads(n + 1);
    std::vector<at::Tensor> dys(n);
    for (std::size_t i = 0; i < n; ++i) {
      if (grad_outputs[i].defined()) dys[i] = Rows(grad_outputs[i]);
    }
    const at::Tensor dy_all = Joined(dys), w_all = Stacked(weights), x2 = Rows(x);
    bool weight_grads = false;
    for (std::size_t i = 0; i < n; ++i) weight_grads = weight_grads || ctx->needs_input_grad(i + 1);
    if (dy_all.defined() && w_all.defined()) {
      if (ctx->needs_input_grad(0)) grads[0] = at::mm(dy_all, w_all).view(x.sizes());
      if (weight_grads) {
        const at::Tensor dw_all = at::mm(dy_all.t(), x2);
        std::int64_t offset = 0;
        for (std::size_t i = 0; i < n; ++i) {
          if (ctx->needs_input_grad(i + 1)) grads[i + 1] = dw_all.narrow(0, offset, weights[i].size(0));
          offset += weights[i].size(0);
        }
      }
      return grads;
    }
    if (ctx->needs_input_grad(0)) {
      at::Tensor dx;
      for (std::size_t i = 0; i < n; ++i) {
        if (!dys[i].defined()) continue;
        if (dx.defined()) {
          dx.addmm_(dys[i], weights[i]);  // accumulated by the product itself
        } else {
          dx = at::mm(dys[i], weights[i]);
        }
      }
      if (dx.defined()) grads[0] = dx.view(x.sizes());
    }
    for (std::size_t i = 0; i < n; ++i) {
      if (dys[i].defined() && ctx->needs_input_grad(i + 1)) grads[i + 1] = at::mm(dys[i].t(), x2);
    }
    return grads;
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

std::vector<at::Tensor> Linears(const at::Tensor& x, at::TensorList weights) {
  TORCH_CHECK(!weights.empty(), "Linears: no weights");
  for (const at::Tensor& w : weights) {
    TORCH_CHECK(w.dim() == 2 && x.dim() >= 1 && x.size(-1) == w.size(1), "Linears: x ", x.sizes(),
                " does not end in a weight's input size ", w.sizes());
    TORCH_CHECK(x.scalar_type() == w.scalar_type() && x.device() == w.device(), "Linears: x is ", x.scalar_type(),
                " on ", x.device(), " but a weight is ", w.scalar_type(), " on ", w.device());
  }
  // ZT_LINEARS=reference (or ZT_LINEAR=reference): one Linear per weight (comparisons).
  static const bool separate = ReferenceForced("ZT_LINEARS") || ReferenceForced("ZT_LINEAR");
  bool grad = x.requires_grad();
  for (const at::Tensor& w : weights) grad = grad || w.requires_grad();
  if (separate) {
    std::vector<at::Tensor> ys;
    for (const at::Tensor& w : weights) ys.push_back(Linear(x, w));
    return ys;
  }
  return grad ? LinearsFunction::apply(x, weights) : Project(x, weights);
}

}  // namespace zt::ops
