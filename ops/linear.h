// y = x @ weight^T without bias, as one autograd node: at::linear on a [..., in] input makes four
// (a view to 2-D, the weight's transpose, the product, the view back), and on a GPU that a
// step's host time cannot keep fed, each node's bookkeeping is time the GPU waits.  Same
// products as at::linear (ATen's mm), on any device and dtype.  ZT_LINEAR=reference calls
// at::linear instead (for comparisons).
//
//   at::Tensor y = zt::ops::Linear(x, weight);   // x [..., in], weight [out, in] -> y [..., out]
#ifndef ZEROTRAIN_OPS_LINEAR_H_
#define ZEROTRAIN_OPS_LINEAR_H_

#include <ATen/core/Tensor.h>

namespace zt::ops {

at::Tensor Linear(const at::Tensor& x, const at::Tensor& weight);

}  // namespace zt::ops

#endif  // ZEROTRAIN_OPS_LINEAR_H_
