#include "ops/cuda/pair_bias_attention_autograd.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>

#include "ops/cuda/element_type_of.h"
#include "ops/cuda/pair_bias_attention.h"
#include "ops/pair_bias_attention.h"

namespace zt::ops::cuda {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

ElementType KernelDtype(at::ScalarType t) {
  const std::optional<ElementType> e = ElementTypeOf(t);
  TORCH_CHECK(e.has_value(), "PairBiasAttentionCuda: q must be float32, bfloat16 or float16, got ", t);
  return *e;
}

PairBiasAttentionSizes SizesOf(const at::Tensor& q) {
  PairBiasAttentionSizes s;
  s.batch = q.size(0);
  s.heads = q.size(1);
  s.n = q.size(2);
  s.head_dim = q.size(3);
  return s;
}

void CheckLaunch(cudaError_t e, const char* what) {
  TORCH_CHECK(e == cudaSuccess, "PairBiasAttentionCuda: ", what, " failed: ", cudaGetErrorString(e));
}

class PairBiasAttentionFunction : public torch::autograd::Function<PairBiasAttentionFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& bias, const at::Tensor& key_mask, double scale) {
    const at::Tensor qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous(), bc = bias.contiguous();
    const at::Tensor mc = key_mask.contiguous();
    const PairBiasAttentionSizes sizes = SizesOf(qc);
    at::Tensor out = at::empty(qc.sizes(), qc.options());
    at::Tensor lse = at::empty({sizes.batch, sizes.heads, sizes.n}, qc.options().dtype(at::kFloat));
    CheckLaunch(
        LaunchPairBiasAttentionForward(KernelDtype(qc.scalar_type()), sizes, qc.data_ptr(), kc.data_ptr(),
                                       vc.data_ptr(), bc.data_ptr(), mc.data_ptr<bool>(), static_cast<float>(scale),
                                       out.data_ptr(), lse.data_ptr<float>(), at::cuda::getCurrentCUDAStream()),
        "forward kernel");
    ctx->save_for_backward({qc, kc, vc, bc, mc, out, lse});
    ctx->saved_data["scale"] = scale;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &bias = saved[3], &key_mask = saved[4];
    const at::Tensor &out = saved[5], &lse = saved[6];
    const double scale = ctx->saved_data["scale"].toDouble();
    if (!grad_outputs[0].defined())
      return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    const at::Tensor dout = grad_outputs[0].to(out.scalar_type()).contiguous();
    TORCH_CHECK(dout.sizes() == out.sizes(), "PairBiasAttentionCuda: the output's gradient has shape ", dout.sizes(),
                ", expected ", out.sizes());
    const c10::cuda::CUDAGuard guard(q.device());
    const PairBiasAttentionSizes sizes = SizesOf(q);
    at::Tensor dq = at::empty(q.sizes(), q.options());
    at::Tensor dk = at::empty(k.sizes(), k.options());
    at::Tensor dv = at::empty(v.sizes(), v.options());
    at::Tensor dbias = at::empty(bias.sizes(), bias.options());
    at::Tensor delta = at::empty({sizes.batch, sizes.heads, sizes.n}, q.options().dtype(at::kFloat));
    CheckLaunch(LaunchPairBiasAttentionBackward(
                    KernelDtype(q.scalar_type()), sizes, q.data_ptr(), k.data_ptr(), v.data_ptr(), bias.data_ptr(),
                    key_mask.data_ptr<bool>(), static_cast<float>(scale), out.data_ptr(), dout.data_ptr(),
                    lse.data_ptr<float>(), delta.data_ptr<float>(), dq.data_ptr(), dk.data_ptr(), dv.data_ptr(),
                    dbias.data_ptr(), at::cuda::getCurrentCUDAStream()),
                "backward kernels");
    // key_mask and scale get none.
    return {dq, dk, dv, dbias, at::Tensor(), at::Tensor()};
  }
};

[[maybe_unused]] const bool kRegistered = [] {
  RegisterCudaPairBiasAttention(&PairBiasAttentionCuda);
  return true;
}();

}  // namespace

at::Tensor PairBiasAttentionCuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                                 const at::Tensor& key_mask, double scale) {
  CheckPairBiasAttentionArgs("PairBiasAttentionCuda", q, k, v, bias, key_mask, scale);
  TORCH_CHECK(q.is_cuda(), "PairBiasAttentionCuda: q, k, v, bias and key_mask must be CUDA tensors, got q on ",
              q.device());
  TORCH_CHECK(q.scalar_type() != at::kDouble,
              "PairBiasAttentionCuda: float64 is not supported by the fused kernel (q has shape ", q.sizes(),
              "); use PairBiasAttentionReference");
  TORCH_CHECK(q.size(3) <= kPairBiasAttentionMaxHeadDim, "PairBiasAttentionCuda: head dimension D = ", q.size(3),
              " of q (shape ", q.sizes(), ") is over the fused kernel's limit of ", kPairBiasAttentionMaxHeadDim,
              "; PairBiasAttention runs the reference for it");
  TORCH_CHECK(PairBiasAttentionSupports(SizesOf(q)), "PairBiasAttentionCuda: q's shape ", q.sizes(),
              " is too large for the fused kernel's grid");
  const c10::cuda::CUDAGuard guard(q.device());
  return PairBiasAttentionFunction::apply(q, k, v, bias, key_mask, scale);
}

}  // namespace zt::ops::cuda
