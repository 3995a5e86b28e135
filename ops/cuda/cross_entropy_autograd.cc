#include "ops/cuda/cross_entropy_autograd.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <optional>

#include "ops/cuda/cross_entropy.h"
#include "ops/cuda/element_type_of.h"
#include "ops/linear_cross_entropy.h"

namespace zt::ops::cuda {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

void CheckLaunch(cudaError_t e, const char* what) {
  TORCH_CHECK(e == cudaSuccess, "LinearCrossEntropyCuda: ", what, " failed: ", cudaGetErrorString(e));
}

class LinearCrossEntropyFunction : public torch::autograd::Function<LinearCrossEntropyFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight,
                            const at::Tensor& labels, std::int64_t ignore_index, std::int64_t chunk) {
    const at::Tensor h = hidden.contiguous(), w = weight.contiguous(), y = labels.contiguous();
    const std::int64_t n = h.size(0), v = w.size(0);
    const ElementType dt = *ElementTypeOf(h.scalar_type());
    at::Tensor lse = at::empty({n}, h.options().dtype(at::kFloat));
    at::Tensor rows = at::empty({n}, h.options().dtype(at::kFloat));
    const auto stream = at::cuda::getCurrentCUDAStream();
    for (std::int64_t r = 0; r < n; r += chunk) {
      const std::int64_t m = std::min(chunk, n - r);
      const at::Tensor logits = at::mm(h.narrow(0, r, m), w.t());
      CheckLaunch(LaunchCrossEntropyForward(dt, logits.data_ptr(), y.data_ptr<std::int64_t>() + r, m, v, ignore_index,
                                            lse.data_ptr<float>() + r, rows.data_ptr<float>() + r, stream),
                  "forward kernel");
    }
    const at::Tensor count = (y != ignore_index).sum().to(at::kFloat);
    ctx->save_for_backward({h, w, y, lse, count});
    ctx->saved_data["ignore_index"] = ignore_index;
    ctx->saved_data["chunk"] = chunk;
    return rows.sum() / count;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &h = saved[0], &w = saved[1], &y = saved[2], &lse = saved[3], &count = saved[4];
    const std::int64_t ignore_index = ctx->saved_data["ignore_index"].toInt();
    const std::int64_t chunk = ctx->saved_data["chunk"].toInt();
    if (!grad_outputs[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    const c10::cuda::CUDAGuard guard(h.device());
    const at::Tensor scale = (grad_outputs[0].to(at::kFloat) / count).reshape({1}).contiguous();
    const std::int64_t n = h.size(0), v = w.size(0);
    const ElementType dt = *ElementTypeOf(h.scalar_type());
    const auto stream = at::cuda::getCurrentCUDAStream();
    at::Tensor dh = at::empty_like(h);
    at::Tensor dw;
    for (std::int64_t r = 0; r < n; r += chunk) {
      const std::int64_t m = std::min(chunk, n - r);
      const at::Tensor hc = h.narrow(0, r, m);
      at::Tensor g = at::mm(hc, w.t());  // the logits again, overwritten by their gradient
      CheckLaunch(
          LaunchCrossEntropyBackward(dt, g.data_ptr(), y.data_ptr<std::int64_t>() + r, lse.data_ptr<float>() + r, m, v,
                                     ignore_index, scale.data_ptr<float>(), stream),
          "backward kernel");
      at::Tensor dh_rows = dh.narrow(0, r, m);
      at::mm_out(dh_rows, g, w);
      if (dw.defined()) {
        dw.addmm_(g.t(), hc);
      } else {
        dw = at::mm(g.t(), hc);
      }
    }
    if (!dw.defined()) dw = at::zeros_like(w);
    return {dh, dw, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor Registered(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                      std::int64_t ignore_index) {
  return LinearCrossEntropyCuda(hidden, weight, labels, ignore_index);
}

[[maybe_unused]] const bool kRegistered = [] {
  RegisterCudaLinearCrossEntropy(&Registered);
  return true;
}();

}  // namespace

at::Tensor LinearCrossEntropyCuda(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                                  std::int64_t ignore_index, std::int64_t chunk_rows) {
  TORCH_CHECK(hidden.dim() == 2 && weight.dim() == 2 && hidden.size(1) == weight.size(1),
              "LinearCrossEntropyCuda: hidden must be [N, D] and weight [V, D], got ", hidden.sizes(), " and ",
              weight.sizes());
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == hidden.size(0) && labels.scalar_type() == at::kLong,
              "LinearCrossEntropyCuda: labels must be int64 [N] = [", hidden.size(0), "], got ", labels.scalar_type(),
              " ", labels.sizes());
  TORCH_CHECK(hidden.is_cuda() && weight.device() == hidden.device() && labels.device() == hidden.device(),
              "LinearCrossEntropyCuda: hidden, weight and labels must be CUDA tensors of one device, got ",
              hidden.device(), ", ", weight.device(), " and ", labels.device());
  if (!ElementTypeOf(hidden.scalar_type()) || weight.scalar_type() != hidden.scalar_type() || weight.size(0) == 0) {
    return at::Tensor();
  }
  const std::int64_t chunk =
      chunk_rows > 0 ? chunk_rows : std::max<std::int64_t>(1, kCrossEntropyChunkElems / weight.size(0));
  const c10::cuda::CUDAGuard guard(hidden.device());
  return LinearCrossEntropyFunction::apply(hidden, weight, labels, ignore_index, chunk);
}

}  // namespace zt::ops::cuda
