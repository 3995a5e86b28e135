// T5-style attention on CUDA (ops/cuda/bias_attention.h) on at::Tensor, with autograd:
//
//   out = dropout(softmax(scale * q k^T + pos + mask)) v,   returned as [B, Lq, H*D]
//
// q [B, Lq, H, D], k and v [B, Lk, H, D]: bf16 or fp16 CUDA tensors of one device whose last
// dimension is contiguous, typically the per-head views of [B, L, H*D] projections (no transpose
// is made).  pos [1, H, Lq, Lk] trains (its gradient is summed over the batch); mask, any shape
// that broadcasts to [B, H, Lq, Lk], does not.  Either may be undefined; both have q's dtype.
// Dropout (when training) draws its seed from the default CPU generator, so at::manual_seed
// fixes the pattern.  Returns an undefined tensor when the kernels do not take the inputs (head
// size other than 64 or 128, other dtypes, misaligned views): the caller runs its reference.
#ifndef ZEROTRAIN_OPS_CUDA_BIAS_ATTENTION_AUTOGRAD_H_
#define ZEROTRAIN_OPS_CUDA_BIAS_ATTENTION_AUTOGRAD_H_

#include <ATen/ATen.h>

namespace zt::ops::cuda {

at::Tensor BiasAttentionCuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& pos,
                             const at::Tensor& mask, double scale, double dropout, bool training);

// The dropout pattern a call with this seed and shape uses: [B, H, Lq, Lk] bool (true = kept).
// For tests.
at::Tensor BiasAttentionKeepMask(std::int64_t batch, std::int64_t heads, std::int64_t q_len, std::int64_t k_len,
                                 double dropout, std::uint64_t seed, const at::Device& device);

// The seed the next training call on this thread will use, and the call after it draws anew:
// tests set it to replay a pattern.  0: draw from the CPU generator (the default).
void SetBiasAttentionSeedForTesting(std::uint64_t seed);

}  // namespace zt::ops::cuda

#endif  // ZEROTRAIN_OPS_CUDA_BIAS_ATTENTION_AUTOGRAD_H_
