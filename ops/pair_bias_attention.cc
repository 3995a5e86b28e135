#include "ops/pair_bias_attention.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>

namespace zt::ops {
namespace {

std::atomic<PairBiasAttentionFn>& CudaImpl() {
  static std::atomic<PairBiasAttentionFn> impl{nullptr};
  return impl;
}

// ZT_PAIR_BIAS_ATTENTION=reference forces the reference; read once.
bool ForceReference() {
  static const bool force = [] {
    const char* env = std::getenv("ZT_PAIR_BIAS_ATTENTION");
    const std::string value = env == nullptr ? "" : env;
    if (value == "reference") return true;
    if (!value.empty() && value != "fused") {
      TORCH_WARN("ZT_PAIR_BIAS_ATTENTION=", value, " is neither 'reference' nor 'fused'; using the default (fused)");
    }
    return false;
  }();
  return force;
}

bool IsAttentionDtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kBFloat16 || t == at::kHalf || t == at::kDouble;
}

}  // namespace

void CheckPairBiasAttentionArgs(const char* op, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const at::Tensor& bias, const at::Tensor& key_mask, double scale) {
  TORCH_CHECK(q.defined() && k.defined() && v.defined() && bias.defined() && key_mask.defined(), op,
              ": every argument must be a defined tensor");
  TORCH_CHECK(q.dim() == 4, op, ": q must be [B, H, N, D], got shape ", q.sizes());
  const std::int64_t b = q.size(0), h = q.size(1), n = q.size(2), d = q.size(3);
  TORCH_CHECK(d > 0, op, ": q must have a head dimension D > 0, got shape ", q.sizes());
  TORCH_CHECK(k.sizes() == q.sizes(), op, ": k must have q's shape [B, H, N, D] = ", q.sizes(), ", got shape ",
              k.sizes());
  TORCH_CHECK(v.sizes() == q.sizes(), op, ": v must have q's shape [B, H, N, D] = ", q.sizes(), ", got shape ",
              v.sizes());
  TORCH_CHECK(bias.dim() == 4 && bias.size(0) == b && bias.size(1) == h && bias.size(2) == n && bias.size(3) == n, op,
              ": bias must be [B, H, N, N] = [", b, ", ", h, ", ", n, ", ", n, "], got shape ", bias.sizes());
  TORCH_CHECK(key_mask.dim() == 2 && key_mask.size(0) == b && key_mask.size(1) == n, op,
              ": key_mask must be [B, N] = [", b, ", ", n, "], got shape ", key_mask.sizes());
  TORCH_CHECK(IsAttentionDtype(q.scalar_type()), op,
              ": q must be float32, bfloat16 or float16 (float64: reference only), got ", q.scalar_type());
  TORCH_CHECK(k.scalar_type() == q.scalar_type(), op, ": k must have q's dtype ", q.scalar_type(), ", got ",
              k.scalar_type(), " (shape ", k.sizes(), ")");
  TORCH_CHECK(v.scalar_type() == q.scalar_type(), op, ": v must have q's dtype ", q.scalar_type(), ", got ",
              v.scalar_type(), " (shape ", v.sizes(), ")");
  TORCH_CHECK(bias.scalar_type() == q.scalar_type(), op, ": bias must have q's dtype ", q.scalar_type(), ", got ",
              bias.scalar_type(), " (shape ", bias.sizes(), ")");
  TORCH_CHECK(key_mask.scalar_type() == at::kBool, op, ": key_mask must be bool (true = real key), got ",
              key_mask.scalar_type(), " (shape ", key_mask.sizes(), ")");
  TORCH_CHECK(k.device() == q.device() && v.device() == q.device() && bias.device() == q.device() &&
                  key_mask.device() == q.device(),
              op, ": q, k, v, bias and key_mask must be on one device; q is on ", q.device(), ", k on ", k.device(),
              ", v on ", v.device(), ", bias on ", bias.device(), ", key_mask on ", key_mask.device());
  TORCH_CHECK(std::isfinite(scale), op, ": scale must be finite, got ", scale);
}

at::Tensor PairBiasAttentionReference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                      const at::Tensor& bias, const at::Tensor& key_mask, double scale) {
  CheckPairBiasAttentionArgs("PairBiasAttentionReference", q, k, v, bias, key_mask, scale);
  const at::ScalarType compute = q.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const std::int64_t b = q.size(0), n = q.size(2);
  if (n == 0) return at::zeros_like(q);
  const at::Tensor qc = q.to(compute), kc = k.to(compute), vc = v.to(compute), biasc = bias.to(compute);

  at::Tensor scores = at::matmul(qc, kc.transpose(-2, -1)).mul(scale).add(biasc);  // [B,H,N,N]
  const at::Tensor padded = key_mask.logical_not().view({b, 1, 1, n});
  scores = scores.masked_fill(padded, -std::numeric_limits<double>::infinity());
  // A softmax that gives 0 (not NaN) where every key is masked: the row maximum is 0 there, so
  // every exp is exp(-inf) = 0 and the sum, replaced by 1, divides nothing.
  at::Tensor row_max = std::get<0>(scores.max(-1, /*keepdim=*/true)).detach();
  row_max = row_max.masked_fill(row_max == -std::numeric_limits<double>::infinity(), 0.0);
  const at::Tensor e = at::exp(scores - row_max);
  const at::Tensor sum = e.sum(-1, /*keepdim=*/true);
  const at::Tensor probs = e / sum.masked_fill(sum == 0, 1.0);
  return at::matmul(probs, vc).to(q.scalar_type());
}

at::Tensor PairBiasAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                             const at::Tensor& key_mask, double scale) {
  CheckPairBiasAttentionArgs("PairBiasAttention", q, k, v, bias, key_mask, scale);
  const PairBiasAttentionFn fused = CudaImpl().load(std::memory_order_acquire);
  if (fused != nullptr && q.is_cuda() && q.scalar_type() != at::kDouble &&
      q.size(3) <= kPairBiasAttentionMaxFusedHeadDim && !ForceReference()) {
    return fused(q, k, v, bias, key_mask, scale);
  }
  return PairBiasAttentionReference(q, k, v, bias, key_mask, scale);
}

void RegisterCudaPairBiasAttention(PairBiasAttentionFn fn) { CudaImpl().store(fn, std::memory_order_release); }

bool HasCudaPairBiasAttention() { return CudaImpl().load(std::memory_order_acquire) != nullptr; }

}  // namespace zt::ops
