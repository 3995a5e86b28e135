// The fused CUDA pair-bias attention on at::Tensor, with autograd (ops/cuda/pair_bias_attention.h
// has the kernels, ops/pair_bias_attention.h the semantics and the reference).
//
// Linking //ops/cuda:pair_bias_attention_autograd registers PairBiasAttentionCuda with
// zt::ops::PairBiasAttention (a static initializer; the target is alwayslink), so models call
// zt::ops::PairBiasAttention and get it on CUDA tensors.  Calling it directly is for tests and
// benchmarks.
#ifndef ZEROTRAIN_OPS_CUDA_PAIR_BIAS_ATTENTION_AUTOGRAD_H_
#define ZEROTRAIN_OPS_CUDA_PAIR_BIAS_ATTENTION_AUTOGRAD_H_

#include <ATen/ATen.h>

namespace zt::ops::cuda {

// CUDA tensors of one device; q, k, v, bias float32, bfloat16 or float16; D <= 128 (throws
// c10::Error otherwise).  Differentiable in q, k, v and bias.  Runs on the current CUDA stream.
at::Tensor PairBiasAttentionCuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                                 const at::Tensor& key_mask, double scale);

}  // namespace zt::ops::cuda

#endif  // ZEROTRAIN_OPS_CUDA_PAIR_BIAS_ATTENTION_AUTOGRAD_H_
