// Device helpers the ops/cuda kernels share: the element types to and from float, and a 32-bit
// integer hash (the dropout draws).  Included by .cu files only.
#ifndef ZEROTRAIN_OPS_CUDA_ELEMENT_CUH_
#define ZEROTRAIN_OPS_CUDA_ELEMENT_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace zt::ops::cuda::element {

__device__ __forceinline__ float ToFloat(float v) { return v; }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float ToFloat(__half v) { return __half2float(v); }

// v rounded to nearest in T.
template <typename T>
__device__ __forceinline__ T FromFloat(float v);
template <>
__device__ __forceinline__ float FromFloat<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ __half FromFloat<__half>(float v) {
  return __float2half_rn(v);
}

// A 32-bit integer hash with full avalanche (two multiply-xorshift rounds).
__device__ __forceinline__ std::uint32_t Mix32(std::uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

}  // namespace zt::ops::cuda::element

#endif  // ZEROTRAIN_OPS_CUDA_ELEMENT_CUH_
