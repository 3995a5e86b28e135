#include "ops/cuda/bias_attention_autograd.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <array>
#include <optional>
#include <vector>

#include "ops/cuda/bias_attention.h"
#include "ops/cuda/dropout_seed.h"
#include "ops/cuda/element_type_of.h"

namespace zt::ops::cuda {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The kernels take bfloat16 and float16.
std::optional<ElementType> DtypeOf(at::ScalarType t) {
  const std::optional<ElementType> e = ElementTypeOf(t);
  return e == ElementType::kFloat32 ? std::nullopt : e;
}

HeadsView View(const at::Tensor& t) { return HeadsView{t.data_ptr(), t.stride(0), t.stride(1), t.stride(2)}; }
HeadsOut Out(at::Tensor& t) { return HeadsOut{t.data_ptr(), t.stride(0), t.stride(1), t.stride(2)}; }

// An autograd function takes no undefined tensors: an absent pos or mask travels as an empty one.
at::Tensor OrEmpty(const at::Tensor& t, const at::Tensor& like) {
  return t.defined() ? t : at::empty({0}, like.options());
}

// pos [1, H, Lq, Lk] and mask (broadcast to [B, H, Lq, Lk]) as the kernels read them; an empty
// tensor is none.
BiasView Bias(const at::Tensor& t, std::int64_t b, std::int64_t h, std::int64_t lq, std::int64_t lk) {
  if (t.numel() == 0) return BiasView{};
  const at::Tensor e = t.expand({b, h, lq, lk});
  return BiasView{e.data_ptr(), e.stride(0), e.stride(1), e.stride(2), e.stride(3)};
}

BiasAttentionShape ShapeOf(const at::Tensor& q, const at::Tensor& k, double scale, double dropout, std::uint64_t seed) {
  BiasAttentionShape s;
  s.batch = q.size(0);
  s.q_len = q.size(1);
  s.heads = q.size(2);
  s.head_dim = q.size(3);
  s.k_len = k.size(1);
  s.scale = static_cast<float>(scale);
  s.dropout = static_cast<float>(dropout);
  s.seed = seed;
  return s;
}

// Gradients for q, k, v.  Inputs that are column blocks of one [B, L, n * H * D] tensor (a
// fused projection's output, ops::Linears) get the same column blocks of one new tensor, so that
// the projection's backward takes them as one matrix; the others new [B, L, H, D] tensors.
std::array<at::Tensor, 3> GradsLike(const std::array<at::Tensor, 3>& in) {
  std::array<at::Tensor, 3> out;
  for (int i = 0; i < 3; ++i) {
    if (out[i].defined()) continue;
    const at::Tensor& t = in[i];
    std::vector<int> group = {i};
    for (int j = i + 1; j < 3; ++j) {
      if (!out[j].defined() && in[j].storage().is_alias_of(t.storage()) && in[j].sizes().equals(t.sizes()) &&
          in[j].strides().equals(t.strides())) {
        group.push_back(j);
      }
    }
    const std::int64_t n = static_cast<std::int64_t>(group.size()), hd = t.size(2) * t.size(3);
    bool blocks = n > 1 && t.stride(3) == 1 && t.stride(2) == t.size(3) && t.stride(1) == n * hd &&
                  t.stride(0) == t.size(1) * t.stride(1);
    std::int64_t lo = t.storage_offset();
    for (int j : group) lo = std::min(lo, in[j].storage_offset());
    std::vector<bool> seen(n, false);
    for (int j : group) {
      const std::int64_t rel = in[j].storage_offset() - lo;
      if (rel % hd != 0 || rel / hd >= n || seen[rel / hd]) {
        blocks = false;
        break;
      }
      seen[rel / hd] = true;
    }
    if (!blocks) {
      out[i] = at::empty(t.sizes(), t.options());
      continue;
    }
    const at::Tensor buffer = at::empty({t.size(0), t.size(1), n * hd}, t.options());
    for (int j : group) out[j] = buffer.narrow(2, in[j].storage_offset() - lo, hd).view(t.sizes());
  }
  return out;
}

void Check(cudaError_t e, const char* what) {
  TORCH_CHECK(e == cudaSuccess, "BiasAttentionCuda: ", what, " failed: ", cudaGetErrorString(e));
}

class BiasAttentionFunction : public torch::autograd::Function<BiasAttentionFunction> {
 public:
  // mask travels in ctx (it takes no gradient); pos is an input so that it gets one.  Either
  // may be empty (none).
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& pos, const at::Tensor& mask, double scale, double dropout) {
    const std::uint64_t seed = dropout > 0 ? NextDropoutSeed() : 0;
    const BiasAttentionShape s = ShapeOf(q, k, scale, dropout, seed);
    at::Tensor out = at::empty({s.batch, s.q_len, s.heads, s.head_dim}, q.options());
    at::Tensor lse = at::empty({s.batch, s.heads, s.q_len}, q.options().dtype(at::kFloat));
    Check(LaunchBiasAttentionForward(*DtypeOf(q.scalar_type()), s, View(q), View(k), View(v),
                                     Bias(pos, s.batch, s.heads, s.q_len, s.k_len),
                                     Bias(mask, s.batch, s.heads, s.q_len, s.k_len), Out(out), lse.data_ptr<float>(),
                                     at::cuda::getCurrentCUDAStream()),
          "forward kernel");
    ctx->save_for_backward({q, k, v, pos, out, lse});
    ctx->saved_data["mask"] = mask;
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["dropout"] = dropout;
    ctx->saved_data["seed"] = static_cast<std::int64_t>(seed);
    return out.view({s.batch, s.q_len, s.heads * s.head_dim});
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &pos = saved[3], &out = saved[4], &lse = saved[5];
    const at::Tensor mask = ctx->saved_data["mask"].toTensor();
    const BiasAttentionShape s =
        ShapeOf(q, k, ctx->saved_data["scale"].toDouble(), ctx->saved_data["dropout"].toDouble(),
                static_cast<std::uint64_t>(ctx->saved_data["seed"].toInt()));
    if (!grad_outputs[0].defined())
      return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    const c10::cuda::CUDAGuard guard(q.device());
    const at::Tensor dout =
        grad_outputs[0].to(q.scalar_type()).contiguous().view({s.batch, s.q_len, s.heads, s.head_dim});
    auto [dq, dk, dv] = GradsLike({q, k, v});
    at::Tensor delta = at::empty({s.batch, s.heads, s.q_len}, q.options().dtype(at::kFloat));
    const bool pos_grad = pos.numel() > 0 && ctx->needs_input_grad(3);
    at::Tensor dpos = pos_grad ? at::zeros({s.heads, s.q_len, s.k_len}, q.options().dtype(at::kFloat)) : at::Tensor();
    Check(LaunchBiasAttentionBackward(*DtypeOf(q.scalar_type()), s, View(q), View(k), View(v),
                                      Bias(pos, s.batch, s.heads, s.q_len, s.k_len),
                                      Bias(mask, s.batch, s.heads, s.q_len, s.k_len), View(out), View(dout),
                                      lse.data_ptr<float>(), delta.data_ptr<float>(), Out(dq), Out(dk), Out(dv),
                                      pos_grad ? dpos.data_ptr<float>() : nullptr, at::cuda::getCurrentCUDAStream()),
          "backward kernels");
    at::Tensor dpos_out = pos_grad ? dpos.view(pos.sizes()).to(pos.scalar_type()) : at::Tensor();
    return {dq, dk, dv, dpos_out, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

bool Aligned16(const at::Tensor& t) {
  if (reinterpret_cast<std::uintptr_t>(t.data_ptr()) % 16 != 0) return false;
  for (int d = 0; d < 3; ++d) {
    if (t.stride(d) % 8 != 0) return false;
  }
  return t.stride(3) == 1;
}

}  // namespace

at::Tensor BiasAttentionCuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& pos,
                             const at::Tensor& mask, double scale, double dropout, bool training) {
  if (!q.is_cuda() || !DtypeOf(q.scalar_type()) || q.dim() != 4 || k.dim() != 4 || v.dim() != 4) return at::Tensor();
  if (k.scalar_type() != q.scalar_type() || v.scalar_type() != q.scalar_type()) return at::Tensor();
  if (k.device() != q.device() || v.device() != q.device()) return at::Tensor();
  const std::int64_t b = q.size(0), lq = q.size(1), h = q.size(2), d = q.size(3), lk = k.size(1);
  if (k.size(0) != b || k.size(2) != h || k.size(3) != d || !v.sizes().equals(k.sizes())) return at::Tensor();
  if (!Aligned16(q) || !Aligned16(k) || !Aligned16(v)) return at::Tensor();
  if (pos.defined() &&
      (pos.scalar_type() != q.scalar_type() || pos.device() != q.device() || !pos.sizes().equals({1, h, lq, lk}))) {
    return at::Tensor();
  }
  if (mask.defined()) {
    if (mask.scalar_type() != q.scalar_type() || mask.device() != q.device() || mask.dim() > 4) return at::Tensor();
    const std::vector<std::int64_t> full = {b, h, lq, lk};
    for (std::int64_t i = 0; i < mask.dim(); ++i) {
      const std::int64_t want = full[4 - mask.dim() + i];
      if (mask.size(i) != want && mask.size(i) != 1) return at::Tensor();
    }
  }
  BiasAttentionShape shape;
  shape.batch = b;
  shape.heads = h;
  shape.q_len = lq;
  shape.k_len = lk;
  shape.head_dim = d;
  shape.dropout = training ? static_cast<float>(dropout) : 0.f;
  if (!BiasAttentionSupports(shape)) return at::Tensor();
  const c10::cuda::CUDAGuard guard(q.device());
  return BiasAttentionFunction::apply(q, k, v, OrEmpty(pos, q), OrEmpty(mask, q).detach(), scale,
                                      training ? dropout : 0.0);
}

at::Tensor BiasAttentionKeepMask(std::int64_t batch, std::int64_t heads, std::int64_t q_len, std::int64_t k_len,
                                 double dropout, std::uint64_t seed, const at::Device& device) {
  BiasAttentionShape s;
  s.batch = batch;
  s.heads = heads;
  s.q_len = q_len;
  s.k_len = k_len;
  s.head_dim = 64;
  s.dropout = static_cast<float>(dropout);
  s.seed = seed;
  TORCH_CHECK(BiasAttentionSupports(s), "BiasAttentionKeepMask: unsupported sizes or dropout ", dropout);
  const c10::cuda::CUDAGuard guard(device);
  at::Tensor keep = at::empty({batch, heads, q_len, k_len}, at::TensorOptions().dtype(at::kByte).device(device));
  Check(LaunchBiasAttentionDropoutMask(s, keep.data_ptr<std::uint8_t>(), at::cuda::getCurrentCUDAStream()),
        "dropout mask kernel");
  return keep.to(at::kBool);
}

void SetBiasAttentionSeedForTesting(std::uint64_t seed) { SetNextDropoutSeedForTesting(seed); }

}  // namespace zt::ops::cuda
