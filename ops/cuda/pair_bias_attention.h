// CUDA kernels of ops/pair_bias_attention.h: fused attention with an additive pair bias and a
// key padding mask, flash-attention style.  Raw device pointers, no LibTorch;
// ops/cuda/pair_bias_attention_autograd.h wraps them for at::Tensor and autograd.
//
// Every tensor is contiguous: q, k, v, out, dout, dq, dk, dv [B,H,N,D]; bias, dbias [B,H,N,N];
// key_mask [B,N] (bool, true = real key); lse and delta [B,H,N] float32.  T is float,
// __nv_bfloat16 or __half as `dtype` says; every sum and the softmax run in float32.
//
// Forward: one block per (b, h, tile of query rows) loops over key tiles with an online softmax;
// it writes out and the row logsumexp (lse; -inf where every key is padded, whose output row
// is 0).  Backward recomputes the probabilities tile by tile from q, k, bias and lse: a pass over
// query tiles writes dq and dbias (dS = P * (dP - delta), delta_i = dout_i·out_i), a pass over
// key tiles writes dk and dv.  No [B,H,N,N] float32 tensor is ever allocated; dbias is written
// directly in the bias dtype.  Deterministic (no atomics).  1 <= D <= 128.
//
// Asynchronous on `stream`; returns cudaErrorInvalidValue for unsupported sizes.
#ifndef ZEROTRAIN_OPS_CUDA_PAIR_BIAS_ATTENTION_H_
#define ZEROTRAIN_OPS_CUDA_PAIR_BIAS_ATTENTION_H_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "ops/cuda/element_type.h"

namespace zt::ops::cuda {

inline constexpr std::int64_t kPairBiasAttentionMaxHeadDim = 128;

struct PairBiasAttentionSizes {
  std::int64_t batch = 0;     // B
  std::int64_t heads = 0;     // H
  std::int64_t n = 0;         // N, query and key count
  std::int64_t head_dim = 0;  // D, 1..kPairBiasAttentionMaxHeadDim
};

// Whether the kernels take these sizes (D in range, the grid fits).
bool PairBiasAttentionSupports(const PairBiasAttentionSizes& sizes);

cudaError_t LaunchPairBiasAttentionForward(ElementType dtype, const PairBiasAttentionSizes& sizes, const void* q,
                                           const void* k, const void* v, const void* bias, const bool* key_mask,
                                           float scale, void* out, float* lse, cudaStream_t stream);

// `delta` is [B,H,N] float32 scratch the call fills.
cudaError_t LaunchPairBiasAttentionBackward(ElementType dtype, const PairBiasAttentionSizes& sizes, const void* q,
                                            const void* k, const void* v, const void* bias, const bool* key_mask,
                                            float scale, const void* out, const void* dout, const float* lse,
                                            float* delta, void* dq, void* dk, void* dv, void* dbias,
                                            cudaStream_t stream);

}  // namespace zt::ops::cuda

#endif  // ZEROTRAIN_OPS_CUDA_PAIR_BIAS_ATTENTION_H_
