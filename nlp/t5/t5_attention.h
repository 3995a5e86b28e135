// T5's attention as HF's T5Attention computes it, and the pieces every block shares: the
// one-parameter module (Weight) and the additive bias a stack reuses (AttnBias).  Private to
// nlp/t5 (t5_model.cc builds its blocks from them).
//
// On CUDA, ZT_T5_ATTENTION picks the path (read once): flash (the default: the tensor-core
// kernels of ops/cuda/bias_attention, where they take the inputs), fused16 (step by step, the
// 16-bit softmax as one kernel), sdpa (LibTorch's fused SDPA with the bias as its mask) or
// reference (HF's fp32 copies, for comparisons).  Off CUDA the reference runs.
#ifndef ZEROTRAIN_NLP_T5_T5_ATTENTION_H_
#define ZEROTRAIN_NLP_T5_T5_ATTENTION_H_

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <memory>

#include "nlp/t5/t5_config.h"
#include "ops/linear.h"

namespace zt::nlp::t5 {

// A module holding one parameter called "weight" (HF's nn.Linear without bias, nn.Embedding).
class Weight : public torch::nn::Module {
 public:
  Weight(std::int64_t rows, std::int64_t cols, double std) {
    weight = register_parameter("weight", at::empty({rows, cols}).normal_(0.0, std));
  }
  at::Tensor Linear(const at::Tensor& x) const { return ops::Linear(x, weight); }  // one autograd node
  at::Tensor weight;
};

// Whether attention over activations like x goes to the flash kernels (16-bit CUDA, a head size
// they take); they may still refuse a call (misaligned views), which then runs Attend.
bool FlashAttention(const at::Tensor& x, const T5Config& c);

// The additive attention bias a stack's blocks share: the learned position bias [1, H, q, k]
// (undefined for cross-attention) and the mask (padding [B, 1, 1, k], causal [1, 1, q, k]).
// The flash kernels take them apart; the other paths take their sum, made once by the first
// block unless the flash kernels are expected to run.
struct AttnBias {
  at::Tensor pos, mask, combined;
  static AttnBias Make(at::Tensor pos, at::Tensor mask, const at::Tensor& x, const T5Config& c);
  at::Tensor Combined() const { return combined.defined() ? combined : Sum(); }
  at::Tensor Sum() const;
};

// HF's T5Attention: q, k, v, o without bias; the first block's self-attention also owns the
// relative position bias table [buckets, heads].
class Attention : public torch::nn::Module {
 public:
  Attention(const T5Config& c, bool relative_bias, bool bidirectional);

  // x [B, q, D] attends to kv [B, k, D] with the additive bias (pos + mask: [B or 1, H, q, k]).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& kv, const AttnBias& bias, bool training) const;
  // [B, L, inner] -> [B, H, L, d_kv]
  at::Tensor Heads(const at::Tensor& t) const { return t.view({t.size(0), -1, c_.num_heads, c_.d_kv}).transpose(1, 2); }
  // Attention over heads already projected, then the output projection: [B, q, D], HF's
  // computation step by step (the paths other than flash; generation steps).
  at::Tensor Attend(const at::Tensor& qh, const at::Tensor& kh, const at::Tensor& vh, const at::Tensor& bias,
                    bool training) const;
  // The learned bias [1, H, q, k] for query positions q_from..q_from+q-1 and keys 0..k-1.
  at::Tensor PositionBias(std::int64_t q_len, std::int64_t k_len, const at::Device& device,
                          std::int64_t q_from = 0) const;

  std::shared_ptr<Weight> q, k, v, o, relative_attention_bias;

 private:
  at::Tensor Bucket(at::Tensor relative) const;

  const T5Config c_;
  const bool bidirectional_;
};

}  // namespace zt::nlp::t5

#endif  // ZEROTRAIN_NLP_T5_T5_ATTENTION_H_
