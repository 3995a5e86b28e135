// The T5 attention kernels' shared pieces (bias_attention_forward.cu, bias_attention_backward.cu):
// tile geometry, the mma.sync / ldmatrix / cp.async wrappers, the tile loaders, the dropout
// draws and the launch helpers.  Included by those two .cu files only.
#ifndef ZEROTRAIN_OPS_CUDA_BIAS_ATTENTION_TILES_CUH_
#define ZEROTRAIN_OPS_CUDA_BIAS_ATTENTION_TILES_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <type_traits>
#include <utility>

#include "ops/cuda/bias_attention.h"
#include "ops/cuda/element.cuh"

namespace zt::ops::cuda::attention {

using element::FromFloat;
using element::Mix32;
using element::ToFloat;

// Every kernel runs 4 warps on a tile of kM = 64 rows it owns (queries in the forward and the
// dq pass, keys in the dk/dv pass), 16 rows per warp, and streams tiles of kN rows of the other
// side through shared memory, two stages deep (cp.async: the next tile loads while this one is
// multiplied).  The products are mma.sync m16n8k16 on tensor cores with float32 accumulators
// held in registers; a product's accumulators become the next product's A operand in
// registers (the m16n8 accumulator pairs are the m16n8k16 A layout), so scores and
// probabilities never pass through shared memory.  A thread holds, of each 8-column slice of a
// warp's 16 rows, rows g and g + 8 (g = lane / 4) and columns 2t, 2t + 1 (t = lane % 4).
// The kernels are latency-bound: at head size 64 they are built for three blocks per SM
// (registers capped at 168, a mask that is the same for every query staged as one row), and
// each is specialised on the biases present so that its element loops have no branches.
constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kM = 64;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr float kLog2e = 1.4426950408889634f;

template <int kD>
struct Dims {
  static_assert(kD == 64 || kD == 128, "head dimension 64 or 128");
  static constexpr int kN = kD == 64 ? 64 : 32;  // rows of a streamed tile (registers bound it)
  static constexpr int kNKey = kN / 2;           // the dk/dv pass holds two more accumulators
  static constexpr int kPitch = kD + 8;          // 16-bit row pitch of [rows, D] tiles: no bank conflicts
  static constexpr int kDTiles = kD / 8;         // 8-column slices of D
  static constexpr int kNTiles = kN / 8;
};

template <typename T>
struct Pair;
template <>
struct Pair<__nv_bfloat16> {
  using Type = __nv_bfloat162;
};
template <>
struct Pair<__half> {
  using Type = __half2;
};

__device__ __forceinline__ float2 ToFloat2(__nv_bfloat162 x) { return __bfloat1622float2(x); }
__device__ __forceinline__ float2 ToFloat2(__half2 x) { return __half22float2(x); }

// Two floats rounded to T, `lo` in the low half (the lower column of an mma fragment pair).
template <typename T>
__device__ __forceinline__ std::uint32_t Pack(float lo, float hi) {
  typename Pair<T>::Type v;
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    v = __floats2bfloat162_rn(lo, hi);
  } else {
    v = __floats2half2_rn(lo, hi);
  }
  return *reinterpret_cast<std::uint32_t*>(&v);
}

__device__ __forceinline__ float Exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// ---- PTX: shared-memory addresses, cp.async, ldmatrix, mma.sync ----------------------------

__device__ __forceinline__ std::uint32_t SmemAddress(const void* p) {
  return static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared without passing registers; zero-filled when !valid.
__device__ __forceinline__ void CpAsync16(void* s, const void* g, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(SmemAddress(s)), "l"(g), "r"(valid ? 16 : 0));
}
// 4 bytes global -> shared (cp.async's smallest copy); zero when !valid.
__device__ __forceinline__ void CpAsync4(void* s, const void* g, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(SmemAddress(s)), "l"(g), "r"(valid ? 4 : 0));
}
__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int kPending>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

// Four 8x8 16-bit matrices; lanes 8m..8m+7 give the row addresses of matrix m, and register m
// receives its (row lane/4, columns 2(lane%4), +1) -- transposed with Ldsm4T.
__device__ __forceinline__ void Ldsm4(std::uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SmemAddress(p)));
}
__device__ __forceinline__ void Ldsm4T(std::uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SmemAddress(p)));
}

