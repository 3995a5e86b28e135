#include "nlp/t5/t5_attention.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "core/profiler/module_scope.h"
#include "core/util/logging.h"
#ifdef ZT_CUDA
#include "ops/cuda/bias_attention_autograd.h"
#endif

namespace zt::nlp::t5 {

namespace {

// How attention runs on CUDA (t5_attention.h), from ZT_T5_ATTENTION; read once.
enum class AttentionPath { kFlash, kFused16, kSdpa, kReference };
AttentionPath CudaAttentionPath() {
  static const AttentionPath path = [] {
    const char* v = std::getenv("ZT_T5_ATTENTION");
    const std::string s = v == nullptr ? "" : v;
    if (s == "fused16") return AttentionPath::kFused16;
    if (s == "sdpa") return AttentionPath::kSdpa;
    if (s == "reference") return AttentionPath::kReference;
    if (!s.empty() && s != "flash") {
      ZT_LOG(WARNING) << "ZT_T5_ATTENTION=" << s << " is none of flash, fused16, sdpa, reference; using flash";
    }
    return AttentionPath::kFlash;
  }();
  return path;
}

}  // namespace

bool FlashAttention(const at::Tensor& x, const T5Config& c) {
#ifdef ZT_CUDA
  return x.is_cuda() && CudaAttentionPath() == AttentionPath::kFlash &&
         (x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kHalf) && (c.d_kv == 64 || c.d_kv == 128);
#else
  (void)x;
  (void)c;
  return false;
#endif
}

AttnBias AttnBias::Make(at::Tensor pos, at::Tensor mask, const at::Tensor& x, const T5Config& c) {
  AttnBias b{std::move(pos), std::move(mask), at::Tensor()};
  if (!FlashAttention(x, c)) {
    b.combined = b.Sum();
  } else if (b.pos.defined()) {
    b.pos = b.pos.contiguous();  // [1, H, q, k] rows the kernels read with 16-bit strides of 1
  }
  return b;
}

at::Tensor AttnBias::Sum() const {
  if (!pos.defined()) return mask;
  return mask.defined() ? pos + mask : pos;
}

Attention::Attention(const T5Config& c, bool relative_bias, bool bidirectional) : c_(c), bidirectional_(bidirectional) {
  const double f = c.initializer_factor;
  const std::int64_t inner = c.inner_dim();
  q = register_module("q", std::make_shared<Weight>(inner, c.d_model, f * std::pow(c.d_model * c.d_kv, -0.5)));
  k = register_module("k", std::make_shared<Weight>(inner, c.d_model, f * std::pow(c.d_model, -0.5)));
  v = register_module("v", std::make_shared<Weight>(inner, c.d_model, f * std::pow(c.d_model, -0.5)));
  o = register_module("o", std::make_shared<Weight>(c.d_model, inner, f * std::pow(inner, -0.5)));
  if (relative_bias) {
    relative_attention_bias = register_module(
        "relative_attention_bias",
        std::make_shared<Weight>(c.relative_attention_num_buckets, c.num_heads, f * std::pow(c.d_model, -0.5)));
  }
}

at::Tensor Attention::forward(const at::Tensor& x, const at::Tensor& kv, const AttnBias& bias, bool training) const {
  ZT_PROFILE_MODULE(this);
  // One product for the projections of one input (q, k, v of x in self-attention; k, v of
  // the encoder output in cross-attention): the weights lie back to back in the engine's
  // flat buffer, and the kernels' gradients come back as one matrix (ops/linear.h).
  at::Tensor qp, kp, vp;
  if (x.is_same(kv)) {
    const std::vector<at::Tensor> qkv = ops::Linears(x, {q->weight, k->weight, v->weight});
    qp = qkv[0], kp = qkv[1], vp = qkv[2];
  } else {
    qp = q->Linear(x);
    const std::vector<at::Tensor> kvp = ops::Linears(kv, {k->weight, v->weight});
    kp = kvp[0], vp = kvp[1];
  }
#ifdef ZT_CUDA
  if (FlashAttention(qp, c_)) {
    // Per-head views of the projections [B, L, H, d_kv]: the kernels read them in place and
    // return [B, q, H * d_kv], so no transpose is copied either way.
    auto per_head = [&](const at::Tensor& t) { return t.view({t.size(0), t.size(1), c_.num_heads, c_.d_kv}); };
    const at::Tensor out = ops::cuda::BiasAttentionCuda(per_head(qp), per_head(kp), per_head(vp), bias.pos, bias.mask,
                                                        1.0, c_.dropout_rate, training);
    if (out.defined()) return o->Linear(out);
  }
#endif
  return Attend(Heads(qp), Heads(kp), Heads(vp), bias.Combined(), training);
}

// Attention over heads already projected, then the output projection: [B, q, D].  HF's
// computation step by step; on CUDA the 16-bit softmax runs as one kernel that computes in
// fp32 and rounds once (HF's result, without its fp32 copies of the scores and of their
// gradient).  ZT_T5_ATTENTION=sdpa takes LibTorch's fused scaled_dot_product_attention with
// the bias as its additive mask instead (the memory-efficient kernel: tiled, no [B, H, q, k]
// scores kept), which was slower here on an H200 because of the bias's gradient (BENCHMARKS.md);
// ZT_T5_ATTENTION=reference keeps HF's fp32 copies (comparisons).
at::Tensor Attention::Attend(const at::Tensor& qh, const at::Tensor& kh, const at::Tensor& vh, const at::Tensor& bias,
                             bool training) const {
  const AttentionPath path = qh.is_cuda() ? CudaAttentionPath() : AttentionPath::kReference;
  if (path == AttentionPath::kSdpa) {
    const at::Tensor mask = bias.scalar_type() == qh.scalar_type() ? bias : bias.to(qh.scalar_type());
    const at::Tensor out = at::scaled_dot_product_attention(qh, kh, vh, mask, training ? c_.dropout_rate : 0.0,
                                                            /*is_causal=*/false, /*scale=*/1.0);
    return o->Linear(out.transpose(1, 2).contiguous().view({qh.size(0), -1, c_.inner_dim()}));
  }
  at::Tensor scores = at::matmul(qh, kh.transpose(3, 2));  // T5: no 1/sqrt(d_kv)
  scores = scores + bias;
  // Generation steps, and calls the flash kernels refuse, take the one-kernel 16-bit softmax.
  const bool fused16 = path == AttentionPath::kFused16 || path == AttentionPath::kFlash;
  at::Tensor w = fused16 && scores.scalar_type() != at::kFloat
                     ? at::softmax(scores, -1)
                     : at::softmax(scores.to(at::kFloat), -1).to(scores.scalar_type());
  w = at::dropout(w, c_.dropout_rate, training);
  const at::Tensor out = at::matmul(w, vh).transpose(1, 2).contiguous().view({qh.size(0), -1, c_.inner_dim()});
  return o->Linear(out);
}

at::Tensor Attention::PositionBias(std::int64_t q_len, std::int64_t k_len, const at::Device& device,
                                   std::int64_t q_from) const {
  const auto opts = at::TensorOptions().dtype(at::kLong).device(device);
  const at::Tensor relative = at::arange(k_len, opts).unsqueeze(0) - (at::arange(q_len, opts) + q_from).unsqueeze(1);
  const at::Tensor buckets = Bucket(relative);
  const at::Tensor values = at::embedding(relative_attention_bias->weight, buckets);  // [q, k, H]
  return values.permute({2, 0, 1}).unsqueeze(0);
}

// HF's _relative_position_bucket: exact buckets for small distances, logarithmic ones up to
// max_distance, the last bucket beyond; the sign gets half the buckets when bidirectional.
at::Tensor Attention::Bucket(at::Tensor relative) const {
  std::int64_t buckets = c_.relative_attention_num_buckets;
  at::Tensor result = at::zeros_like(relative);
  if (bidirectional_) {
    buckets /= 2;
    result = result + (relative > 0).to(at::kLong) * buckets;
    relative = relative.abs();
  } else {
    relative = -at::clamp_max(relative, 0);
  }
  const std::int64_t max_exact = buckets / 2;
  const at::Tensor is_small = relative < max_exact;
  at::Tensor large = max_exact + (at::log(relative.to(at::kFloat) / static_cast<double>(max_exact)) /
                                  std::log(static_cast<double>(c_.relative_attention_max_distance) / max_exact) *
                                  static_cast<double>(buckets - max_exact))
                                     .to(at::kLong);
  large = at::clamp_max(large, buckets - 1);
  return result + at::where(is_small, relative, large);
}

}  // namespace zt::nlp::t5
