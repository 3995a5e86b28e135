// CUDA kernels of T5-style attention: softmax(scale * q k^T + pos + mask) v with dropout on the
// probabilities, flash-attention style on tensor cores (bf16/fp16 mma.sync, float32
// accumulation in registers). Raw device pointers, no LibTorch;
// ops/cuda/bias_attention_autograd.h wraps them for at::Tensor and autograd.
//
// q, out, dout, dq [B, Lq, H, D] and k, v, dk, dv [B, Lk, H, D] are addressed through strides
// (a [B, L, H*D] projection's output viewed per head needs no transpose); D is contiguous.
// `pos` is an additive bias shared by the batch, element (h, i, j) at h*sh + i*si + j (the
// T5 relative-position bias, which trains); `mask` an additive bias that does not train, any
// broadcast of [B, H, Lq, Lk] given by its four strides (a padding mask [B,1,1,Lk], a causal
// mask [1,1,Lq,Lk]).  Either may be null.  Every sum, the softmax and the logsumexp are float32;
// the probabilities meet v rounded to the 16-bit type, as HF's T5Attention rounds them.
//
// The forward makes one pass over the keys per tile of 64 query rows with a running row
// maximum (online softmax) and keeps the row logsumexp for the backward (lse [B,H,Lq] float32,
// in base 2: log2 of the row's sum of exp, +inf for a row with no key, whose p are all 0).  The backward recomputes the
// probabilities: one kernel per query tile writes dq and adds dS (summed over the batch) into dpos [H, Lq, Lk] float32
// with atomics, another per key tile writes dk and dv.  No [Lq, Lk] matrix is ever stored.  Dropout keeps element
// (b,h,i,j) when a 16-bit hash of (seed, b, h, i, j) clears p rounded to 1/65536, the same draw in the forward and the
// backward; kept probabilities are scaled by 1 / (1 - p).
//
// D is 64 or 128; pointers and strides must allow 16-byte loads (multiples of 8 elements).
// Asynchronous on `stream`; unsupported sizes return cudaErrorInvalidValue.
#ifndef ZEROTRAIN_OPS_CUDA_BIAS_ATTENTION_H_
#define ZEROTRAIN_OPS_CUDA_BIAS_ATTENTION_H_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "ops/cuda/element_type.h"

namespace zt::ops::cuda {

// A [B, L, H, D] operand: element (b, l, h, d) at ptr + b*sb + l*sl + h*sh + d (elements).
struct HeadsView {
  const void* ptr = nullptr;
  std::int64_t sb = 0, sl = 0, sh = 0;
};
struct HeadsOut {
  void* ptr = nullptr;
  std::int64_t sb = 0, sl = 0, sh = 0;
};
// An additive bias over [B, H, Lq, Lk]: element at ptr + b*sb + h*sh + i*si + j*sj (elements of
// the attention dtype); null ptr: none.
struct BiasView {
  const void* ptr = nullptr;
  std::int64_t sb = 0, sh = 0, si = 0, sj = 0;
};

struct BiasAttentionShape {
  std::int64_t batch = 0, heads = 0, q_len = 0, k_len = 0, head_dim = 0;
  float scale = 1.f;       // T5: 1 (no 1/sqrt(D))
  float dropout = 0.f;     // probability of dropping, in [0, 1)
  std::uint64_t seed = 0;  // the dropout pattern's
};

bool BiasAttentionSupports(const BiasAttentionShape& shape);

// lse: [B, H, Lq] float32, the rows' log2-sum-exp2 (the backward's input; +inf: no key).
cudaError_t LaunchBiasAttentionForward(ElementType dtype, const BiasAttentionShape& shape, HeadsView q, HeadsView k,
                                       HeadsView v, BiasView pos, BiasView mask, HeadsOut out, float* lse,
                                       cudaStream_t stream);

// delta: [B, H, Lq] float32 scratch.  dpos: [H, Lq, Lk] float32 the gradients are added to
// (the caller zeroes it), or null when pos needs none.
cudaError_t LaunchBiasAttentionBackward(ElementType dtype, const BiasAttentionShape& shape, HeadsView q, HeadsView k,
                                        HeadsView v, BiasView pos, BiasView mask, HeadsView out, HeadsView dout,
                                        const float* lse, float* delta, HeadsOut dq, HeadsOut dk, HeadsOut dv,
                                        float* dpos, cudaStream_t stream);

// The dropout pattern as the kernels draw it, for tests: keep [B, H, Lq, Lk] (1 kept, 0 dropped).
cudaError_t LaunchBiasAttentionDropoutMask(const BiasAttentionShape& shape, std::uint8_t* keep, cudaStream_t stream);

}  // namespace zt::ops::cuda

#endif  // ZEROTRAIN_OPS_CUDA_BIAS_ATTENTION_H_