// c[16x8] += a[16x16] b[16x8].
template <typename T>
__device__ __forceinline__ void Mma(float (&c)[4], const std::uint32_t (&a)[4], std::uint32_t b0, std::uint32_t b1) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// acc[n] (n < kCols/8: the warp's [16, kCols] result) += A x B^T, where A is rows warp*16.. of
// `a` ([.., D] pitch kPitch) and B the rows 0..kCols-1 of `b` (same layout): scores q k^T.
// kInterleaved: accumulator row m is row 2m (m < 8) or 2(m - 8) + 1 of the warp's 16, so that
// a thread's two rows (g, g + 8) are the adjacent rows 2g, 2g + 1.
template <typename T, int kD, int kCols, bool kInterleaved = false>
__device__ __forceinline__ void RowsTimesTileT(float (&acc)[kCols / 8][4], const T* a, const T* b, int warp, int lane) {
  constexpr int kP = Dims<kD>::kPitch;
  const int m = lane % 16, arow_index = kInterleaved ? (m % 8) * 2 + m / 8 : m;
#pragma unroll
  for (int kk = 0; kk < kD / 32; ++kk) {  // two 16-wide steps of D per pass
    std::uint32_t a0[4], a1[4];
    const T* arow = a + (warp * 16 + arow_index) * kP + kk * 32 + (lane / 16) * 8;
    Ldsm4(a0, arow);
    Ldsm4(a1, arow + 16);
#pragma unroll
    for (int n = 0; n < kCols / 8; ++n) {
      std::uint32_t bf[4];
      Ldsm4(bf, b + (n * 8 + lane % 8) * kP + kk * 32 + (lane / 8) * 8);
      Mma<T>(acc[n], a0, bf[0], bf[1]);
      Mma<T>(acc[n], a1, bf[2], bf[3]);
    }
  }
}

// acc[nd] (the warp's [16, D] result) += P x tile, P the warp's [16, kCols] scores in registers
// (rounded to T here), tile rows 0..kCols-1 of a [.., D] tile (pitch kPitch).
template <typename T, int kD, int kCols>
__device__ __forceinline__ void ScoresTimesTile(float (&acc)[Dims<kD>::kDTiles][4], const float (&p)[kCols / 8][4],
                                                const T* tile, int lane) {
  constexpr int kP = Dims<kD>::kPitch;
#pragma unroll
  for (int kk = 0; kk < kCols / 16; ++kk) {
    const std::uint32_t pa[4] = {Pack<T>(p[2 * kk][0], p[2 * kk][1]), Pack<T>(p[2 * kk][2], p[2 * kk][3]),
                                 Pack<T>(p[2 * kk + 1][0], p[2 * kk + 1][1]),
                                 Pack<T>(p[2 * kk + 1][2], p[2 * kk + 1][3])};
#pragma unroll
    for (int nd = 0; nd < kD / 16; ++nd) {
      std::uint32_t bf[4];
      Ldsm4T(bf, tile + (kk * 16 + lane % 8 + ((lane / 8) % 2) * 8) * kP + nd * 16 + (lane / 16) * 8);
      Mma<T>(acc[2 * nd], pa, bf[0], bf[1]);
      Mma<T>(acc[2 * nd + 1], pa, bf[2], bf[3]);
    }
  }
}

// Rows row0.. of a [L, D] operand (rows `sl` apart) into s (pitch kPitch), zero past len.  A
// thread copies the same 16-byte column of rows kStep apart, so its source pointer only steps.
template <typename T, int kD, int kRows>
__device__ __forceinline__ void LoadTileAsync(T* s, const T* g, std::int64_t sl, std::int64_t row0, std::int64_t len) {
  constexpr int kVecs = kD / 8, kStep = kThreads / kVecs;
  static_assert(kThreads % kVecs == 0 && kRows % kStep == 0, "whole iterations");
  const int r = threadIdx.x / kVecs, c = (threadIdx.x % kVecs) * 8;
  const int left = static_cast<int>(len - row0) - r;  // this thread's rows t * kStep < left exist
  const T* src = g + (row0 + r) * sl + c;
  T* dst = s + r * Dims<kD>::kPitch + c;
#pragma unroll
  for (int t = 0; t < kRows / kStep; ++t) {
    const bool ok = t * kStep < left;
    CpAsync16(dst + t * kStep * Dims<kD>::kPitch, ok ? src : g, ok);
    src += kStep * sl;
  }
}

