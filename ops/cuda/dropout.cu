#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>

#include "ops/cuda/dropout.h"
#include "ops/cuda/element.cuh"

namespace zt::ops::cuda {
namespace {

using element::FromFloat;
using element::Mix32;
using element::ToFloat;

constexpr int kThreads = 256;
constexpr int kPerThread = 8;  // consecutive elements per thread and iteration: 16 bytes of 16-bit ones
constexpr std::int64_t kMaxBlocks = 1 << 16;

enum Op { kAddForward, kAddBackward, kReluForward, kReluBackward };

// kPerThread elements from p + base: 16-byte loads when `full` (aligned and in bounds).
template <typename T>
__device__ __forceinline__ void Load(const T* __restrict__ p, std::int64_t base, std::int64_t n, bool full,
                                     float (&v)[kPerThread]) {
  if (full) {
    constexpr int kWords = kPerThread * sizeof(T) / 16;
    uint4 w[kWords];
#pragma unroll
    for (int k = 0; k < kWords; ++k) w[k] = reinterpret_cast<const uint4*>(p + base)[k];
    const T* e = reinterpret_cast<const T*>(w);
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) v[i] = ToFloat(e[i]);
  } else {
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) v[i] = base + i < n ? ToFloat(p[base + i]) : 0.f;
  }
}

template <typename T>
__device__ __forceinline__ void Store(T* __restrict__ p, std::int64_t base, std::int64_t n, bool full,
                                      const float (&v)[kPerThread]) {
  if (full) {
    constexpr int kWords = kPerThread * sizeof(T) / 16;
    uint4 w[kWords];
    T* e = reinterpret_cast<T*>(w);
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) e[i] = FromFloat<T>(v[i]);
#pragma unroll
    for (int k = 0; k < kWords; ++k) reinterpret_cast<uint4*>(p + base)[k] = w[k];
  } else {
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      if (base + i < n) p[base + i] = FromFloat<T>(v[i]);
    }
  }
}

// The 16-bit draws of elements 2q (low half) and 2q + 1 (high half).
__device__ __forceinline__ std::uint32_t Draws(std::uint32_t seed_lo, std::uint32_t seed_hi, std::int64_t q) {
  const std::uint32_t lo = static_cast<std::uint32_t>(q), hi = static_cast<std::uint32_t>(q >> 32);
  return Mix32(seed_lo ^ (Mix32(lo ^ seed_hi) + hi * 0x9e3779b1u));
}

// a and b per op: add forward (x, h), add backward (dy, -), relu forward (h, -), relu backward (y, dy).
template <typename T, Op kOp>
__global__ void __launch_bounds__(kThreads)
    DropoutKernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ out, std::int64_t n,
                  std::uint32_t seed_lo, std::uint32_t seed_hi, std::uint32_t threshold, float scale, bool aligned) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * kThreads * kPerThread;
  for (std::int64_t base = (static_cast<std::int64_t>(blockIdx.x) * kThreads + threadIdx.x) * kPerThread; base < n;
       base += stride) {
    const bool full = aligned && base + kPerThread <= n;
    float va[kPerThread], vb[kPerThread], r[kPerThread];
    Load(a, base, n, full, va);
    if constexpr (kOp == kAddForward || kOp == kReluBackward) Load(b, base, n, full, vb);
    if constexpr (kOp == kReluBackward) {
#pragma unroll
      for (int i = 0; i < kPerThread; ++i) r[i] = va[i] > 0.f ? vb[i] * scale : 0.f;
    } else {
#pragma unroll
      for (int k = 0; k < kPerThread / 2; ++k) {
        const std::uint32_t d = Draws(seed_lo, seed_hi, base / 2 + k);
        // The multiplier of elements 2k and 2k + 1: scale when kept, else 0 (NaN * 0 stays NaN, as in ATen).
        const float m[2] = {(d & 0xffffu) >= threshold ? scale : 0.f, (d >> 16) >= threshold ? scale : 0.f};
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int i = 2 * k + e;
          if constexpr (kOp == kAddForward) r[i] = va[i] + vb[i] * m[e];
          if constexpr (kOp == kAddBackward) r[i] = va[i] * m[e];
          if constexpr (kOp == kReluForward) r[i] = (va[i] <= 0.f ? 0.f : va[i]) * m[e];  // relu(NaN) is NaN
        }
      }
    }
    Store(out, base, n, full, r);
  }
}

bool Aligned(const void* p) { return p == nullptr || reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

template <typename T, Op kOp>
cudaError_t Launch(const void* a, const void* b, std::int64_t n, DropoutDraw draw, void* out, cudaStream_t stream) {
  if (n < 0 || draw.threshold < 1 || draw.threshold > 65535) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  const float scale = 65536.f / static_cast<float>(65536 - draw.threshold);
  std::int64_t blocks = (n + kThreads * kPerThread - 1) / (kThreads * kPerThread);
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  DropoutKernel<T, kOp><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(out), n,
      static_cast<std::uint32_t>(draw.seed), static_cast<std::uint32_t>(draw.seed >> 32), draw.threshold, scale,
      Aligned(a) && Aligned(b) && Aligned(out));
  return cudaGetLastError();
}

template <Op kOp>
cudaError_t Dispatch(ElementType dtype, const void* a, const void* b, std::int64_t n, DropoutDraw draw, void* out,
                     cudaStream_t stream) {
  switch (dtype) {
    case ElementType::kFloat32:
      return Launch<float, kOp>(a, b, n, draw, out, stream);
    case ElementType::kBFloat16:
      return Launch<__nv_bfloat16, kOp>(a, b, n, draw, out, stream);
    case ElementType::kFloat16:
      return Launch<__half, kOp>(a, b, n, draw, out, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace

DropoutDraw MakeDropoutDraw(double p, std::uint64_t seed, float* keep_scale) {
  double t = std::nearbyint(p * 65536.0);
  t = t < 1 ? 1 : t > 65535 ? 65535 : t;
  const auto threshold = static_cast<std::uint32_t>(t);
  if (keep_scale != nullptr) *keep_scale = 65536.f / static_cast<float>(65536 - threshold);
  return DropoutDraw{seed, threshold};
}

cudaError_t LaunchDropoutAddForward(ElementType dtype, const void* x, const void* h, std::int64_t n, DropoutDraw draw,
                                    void* y, cudaStream_t stream) {
  return Dispatch<kAddForward>(dtype, x, h, n, draw, y, stream);
}

cudaError_t LaunchDropoutAddBackward(ElementType dtype, const void* dy, std::int64_t n, DropoutDraw draw, void* dh,
                                     cudaStream_t stream) {
  return Dispatch<kAddBackward>(dtype, dy, nullptr, n, draw, dh, stream);
}

cudaError_t LaunchReluDropoutForward(ElementType dtype, const void* h, std::int64_t n, DropoutDraw draw, void* y,
                                     cudaStream_t stream) {
  return Dispatch<kReluForward>(dtype, h, nullptr, n, draw, y, stream);
}

cudaError_t LaunchReluDropoutBackward(ElementType dtype, const void* y, const void* dy, std::int64_t n,
                                      DropoutDraw draw, void* dh, cudaStream_t stream) {
  return Dispatch<kReluBackward>(dtype, y, dy, n, draw, dh, stream);
}

}  // namespace zt::ops::cuda
