// The fused dropout kernels (ops/cuda/dropout.h) on at::Tensor, with autograd.  Linking
// //ops/cuda:dropout_autograd registers them with zt::ops::DropoutAdd and zt::ops::ReluDropout
// (a static initializer; the target is alwayslink).  Calling them directly is for tests and
// benchmarks.
#ifndef ZEROTRAIN_OPS_CUDA_DROPOUT_AUTOGRAD_H_
#define ZEROTRAIN_OPS_CUDA_DROPOUT_AUTOGRAD_H_

#include <ATen/ATen.h>

namespace zt::ops::cuda {

// x + dropout(h, p): x and h CUDA tensors of one device, shape and dtype (float32, bfloat16,
// float16), 0 < p < 1; an undefined tensor for other dtypes.  Differentiable in x and h.
at::Tensor DropoutAddCuda(const at::Tensor& x, const at::Tensor& h, double p);

// dropout(relu(h), p), under the same terms.  Differentiable in h.
at::Tensor ReluDropoutCuda(const at::Tensor& h, double p);

}  // namespace zt::ops::cuda

#endif  // ZEROTRAIN_OPS_CUDA_DROPOUT_AUTOGRAD_H_