// Whether a bias's rows of keys can be copied 16 bytes at a time.
__device__ __forceinline__ bool Vectorisable(const BiasView& v, std::int64_t lk) {
  return v.sj == 1 && reinterpret_cast<std::uintptr_t>(v.ptr) % 16 == 0 && v.sb % 8 == 0 && v.sh % 8 == 0 &&
         v.si % 8 == 0 && lk % 8 == 0;
}

// The [kRows queries, kCols keys] tile of a bias from (i0, j0) into s (pitch kCols + 8), zero
// outside [lq, lk]: cp.async when `vec`, else element by element.
template <typename T, int kRows, int kCols>
__device__ __forceinline__ void LoadBiasAsync(T* s, const BiasView& v, std::int64_t b, std::int64_t h, std::int64_t i0,
                                              std::int64_t j0, std::int64_t lq, std::int64_t lk, bool vec) {
  const T* base = static_cast<const T*>(v.ptr) + b * v.sb + h * v.sh;
  constexpr int kPitch = kCols + 8;
  constexpr int kVecs = kCols / 8;
  if constexpr (kThreads % kVecs == 0 && kRows % (kThreads / kVecs) == 0) {
    if (vec) {  // as LoadTileAsync: a thread's column is fixed, its rows kStep apart
      constexpr int kStep = kThreads / kVecs;
      const int r = threadIdx.x / kVecs, c = (threadIdx.x % kVecs) * 8;
      const int left = j0 + c < lk ? static_cast<int>(lq - i0) - r : 0;
      const T* src = base + (i0 + r) * v.si + j0 + c;
      T* dst = s + r * kPitch + c;
#pragma unroll
      for (int t = 0; t < kRows / kStep; ++t) {
        const bool ok = t * kStep < left;
        CpAsync16(dst + t * kStep * kPitch, ok ? src : base, ok);
        src += kStep * v.si;
      }
      return;
    }
  }
  if (vec) {
    for (int idx = threadIdx.x; idx < kRows * kVecs; idx += kThreads) {
      const int r = idx / kVecs, c = (idx % kVecs) * 8;
      const std::int64_t i = i0 + r, j = j0 + c;
      const bool ok = i < lq && j < lk;
      CpAsync16(s + r * kPitch + c, ok ? base + i * v.si + j : base, ok);
    }
  } else {
    for (int idx = threadIdx.x; idx < kRows * kCols; idx += kThreads) {
      const int r = idx / kCols, c = idx % kCols;
      const std::int64_t i = i0 + r, j = j0 + c;
      s[r * kPitch + c] = i < lq && j < lk ? base[i * v.si + j * v.sj] : FromFloat<T>(0.f);
    }
  }
}

struct Dropout {
  std::uint32_t seed_lo, seed_hi;
  std::uint32_t threshold;  // out of 65536; 0: no dropout
  float keep_scale;         // 1 / (1 - p)
};

// Element (bh, i, j) is kept when its 16-bit draw clears the threshold.  One hash gives the
// draws of keys j and j + 1 (j even): Draws(RowKey(bh, i), j) holds key j's in its low half.
__device__ __forceinline__ std::uint32_t RowKey(const Dropout& d, std::int64_t bh, std::int64_t i) {
  return Mix32(d.seed_lo ^ Mix32(d.seed_hi + static_cast<std::uint32_t>(bh) * 0x85ebca6bu +
                                 static_cast<std::uint32_t>(i) * 0xc2b2ae35u));
}
__device__ __forceinline__ std::uint32_t Draws(std::uint32_t row_key, std::uint32_t j) {
  return Mix32(row_key ^ ((j >> 1) * 0x9e3779b1u));
}

// Two adjacent 16-bit elements of shared memory, as a pair and as floats.
template <typename T>
__device__ __forceinline__ typename Pair<T>::Type LoadPair(const T* p) {
  return *reinterpret_cast<const typename Pair<T>::Type*>(p);
}
template <typename T>
__device__ __forceinline__ float2 Load2(const T* p) {
  return ToFloat2(LoadPair(p));
}

