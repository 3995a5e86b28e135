// y = x @ weight^T without bias, as one autograd node: at::linear on a [..., in] input makes four
// (a view to 2-D, the weight's transpose, the product, the view back), and on a GPU that a
// step's host time cannot keep fed, each node's bookkeeping is time the GPU waits.  Same
// products as at::linear (ATen's mm), on any device and dtype.  ZT_LINEAR=reference calls
// at::linear instead (for comparisons).
//
//   at::Tensor y = zt::ops::Linear(x, weight);   // x [..., in], weight [out, in] -> y [..., out]
//
// Linears projects one input through several weights (attention's q, k and v) as one node:
//
//   std::vector<at::Tensor> qkv = zt::ops::Linears(x, {wq, wk, wv});   // y_i = x @ w_i^T
//
// Where the weights lie back to back in one buffer (the engine's flat parameter buffer keeps
// a module's weights in order) the forward is one product with [out_1 + .. + out_n, in] and
// the outputs are column blocks of its result.  The backward takes the gradients as one
// [rows, out_1 + ..] matrix when they come back laid out that way (the attention kernels return
// theirs like their inputs), so that dx and every dw_i are one product each; otherwise dx
// accumulates over the weights inside the products (no separate additions).  ZT_LINEARS=reference
// makes one Linear per weight instead (comparisons); ZT_LINEAR=reference applies to both.
#ifndef ZEROTRAIN_OPS_LINEAR_H_
#define ZEROTRAIN_OPS_LINEAR_H_

#include <ATen/core/Tensor.h>

#include <vector>

namespace zt::ops {

at::Tensor Linear(const at::Tensor& x, const at::Tensor& weight);

std::vector<at::Tensor> Linears(const at::Tensor& x, at::TensorList weights);

}  // namespace zt::ops

#endif  // ZEROTRAIN_OPS_LINEAR_H_
