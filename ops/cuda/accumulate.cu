#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "ops/cuda/accumulate.h"
#include "ops/cuda/element.cuh"

namespace zt::ops::cuda {
namespace {

using element::ToFloat;

constexpr int kThreads = 256;
constexpr int kVec = 8;  // elements per vector step: 16 bytes of a 16-bit source, two float4 of float
constexpr std::int64_t kMaxBlocksPerSlice = 512;

struct Batch {
  RawSlice slice[kAccumulateBatch];
};

// dst += src, or dst = src (kAssign: dst is not read).
template <bool kAssign, typename T>
__device__ void AddSlice(const T* __restrict__ src, float* __restrict__ dst, std::int64_t n) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * kThreads;
  const std::int64_t first = static_cast<std::int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  std::int64_t done = 0;
  const bool aligned =
      reinterpret_cast<std::uintptr_t>(src) % 16 == 0 && reinterpret_cast<std::uintptr_t>(dst) % 16 == 0;
  if (aligned) {
    done = n / kVec * kVec;
    for (std::int64_t v = first; v < n / kVec; v += stride) {
      constexpr int kWords = kVec * sizeof(T) / 16;
      uint4 w[kWords];
#pragma unroll
      for (int k = 0; k < kWords; ++k) w[k] = reinterpret_cast<const uint4*>(src + v * kVec)[k];
      const T* e = reinterpret_cast<const T*>(w);
      float4* d = reinterpret_cast<float4*>(dst + v * kVec);
      float4 a = make_float4(0.f, 0.f, 0.f, 0.f), b = a;
      if constexpr (!kAssign) {
        a = d[0];
        b = d[1];
      }
      a.x += ToFloat(e[0]);
      a.y += ToFloat(e[1]);
      a.z += ToFloat(e[2]);
      a.w += ToFloat(e[3]);
      b.x += ToFloat(e[4]);
      b.y += ToFloat(e[5]);
      b.z += ToFloat(e[6]);
      b.w += ToFloat(e[7]);
      d[0] = a;
      d[1] = b;
    }
  }
  for (std::int64_t i = done + first; i < n; i += stride) dst[i] = (kAssign ? 0.f : dst[i]) + ToFloat(src[i]);
}

template <typename T>
__device__ void Slice(const RawSlice& s) {
  if (s.assign) {
    AddSlice<true>(static_cast<const T*>(s.src), s.dst, s.n);
  } else {
    AddSlice<false>(static_cast<const T*>(s.src), s.dst, s.n);
  }
}

__global__ void __launch_bounds__(kThreads) AccumulateKernel(const __grid_constant__ Batch batch) {
  const RawSlice& s = batch.slice[blockIdx.y];
  switch (s.dtype) {
    case ElementType::kFloat32:
      Slice<float>(s);
      break;
    case ElementType::kBFloat16:
      Slice<__nv_bfloat16>(s);
      break;
    case ElementType::kFloat16:
      Slice<__half>(s);
      break;
  }
}

}  // namespace

cudaError_t LaunchAccumulate(const RawSlice* slices, int count, cudaStream_t stream) {
  if (count < 0) return cudaErrorInvalidValue;
  for (int i = 0; i < count;) {
    Batch batch{};
    int m = 0;
    std::int64_t most = 0;
    for (; i < count && m < kAccumulateBatch; ++i) {
      if (slices[i].n < 0) return cudaErrorInvalidValue;
      if (slices[i].n == 0) continue;
      batch.slice[m++] = slices[i];
      if (slices[i].n > most) most = slices[i].n;
    }
    if (m == 0) continue;
    std::int64_t blocks = (most + kThreads * kVec - 1) / (kThreads * kVec);
    if (blocks > kMaxBlocksPerSlice) blocks = kMaxBlocksPerSlice;
    AccumulateKernel<<<dim3(static_cast<unsigned>(blocks), static_cast<unsigned>(m)), kThreads, 0, stream>>>(batch);
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

}  // namespace zt::ops::cuda
