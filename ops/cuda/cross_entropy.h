// CUDA kernels of ops/linear_cross_entropy.h: cross-entropy over the vocabulary for a chunk of
// rows of 16-bit (or float32) logits, with every sum in float32, and its gradient written over
// the logits in place, so no float32 copy of the logits is ever made.
//
// logits [rows, v] (contiguous, `dtype`), labels [rows] int64.  Forward writes lse [rows]
// (float32 logsumexp) and loss [rows] (lse - logit[label]; 0 where label == ignore_index; NaN
// where a label is outside [0, v)).  Backward overwrites logits with
// (softmax - onehot(label)) * *scale, 0 on ignored rows; `scale` is a device float (the loss's
// gradient over the number of counted rows).  Asynchronous on `stream`.
#ifndef ZEROTRAIN_OPS_CUDA_CROSS_ENTROPY_H_
#define ZEROTRAIN_OPS_CUDA_CROSS_ENTROPY_H_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "ops/cuda/element_type.h"

namespace zt::ops::cuda {

cudaError_t LaunchCrossEntropyForward(ElementType dtype, const void* logits, const std::int64_t* labels,
                                      std::int64_t rows, std::int64_t v, std::int64_t ignore_index, float* lse,
                                      float* loss, cudaStream_t stream);

cudaError_t LaunchCrossEntropyBackward(ElementType dtype, void* logits, const std::int64_t* labels, const float* lse,
                                       std::int64_t rows, std::int64_t v, std::int64_t ignore_index, const float* scale,
                                       cudaStream_t stream);

}  // namespace zt::ops::cuda

#endif  // ZEROTRAIN_OPS_CUDA_CROSS_ENTROPY_H_
