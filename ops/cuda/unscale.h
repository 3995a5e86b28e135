// CUDA kernel of ops/unscale.h: multiply a device buffer by inv_scale and flag inf/NaN.
//
//   int* found;  // device int, zeroed by the caller; set to 1 when any element is non-finite
//   cudaError_t e = zt::ops::cuda::LaunchNonFiniteCheckAndUnscale(grad, n, inv_scale, found, stream);
//
// Asynchronous on `stream`; the result is in *found once the stream reaches it.  Results are
// bit-identical to the CPU reference (one IEEE multiplication per element).
#ifndef ZEROTRAIN_OPS_CUDA_UNSCALE_H_
#define ZEROTRAIN_OPS_CUDA_UNSCALE_H_

#include <cuda_runtime_api.h>

#include <cstdint>

namespace zt::ops::cuda {

cudaError_t LaunchNonFiniteCheckAndUnscale(float* data, std::int64_t n, float inv_scale, int* found,
                                           cudaStream_t stream);

}  // namespace zt::ops::cuda

#endif  // ZEROTRAIN_OPS_CUDA_UNSCALE_H_