// pos + mask at a pair of adjacent elements of their shared-memory tiles (zero when absent),
// summed in T as HF's T5 sums them (one instruction for the pair).
template <typename T, bool kPos, bool kMask>
__device__ __forceinline__ float2 BiasPair(const T* pos, const T* mask) {
  if constexpr (kPos && kMask) {
    return ToFloat2(__hadd2(LoadPair(pos), LoadPair(mask)));
  } else if constexpr (kPos) {
    return Load2(pos);
  } else if constexpr (kMask) {
    return Load2(mask);
  } else {
    return make_float2(0.f, 0.f);
  }
}
__device__ __forceinline__ bool KeptLow(const Dropout& d, std::uint32_t draws) {
  return (draws & 0xffffu) >= d.threshold;
}
__device__ __forceinline__ bool KeptHigh(const Dropout& d, std::uint32_t draws) { return (draws >> 16) >= d.threshold; }

constexpr std::size_t Align(std::size_t bytes) { return (bytes + 127) / 128 * 128; }

inline Dropout DropoutOf(const BiasAttentionShape& s) {
  Dropout d;
  d.seed_lo = static_cast<std::uint32_t>(s.seed);
  d.seed_hi = static_cast<std::uint32_t>(s.seed >> 32);
  const double t = std::nearbyint(static_cast<double>(s.dropout) * 65536.0);
  d.threshold = s.dropout <= 0.f ? 0u : static_cast<std::uint32_t>(t < 1.0 ? 1.0 : (t > 65535.0 ? 65535.0 : t));
  d.keep_scale = s.dropout > 0.f ? 1.f / (1.f - s.dropout) : 1.f;
  return d;
}

// Lets `kernel` take `smem` bytes of dynamic shared memory (over the default 48 KiB).  The
// attribute is set once per kernel, device and size: the call costs microseconds of host time
// and these kernels launch hundreds of times a training step.
template <typename Kernel>
cudaError_t AllowSmem(Kernel kernel, std::size_t smem) {
  int device = 0;
  cudaError_t e = cudaGetDevice(&device);
  if (e != cudaSuccess) return e;
  static std::mutex mu;
  static std::map<std::pair<const void*, int>, std::size_t> allowed;  // the largest set so far
  const auto key = std::make_pair(reinterpret_cast<const void*>(kernel), device);
  {
    const std::lock_guard<std::mutex> lock(mu);
    const auto it = allowed.find(key);
    if (it != allowed.end() && it->second >= smem) return cudaSuccess;
  }
  e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  if (e != cudaSuccess) return e;
  const std::lock_guard<std::mutex> lock(mu);
  std::size_t& most = allowed[key];
  most = most > smem ? most : smem;
  return cudaSuccess;
}

inline dim3 Grid(std::int64_t rows, const BiasAttentionShape& s) {
  return dim3(static_cast<unsigned>((rows + kM - 1) / kM), static_cast<unsigned>(s.batch * s.heads));
}

// Calls launch(kernel<..., kPos, kMask>) with the instance for the biases present.
template <template <typename, int, bool, bool> class Kernel, typename T, int kD, typename Launch>
cudaError_t WithBiases(const BiasView& pos, const BiasView& mask, Launch launch) {
  if (pos.ptr != nullptr) {
    return mask.ptr != nullptr ? launch(Kernel<T, kD, true, true>::kFn) : launch(Kernel<T, kD, true, false>::kFn);
  }
  return mask.ptr != nullptr ? launch(Kernel<T, kD, false, true>::kFn) : launch(Kernel<T, kD, false, false>::kFn);
}

inline bool Aligned(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }
inline bool Aligned(const HeadsView& t) { return Aligned(t.ptr) && t.sb % 8 == 0 && t.sl % 8 == 0 && t.sh % 8 == 0; }
inline bool Aligned(const HeadsOut& t) { return Aligned(t.ptr) && t.sb % 8 == 0 && t.sl % 8 == 0 && t.sh % 8 == 0; }

inline bool Empty(const BiasAttentionShape& s) { return s.batch == 0 || s.heads == 0 || s.q_len == 0 || s.k_len == 0; }

}  // namespace zt::ops::cuda::attention

#endif  // ZEROTRAIN_OPS_CUDA_BIAS_ATTENTION_TILES_CUH_
