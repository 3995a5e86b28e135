// Attention with an additive pair bias and a key padding mask (Graphormer, Uni-Mol, Evoformer):
//
//   out[b,h,i,:] = sum_j softmax_j(scale * q[b,h,i]·k[b,h,j] + bias[b,h,i,j]) * v[b,h,j,:]
//
// with the softmax taken only over the keys j where key_mask[b,j] is true (real atoms).  A row
// whose keys are all masked outputs 0 (never NaN), and its gradients are 0.
//
//   q, k, v:   [B, H, N, D], one dtype: float32, bfloat16 or float16 (the reference also takes
//              float64, for gradient checks)
//   bias:      [B, H, N, N], q's dtype (a learned pair representation: it gets a gradient)
//   key_mask:  [B, N] bool, true = a real key
//   scale:     usually 1/sqrt(D)
//
// The softmax and both products run in float32 (float64 for float64 inputs); the output has the
// inputs' dtype.
//
//   at::Tensor out = zt::ops::PairBiasAttention(q, k, v, bias, key_mask, 1.0 / std::sqrt(d));
//
// PairBiasAttention is what models call.  On CUDA tensors it runs the fused kernel of
// ops/cuda/pair_bias_attention_autograd.h (which never holds the [B,H,N,N] float32
// probabilities) when that library is linked into the binary and registered itself, D <= 128
// and the dtype is not float64; otherwise, and when the environment variable
// ZT_PAIR_BIAS_ATTENTION=reference is set (read once), it runs PairBiasAttentionReference.
// A binary gets the fused kernel by depending on //ops/cuda:pair_bias_attention_autograd (under
// --config=cuda); nothing else changes.
#ifndef ZEROTRAIN_OPS_PAIR_BIAS_ATTENTION_H_
#define ZEROTRAIN_OPS_PAIR_BIAS_ATTENTION_H_

#include <ATen/ATen.h>

#include <cstdint>

namespace zt::ops {

// The largest head dimension the fused CUDA kernel takes; larger ones run the reference.
inline constexpr std::int64_t kPairBiasAttentionMaxFusedHeadDim = 128;

// Plain differentiable ATen ops on any device (autograd gives the gradients of q, k, v and
// bias).  Materialises [B,H,N,N] float32 scores and probabilities.
at::Tensor PairBiasAttentionReference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                      const at::Tensor& bias, const at::Tensor& key_mask, double scale);

// The entry point: the fused CUDA kernel where available (see above), else the reference.
at::Tensor PairBiasAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                             const at::Tensor& key_mask, double scale);

// Throws c10::Error naming the offending argument and its shape or dtype unless the arguments
// are as described above.  `op` prefixes the message.  Both entry points call it.
void CheckPairBiasAttentionArgs(const char* op, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const at::Tensor& bias, const at::Tensor& key_mask, double scale);

// The registration hook that keeps this library free of CUDA: the CUDA library registers its
// fused implementation from a static initializer.  The function receives validated arguments.
using PairBiasAttentionFn = at::Tensor (*)(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                           const at::Tensor& bias, const at::Tensor& key_mask, double scale);
void RegisterCudaPairBiasAttention(PairBiasAttentionFn fn);

// Whether a fused CUDA implementation is registered (ZT_PAIR_BIAS_ATTENTION aside).
bool HasCudaPairBiasAttention();

}  // namespace zt::ops

#endif  // ZEROTRAIN_OPS_PAIR_BIAS_ATTENTION_H_
