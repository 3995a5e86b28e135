// T5's two dropout sites as single ops: the residual add after a sublayer (HF's
// `hidden_states + self.dropout(y)`) and the FFN's activation (`self.dropout(relu(h))`).  These
// are the entry points models call; the fused CUDA kernels (//ops/cuda:dropout_autograd)
// register themselves here.
//
//   at::Tensor y = zt::ops::DropoutAdd(x, h, p, training);   // x + dropout(h, p)
//   at::Tensor a = zt::ops::ReluDropout(h, p, training);     // dropout(relu(h), p)
//
// The fused kernels draw their keep mask from a hash of a seed and the element index, so the
// backward recomputes it instead of storing a mask (ReluDropout's backward needs no mask at all:
// an element's gradient flows exactly where its output is positive).  p is rounded to a multiple
// of 1/65536 there and kept elements are scaled by 1 / (1 - that p), so every element keeps its
// expectation.  The seed comes from LibTorch's default CPU generator: at::manual_seed makes runs
// repeatable.  ZT_DROPOUT=reference forces the reference (at::dropout) for comparisons.
#ifndef ZEROTRAIN_OPS_DROPOUT_H_
#define ZEROTRAIN_OPS_DROPOUT_H_

#include <ATen/core/Tensor.h>

namespace zt::ops {

// Plain differentiable ATen ops on any device.
at::Tensor DropoutAddReference(const at::Tensor& x, const at::Tensor& h, double p, bool training);
at::Tensor ReluDropoutReference(const at::Tensor& h, double p, bool training);

// The fused CUDA kernels where registered and applicable (training, 0 < p < 1, x and h CUDA
// tensors of one shape and dtype), else the reference.
at::Tensor DropoutAdd(const at::Tensor& x, const at::Tensor& h, double p, bool training);
at::Tensor ReluDropout(const at::Tensor& h, double p, bool training);

// The CUDA library's implementations; each returns an undefined tensor for inputs it does not take.
struct DropoutFns {
  at::Tensor (*dropout_add)(const at::Tensor& x, const at::Tensor& h, double p);
  at::Tensor (*relu_dropout)(const at::Tensor& h, double p);
};
void RegisterCudaDropout(const DropoutFns* fns);
bool HasCudaDropout();

}  // namespace zt::ops

#endif  // ZEROTRAIN_OPS_DROPOUT_H_
