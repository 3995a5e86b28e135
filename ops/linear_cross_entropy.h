// The language-model head and its loss in one op: mean cross-entropy of hidden @ weight^T over
// the vocabulary against labels, ignore_index skipped.  The reference and the entry point
// models call; the fused CUDA version (//ops/cuda:cross_entropy_autograd) registers itself here.
//
//   at::Tensor loss = zt::ops::LinearCrossEntropy(hidden, weight, labels, /*ignore_index=*/-100);
//
// hidden [N, D], weight [V, D] (one dtype), labels [N] int64; the loss is a float32 scalar
// (NaN when every label is ignored, as torch's cross_entropy).  The logits are computed in the
// inputs' dtype and the softmax in float32, as `cross_entropy(linear(h, w).float(), labels)`.
// The fused version never holds float32 logits: it works through chunks of rows, computing
// their logits (twice: again in the backward) and writing their gradient over them.
// ZT_CROSS_ENTROPY=reference forces the reference (for comparisons).
#ifndef ZEROTRAIN_OPS_LINEAR_CROSS_ENTROPY_H_
#define ZEROTRAIN_OPS_LINEAR_CROSS_ENTROPY_H_

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace zt::ops {

at::Tensor LinearCrossEntropyReference(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                                       std::int64_t ignore_index);

at::Tensor LinearCrossEntropy(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                              std::int64_t ignore_index);

// The CUDA library's implementation; it returns an undefined tensor for inputs it does not take.
using LinearCrossEntropyFn = at::Tensor (*)(const at::Tensor& hidden, const at::Tensor& weight,
                                            const at::Tensor& labels, std::int64_t ignore_index);
void RegisterCudaLinearCrossEntropy(LinearCrossEntropyFn fn);
bool HasCudaLinearCrossEntropy();

}  // namespace zt::ops

#endif  // ZEROTRAIN_OPS_LINEAR_CROSS_ENTROPY_H_
