#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>

#include "ops/cuda/cross_entropy.h"

namespace zt::ops::cuda {
namespace {

constexpr int kThreads = 512;  // one block per row

__device__ __forceinline__ float Load(const float* p, std::int64_t i) { return p[i]; }
__device__ __forceinline__ float Load(const __nv_bfloat16* p, std::int64_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ float Load(const __half* p, std::int64_t i) { return __half2float(p[i]); }
__device__ __forceinline__ void Store(float* p, std::int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void Store(__nv_bfloat16* p, std::int64_t i, float v) { p[i] = __float2bfloat16_rn(v); }
__device__ __forceinline__ void Store(__half* p, std::int64_t i, float v) { p[i] = __float2half_rn(v); }

// (max, sum of exp(x - max)) merged.
struct MaxSum {
  float m, s;
};
__device__ __forceinline__ MaxSum Merge(MaxSum a, MaxSum b) {
  if (a.m == -INFINITY) return b;
  if (b.m == -INFINITY) return a;
  const float m = fmaxf(a.m, b.m);
  return {m, a.s * expf(a.m - m) + b.s * expf(b.m - m)};
}

__device__ MaxSum BlockMaxSum(MaxSum v) {
  __shared__ MaxSum warp_part[kThreads / 32];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    MaxSum other{__shfl_xor_sync(0xffffffffu, v.m, o), __shfl_xor_sync(0xffffffffu, v.s, o)};
    v = Merge(v, other);
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warp_part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kThreads / 32 ? warp_part[lane] : MaxSum{-INFINITY, 0.0f};
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      MaxSum other{__shfl_xor_sync(0xffffffffu, v.m, o), __shfl_xor_sync(0xffffffffu, v.s, o)};
      v = Merge(v, other);
    }
    if (lane == 0) warp_part[0] = v;
  }
  __syncthreads();
  return warp_part[0];
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    ForwardKernel(const T* __restrict__ logits, const std::int64_t* __restrict__ labels, std::int64_t v,
                  std::int64_t ignore_index, float* __restrict__ lse, float* __restrict__ loss) {
  const std::int64_t row = blockIdx.x;
  const T* l = logits + row * v;
  MaxSum acc{-INFINITY, 0.0f};
  for (std::int64_t j = threadIdx.x; j < v; j += kThreads) acc = Merge(acc, MaxSum{Load(l, j), 1.0f});
  acc = BlockMaxSum(acc);
  if (threadIdx.x == 0) {
    const float z = acc.m + logf(acc.s);
    lse[row] = z;
    const std::int64_t y = labels[row];
    loss[row] = y == ignore_index ? 0.0f : (y < 0 || y >= v) ? NAN : z - Load(l, y);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    BackwardKernel(T* __restrict__ logits, const std::int64_t* __restrict__ labels, const float* __restrict__ lse,
                   std::int64_t v, std::int64_t ignore_index, const float* __restrict__ scale) {
  const std::int64_t row = blockIdx.x;
  T* l = logits + row * v;
  const std::int64_t y = labels[row];
  const float s = y == ignore_index ? 0.0f : *scale;
  const float z = lse[row];
  for (std::int64_t j = threadIdx.x; j < v; j += kThreads) {
    const float p = expf(Load(l, j) - z);
    Store(l, j, (p - (j == y ? 1.0f : 0.0f)) * s);
  }
}

template <typename T>
cudaError_t Forward(const void* logits, const std::int64_t* labels, std::int64_t rows, std::int64_t v,
                    std::int64_t ignore_index, float* lse, float* loss, cudaStream_t stream) {
  ForwardKernel<T><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(static_cast<const T*>(logits), labels, v,
                                                                         ignore_index, lse, loss);
  return cudaGetLastError();
}

template <typename T>
cudaError_t Backward(void* logits, const std::int64_t* labels, const float* lse, std::int64_t rows, std::int64_t v,
                     std::int64_t ignore_index, const float* scale, cudaStream_t stream) {
  BackwardKernel<T><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(static_cast<T*>(logits), labels, lse, v,
                                                                          ignore_index, scale);
  return cudaGetLastError();
}

bool BadSizes(std::int64_t rows, std::int64_t v) { return rows < 0 || v <= 0 || rows > 0x7fffffffLL; }

}  // namespace

cudaError_t LaunchCrossEntropyForward(ElementType dtype, const void* logits, const std::int64_t* labels,
                                      std::int64_t rows, std::int64_t v, std::int64_t ignore_index, float* lse,
                                      float* loss, cudaStream_t stream) {
  if (BadSizes(rows, v)) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  switch (dtype) {
    case ElementType::kFloat32:
      return Forward<float>(logits, labels, rows, v, ignore_index, lse, loss, stream);
    case ElementType::kBFloat16:
      return Forward<__nv_bfloat16>(logits, labels, rows, v, ignore_index, lse, loss, stream);
    case ElementType::kFloat16:
      return Forward<__half>(logits, labels, rows, v, ignore_index, lse, loss, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t LaunchCrossEntropyBackward(ElementType dtype, void* logits, const std::int64_t* labels, const float* lse,
                                       std::int64_t rows, std::int64_t v, std::int64_t ignore_index, const float* scale,
                                       cudaStream_t stream) {
  if (BadSizes(rows, v)) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  switch (dtype) {
    case ElementType::kFloat32:
      return Backward<float>(logits, labels, lse, rows, v, ignore_index, scale, stream);
    case ElementType::kBFloat16:
      return Backward<__nv_bfloat16>(logits, labels, lse, rows, v, ignore_index, scale, stream);
    case ElementType::kFloat16:
      return Backward<__half>(logits, labels, lse, rows, v, ignore_index, scale, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace zt::ops::cuda
