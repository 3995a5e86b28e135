// The fused CUDA linear cross-entropy (ops/linear_cross_entropy.h; kernels in
// ops/cuda/cross_entropy.h) on at::Tensor, with autograd.  Linking
// //ops/cuda:cross_entropy_autograd registers it with zt::ops::LinearCrossEntropy (a static
// initializer; the target is alwayslink).  Calling it directly is for tests and benchmarks.
#ifndef ZEROTRAIN_OPS_CUDA_CROSS_ENTROPY_AUTOGRAD_H_
#define ZEROTRAIN_OPS_CUDA_CROSS_ENTROPY_AUTOGRAD_H_

#include <ATen/ATen.h>

#include <cstdint>

namespace zt::ops::cuda {

// Rows per chunk: as many as keep one chunk's logits within this many elements.
inline constexpr std::int64_t kCrossEntropyChunkElems = std::int64_t{1} << 25;

// CUDA tensors of one device, hidden and weight float32, bfloat16 or float16 (an undefined
// tensor otherwise).  Differentiable in hidden and weight.  `chunk_rows` > 0 overrides the chunk
// size (tests).
at::Tensor LinearCrossEntropyCuda(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& labels,
                                  std::int64_t ignore_index, std::int64_t chunk_rows = 0);

}  // namespace zt::ops::cuda

#endif  // ZEROTRAIN_OPS_CUDA_CROSS_ENTROPY_AUTOGRAD_H_
