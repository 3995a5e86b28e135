// Gradient unscaling with a non-finite check, the first step of a mixed-precision update:
// every element is multiplied by `inv_scale` and the call reports whether any element was inf
// or NaN (the loss scale was too high; the step must be skipped).  Same semantics as PyTorch's
// _amp_foreach_non_finite_check_and_unscale_: the product is exact IEEE float multiplication,
// inv_scale == 1 leaves the values untouched, non-finite values are multiplied too.
//
//   bool overflow = zt::ops::NonFiniteCheckAndUnscale(grad.data(), grad.size(), 1.0f / scale);
//
// This is the plain reference; ops/cuda/unscale.h has the CUDA kernel, tested against it.
#ifndef ZEROTRAIN_OPS_UNSCALE_H_
#define ZEROTRAIN_OPS_UNSCALE_H_

#include <cstdint>

namespace zt::ops {

// Returns true when any of data[0..n) is inf or NaN.
bool NonFiniteCheckAndUnscale(float* data, std::int64_t n, float inv_scale);

}  // namespace zt::ops

#endif  // ZEROTRAIN_OPS_UNSCALE_H_
