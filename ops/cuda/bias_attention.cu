#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "ops/cuda/bias_attention.h"
#include "ops/cuda/element.cuh"

namespace zt::ops::cuda {
namespace {

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

// Rows row0.. of a [L, D] operand (rows `sl` apart) into s (pitch kPitch), zero past len.
template <typename T, int kD, int kRows>
__device__ __forceinline__ void LoadTileAsync(T* s, const T* g, std::int64_t sl, std::int64_t row0, std::int64_t len) {
  constexpr int kVecs = kD / 8;
  static_assert(kRows * kVecs % kThreads == 0, "whole iterations");
#pragma unroll
  for (int t = 0; t < kRows * kVecs / kThreads; ++t) {
    const int idx = threadIdx.x + t * kThreads, r = idx / kVecs, c = (idx % kVecs) * 8;
    const std::int64_t row = row0 + r;
    const bool ok = row < len;
    CpAsync16(s + r * Dims<kD>::kPitch + c, ok ? g + row * sl + c : g, ok);
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
  if (vec) {
    constexpr int kVecs = kCols / 8;
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

// Two adjacent 16-bit elements of shared memory as floats.
template <typename T>
__device__ __forceinline__ float2 Load2(const T* p) {
  return ToFloat2(*reinterpret_cast<const typename Pair<T>::Type*>(p));
}

// pos + mask at a pair of adjacent elements of their shared-memory tiles (zero when absent).
template <typename T, bool kPos, bool kMask>
__device__ __forceinline__ float2 BiasPair(const T* pos, const T* mask) {
  float2 sum = make_float2(0.f, 0.f);
  if constexpr (kPos) {
    const float2 p = Load2(pos);
    sum.x += p.x;
    sum.y += p.y;
  }
  if constexpr (kMask) {
    const float2 m = Load2(mask);
    sum.x += m.x;
    sum.y += m.y;
  }
  return sum;
}
__device__ __forceinline__ bool KeptLow(const Dropout& d, std::uint32_t draws) {
  return (draws & 0xffffu) >= d.threshold;
}
__device__ __forceinline__ bool KeptHigh(const Dropout& d, std::uint32_t draws) { return (draws >> 16) >= d.threshold; }

constexpr std::size_t Align(std::size_t bytes) { return (bytes + 127) / 128 * 128; }

template <typename T, int kD>
struct ForwardSmem {
  static constexpr std::size_t kOwn = Align(sizeof(T) * kM * Dims<kD>::kPitch);
  static constexpr std::size_t kTile = Align(sizeof(T) * Dims<kD>::kN * Dims<kD>::kPitch);
  static constexpr std::size_t kBias = Align(sizeof(T) * kM * (Dims<kD>::kN + 8));
  static constexpr std::size_t kQ = 0, kK = kOwn, kV = kK + 2 * kTile, kPos = kV + 2 * kTile;
  static constexpr std::size_t kMask = kPos + 2 * kBias, kMaskRow = Align(sizeof(T) * (Dims<kD>::kN + 8));
  // mask_row: the mask is the same for every query (a padding mask): one row per stage.
  __host__ __device__ static constexpr std::size_t MaskStage(bool mask_row) { return mask_row ? kMaskRow : kBias; }
  __host__ __device__ static constexpr std::size_t Bytes(bool mask_row) { return kMask + 2 * MaskStage(mask_row); }
};

// A block per (query tile, b, h), one pass over the keys with a running max (online softmax).
template <typename T, int kD, bool kPos, bool kMask>
__global__ void __launch_bounds__(kThreads, kD == 64 ? 3 : 1)
    ForwardKernel(BiasAttentionShape sh, HeadsView q, HeadsView k, HeadsView v, BiasView pos, BiasView mask,
                  HeadsOut out, float* __restrict__ lse, Dropout drop) {
  using S = ForwardSmem<T, kD>;
  constexpr int kN = Dims<kD>::kN, kNT = Dims<kD>::kNTiles, kDT = Dims<kD>::kDTiles, kBP = kN + 8;
  extern __shared__ __align__(128) unsigned char smem[];
  T* s_q = reinterpret_cast<T*>(smem + S::kQ);
  auto s_k = [&](int st) { return reinterpret_cast<T*>(smem + S::kK + st * S::kTile); };
  auto s_v = [&](int st) { return reinterpret_cast<T*>(smem + S::kV + st * S::kTile); };
  auto s_pos = [&](int st) { return reinterpret_cast<T*>(smem + S::kPos + st * S::kBias); };
  const bool mask_row = kMask && mask.si == 0;
  const std::size_t mask_stage = S::MaskStage(mask_row);
  const int mask_pitch = mask_row ? 0 : kBP;
  auto s_mask = [&](int st) { return reinterpret_cast<T*>(smem + S::kMask + st * mask_stage); };

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
  const std::int64_t bh = blockIdx.y, b = bh / sh.heads, h = bh % sh.heads;
  const std::int64_t i0 = static_cast<std::int64_t>(blockIdx.x) * kM;
  const T* gk = static_cast<const T*>(k.ptr) + b * k.sb + h * k.sh;
  const T* gv = static_cast<const T*>(v.ptr) + b * v.sb + h * v.sh;
  const bool pos_vec = kPos && Vectorisable(pos, sh.k_len), mask_vec = kMask && Vectorisable(mask, sh.k_len);
  const int tiles = static_cast<int>((sh.k_len + kN - 1) / kN);

  auto issue = [&](int tile) {
    const int st = tile % 2;
    const std::int64_t j0 = static_cast<std::int64_t>(tile) * kN;
    LoadTileAsync<T, kD, kN>(s_k(st), gk, k.sl, j0, sh.k_len);
    LoadTileAsync<T, kD, kN>(s_v(st), gv, v.sl, j0, sh.k_len);
    if constexpr (kPos) LoadBiasAsync<T, kM, kN>(s_pos(st), pos, b, h, i0, j0, sh.q_len, sh.k_len, pos_vec);
    if constexpr (kMask) {
      if (mask_row) {
        LoadBiasAsync<T, 1, kN>(s_mask(st), mask, b, h, i0, j0, sh.q_len, sh.k_len, mask_vec);
      } else {
        LoadBiasAsync<T, kM, kN>(s_mask(st), mask, b, h, i0, j0, sh.q_len, sh.k_len, mask_vec);
      }
    }
    CpAsyncCommit();
  };
  LoadTileAsync<T, kD, kM>(s_q, static_cast<const T*>(q.ptr) + b * q.sb + h * q.sh, q.sl, i0, sh.q_len);
  issue(0);

  const int row[2] = {warp * 16 + g, warp * 16 + g + 8};  // the thread's rows within the tile
  std::uint32_t row_key[2] = {0u, 0u};
  if (drop.threshold != 0) {
    row_key[0] = RowKey(drop, bh, i0 + row[0]);
    row_key[1] = RowKey(drop, bh, i0 + row[1]);
  }
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  float acc[kDT][4];
#pragma unroll
  for (int n = 0; n < kDT; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;

  for (int tile = 0; tile < tiles; ++tile) {
    if (tile + 1 < tiles) {
      issue(tile + 1);
      CpAsyncWait<1>();
    } else {
      CpAsyncWait<0>();
    }
    __syncthreads();
    const int st = tile % 2;
    float s[kNT][4];
#pragma unroll
    for (int n = 0; n < kNT; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
    RowsTimesTileT<T, kD, kN>(s, s_q, s_k(st), warp, lane);

    const int jt = tile * kN, lk = static_cast<int>(sh.k_len);
#pragma unroll
    for (int n = 0; n < kNT; ++n) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const float2 add = BiasPair<T, kPos, kMask>(s_pos(st) + row[r] * kBP + n * 8 + 2 * t4,
                                                    s_mask(st) + row[r] * mask_pitch + n * 8 + 2 * t4);
        s[n][2 * r] = s[n][2 * r] * sh.scale + add.x;
        s[n][2 * r + 1] = s[n][2 * r + 1] * sh.scale + add.y;
      }
    }
    if (jt + kN > lk) {  // the last tile: keys past the end take no share
#pragma unroll
      for (int n = 0; n < kNT; ++n) {
        const int j = jt + n * 8 + 2 * t4;
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          if (j >= lk) s[n][2 * r] = -INFINITY;
          if (j + 1 >= lk) s[n][2 * r + 1] = -INFINITY;
        }
      }
    }
    float mx[2] = {m[0], m[1]};
#pragma unroll
    for (int n = 0; n < kNT; ++n) {
#pragma unroll
      for (int r = 0; r < 2; ++r) mx[r] = fmaxf(mx[r], fmaxf(s[n][2 * r], s[n][2 * r + 1]));
    }
    float base[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(kFullMask, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(kFullMask, mx[r], 2));
      base[r] = mx[r] == -INFINITY ? 0.f : mx[r];  // a row with no key yet stays at zero
      const float alpha = Exp2((m[r] - base[r]) * kLog2e);
      m[r] = mx[r];
      l[r] *= alpha;
#pragma unroll
      for (int n = 0; n < kDT; ++n) {
        acc[n][2 * r] *= alpha;
        acc[n][2 * r + 1] *= alpha;
      }
    }
#pragma unroll
    for (int n = 0; n < kNT; ++n) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const float p0 = Exp2((s[n][2 * r] - base[r]) * kLog2e), p1 = Exp2((s[n][2 * r + 1] - base[r]) * kLog2e);
        l[r] += p0 + p1;  // this thread's columns; the quad's sum is taken at the end
        s[n][2 * r] = p0;
        s[n][2 * r + 1] = p1;
      }
    }
    if (drop.threshold != 0) {
#pragma unroll
      for (int n = 0; n < kNT; ++n) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const std::uint32_t d = Draws(row_key[r], jt + n * 8 + 2 * t4);
          s[n][2 * r] *= KeptLow(drop, d) ? drop.keep_scale : 0.f;
          s[n][2 * r + 1] *= KeptHigh(drop, d) ? drop.keep_scale : 0.f;
        }
      }
    }
    ScoresTimesTile<T, kD, kN>(acc, s, s_v(st), lane);
    __syncthreads();  // every warp is done with stage st before it is loaded again
  }

  T* go = static_cast<T*>(out.ptr) + b * out.sb + h * out.sh;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(kFullMask, l[r], 1);
    l[r] += __shfl_xor_sync(kFullMask, l[r], 2);
    const std::int64_t i = i0 + row[r];
    if (i >= sh.q_len) continue;
    const float inv = l[r] > 0.f ? 1.f / l[r] : 0.f;
    const float base = m[r] == -INFINITY ? 0.f : m[r];
    if (t4 == 0) lse[bh * sh.q_len + i] = l[r] > 0.f ? base + __logf(l[r]) : -INFINITY;
#pragma unroll
    for (int n = 0; n < kDT; ++n) {
      *reinterpret_cast<std::uint32_t*>(go + i * out.sl + n * 8 + 2 * t4) =
          Pack<T>(acc[n][2 * r] * inv, acc[n][2 * r + 1] * inv);
    }
  }
}

// delta[bh, i] = dout_i . out_i in float32, one warp per row.
template <typename T, int kD>
__global__ void DeltaKernel(BiasAttentionShape sh, HeadsView out, HeadsView dout, float* __restrict__ delta) {
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= sh.batch * sh.heads * sh.q_len) return;
  const std::int64_t bh = row / sh.q_len, i = row % sh.q_len, b = bh / sh.heads, h = bh % sh.heads;
  const T* o = static_cast<const T*>(out.ptr) + b * out.sb + h * out.sh + i * out.sl;
  const T* d = static_cast<const T*>(dout.ptr) + b * dout.sb + h * dout.sh + i * dout.sl;
  float sum = 0.f;
  for (int e = lane; e < kD; e += 32) sum += ToFloat(o[e]) * ToFloat(d[e]);
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(kFullMask, sum, off);
  if (lane == 0) delta[row] = sum;
}

template <typename T, int kD>
struct QuerySmem {
  static constexpr std::size_t kOwn = Align(sizeof(T) * kM * Dims<kD>::kPitch);
  static constexpr std::size_t kTile = Align(sizeof(T) * Dims<kD>::kN * Dims<kD>::kPitch);
  static constexpr std::size_t kBias = Align(sizeof(T) * kM * (Dims<kD>::kN + 8));
  static constexpr std::size_t kQ = 0, kDo = kOwn, kK = 2 * kOwn, kV = kK + 2 * kTile, kPos = kV + 2 * kTile;
  static constexpr std::size_t kMask = kPos + 2 * kBias, kMaskRow = Align(sizeof(T) * (Dims<kD>::kN + 8));
  __host__ __device__ static constexpr std::size_t MaskStage(bool mask_row) { return mask_row ? kMaskRow : kBias; }
  __host__ __device__ static constexpr std::size_t Bytes(bool mask_row) { return kMask + 2 * MaskStage(mask_row); }
};

// A block per (query tile, b, h): dq = scale * dS k, and dS (summed over the batch) into dpos.
template <typename T, int kD, bool kPos, bool kMask>
__global__ void __launch_bounds__(kThreads, kD == 64 ? 3 : 1)
    BackwardQueryKernel(BiasAttentionShape sh, HeadsView q, HeadsView k, HeadsView v, BiasView pos, BiasView mask,
                        HeadsView dout, const float* __restrict__ lse, const float* __restrict__ delta, HeadsOut dq,
                        float* __restrict__ dpos, Dropout drop) {
  using S = QuerySmem<T, kD>;
  constexpr int kN = Dims<kD>::kN, kNT = Dims<kD>::kNTiles, kDT = Dims<kD>::kDTiles, kBP = kN + 8;
  extern __shared__ __align__(128) unsigned char smem[];
  T* s_q = reinterpret_cast<T*>(smem + S::kQ);
  T* s_do = reinterpret_cast<T*>(smem + S::kDo);
  auto s_k = [&](int st) { return reinterpret_cast<T*>(smem + S::kK + st * S::kTile); };
  auto s_v = [&](int st) { return reinterpret_cast<T*>(smem + S::kV + st * S::kTile); };
  auto s_pos = [&](int st) { return reinterpret_cast<T*>(smem + S::kPos + st * S::kBias); };
  const bool mask_row = kMask && mask.si == 0;
  const std::size_t mask_stage = S::MaskStage(mask_row);
  const int mask_pitch = mask_row ? 0 : kBP;
  auto s_mask = [&](int st) { return reinterpret_cast<T*>(smem + S::kMask + st * mask_stage); };

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
  const std::int64_t bh = blockIdx.y, b = bh / sh.heads, h = bh % sh.heads;
  const std::int64_t i0 = static_cast<std::int64_t>(blockIdx.x) * kM;
  const T* gk = static_cast<const T*>(k.ptr) + b * k.sb + h * k.sh;
  const T* gv = static_cast<const T*>(v.ptr) + b * v.sb + h * v.sh;
  const bool pos_vec = kPos && Vectorisable(pos, sh.k_len), mask_vec = kMask && Vectorisable(mask, sh.k_len);
  const bool pairs = sh.k_len % 2 == 0;  // a row's (j, j + 1) are 8-byte aligned in dpos
  const int tiles = static_cast<int>((sh.k_len + kN - 1) / kN);

  auto issue = [&](int tile) {
    const int st = tile % 2;
    const std::int64_t j0 = static_cast<std::int64_t>(tile) * kN;
    LoadTileAsync<T, kD, kN>(s_k(st), gk, k.sl, j0, sh.k_len);
    LoadTileAsync<T, kD, kN>(s_v(st), gv, v.sl, j0, sh.k_len);
    if constexpr (kPos) LoadBiasAsync<T, kM, kN>(s_pos(st), pos, b, h, i0, j0, sh.q_len, sh.k_len, pos_vec);
    if constexpr (kMask) {
      if (mask_row) {
        LoadBiasAsync<T, 1, kN>(s_mask(st), mask, b, h, i0, j0, sh.q_len, sh.k_len, mask_vec);
      } else {
        LoadBiasAsync<T, kM, kN>(s_mask(st), mask, b, h, i0, j0, sh.q_len, sh.k_len, mask_vec);
      }
    }
    CpAsyncCommit();
  };
  LoadTileAsync<T, kD, kM>(s_q, static_cast<const T*>(q.ptr) + b * q.sb + h * q.sh, q.sl, i0, sh.q_len);
  LoadTileAsync<T, kD, kM>(s_do, static_cast<const T*>(dout.ptr) + b * dout.sb + h * dout.sh, dout.sl, i0, sh.q_len);
  issue(0);

  const int row[2] = {warp * 16 + g, warp * 16 + g + 8};
  float row_lse[2], row_delta[2];
  std::uint32_t row_key[2] = {0u, 0u};
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const std::int64_t i = i0 + row[r];
    const float v = i < sh.q_len ? lse[bh * sh.q_len + i] : -INFINITY;
    row_lse[r] = v == -INFINITY ? INFINITY : v;  // a row with no key (or none at all): p = 0
    row_delta[r] = i < sh.q_len ? delta[bh * sh.q_len + i] : 0.f;
    if (drop.threshold != 0) row_key[r] = RowKey(drop, bh, i);
  }
  float acc[kDT][4];
#pragma unroll
  for (int n = 0; n < kDT; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;

  for (int tile = 0; tile < tiles; ++tile) {
    if (tile + 1 < tiles) {
      issue(tile + 1);
      CpAsyncWait<1>();
    } else {
      CpAsyncWait<0>();
    }
    __syncthreads();
    const int st = tile % 2;
    float s[kNT][4], dp[kNT][4];
#pragma unroll
    for (int n = 0; n < kNT; ++n) {
      s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
      dp[n][0] = dp[n][1] = dp[n][2] = dp[n][3] = 0.f;
    }
    RowsTimesTileT<T, kD, kN>(s, s_q, s_k(st), warp, lane);
    RowsTimesTileT<T, kD, kN>(dp, s_do, s_v(st), warp, lane);

    const int jt = tile * kN, lk = static_cast<int>(sh.k_len);
#pragma unroll
    for (int n = 0; n < kNT; ++n) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const float2 add = BiasPair<T, kPos, kMask>(s_pos(st) + row[r] * kBP + n * 8 + 2 * t4,
                                                    s_mask(st) + row[r] * mask_pitch + n * 8 + 2 * t4);
        s[n][2 * r] = s[n][2 * r] * sh.scale + add.x;
        s[n][2 * r + 1] = s[n][2 * r + 1] * sh.scale + add.y;
      }
    }
    if (jt + kN > lk) {  // the last tile: keys past the end have p = 0
#pragma unroll
      for (int n = 0; n < kNT; ++n) {
        const int j = jt + n * 8 + 2 * t4;
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          if (j >= lk) s[n][2 * r] = -INFINITY;
          if (j + 1 >= lk) s[n][2 * r + 1] = -INFINITY;
        }
      }
    }
    if (drop.threshold != 0) {  // dP of the dropped product: dp * z
#pragma unroll
      for (int n = 0; n < kNT; ++n) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const std::uint32_t d = Draws(row_key[r], jt + n * 8 + 2 * t4);
          dp[n][2 * r] *= KeptLow(drop, d) ? drop.keep_scale : 0.f;
          dp[n][2 * r + 1] *= KeptHigh(drop, d) ? drop.keep_scale : 0.f;
        }
      }
    }
#pragma unroll
    for (int n = 0; n < kNT; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float p = Exp2((s[n][e] - row_lse[e / 2]) * kLog2e);
        s[n][e] = p * (dp[n][e] - row_delta[e / 2]);  // dS
      }
    }
    if (dpos != nullptr) {
      const int lq = static_cast<int>(sh.q_len);
#pragma unroll
      for (int n = 0; n < kNT; ++n) {
        const int j = jt + n * 8 + 2 * t4;
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int i = static_cast<int>(i0) + row[r];
          if (i >= lq || j >= lk) continue;
          float* dst = dpos + (h * sh.q_len + i) * sh.k_len + j;
          if (pairs) {
            atomicAdd(reinterpret_cast<float2*>(dst), make_float2(s[n][2 * r], s[n][2 * r + 1]));
          } else {
            atomicAdd(dst, s[n][2 * r]);
            if (j + 1 < lk) atomicAdd(dst + 1, s[n][2 * r + 1]);
          }
        }
      }
    }
    ScoresTimesTile<T, kD, kN>(acc, s, s_k(st), lane);
    __syncthreads();
  }

  T* gdq = static_cast<T*>(dq.ptr) + b * dq.sb + h * dq.sh;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const std::int64_t i = i0 + row[r];
    if (i >= sh.q_len) continue;
#pragma unroll
    for (int n = 0; n < kDT; ++n) {
      *reinterpret_cast<std::uint32_t*>(gdq + i * dq.sl + n * 8 + 2 * t4) =
          Pack<T>(acc[n][2 * r] * sh.scale, acc[n][2 * r + 1] * sh.scale);
    }
  }
}

template <typename T, int kD>
struct KeySmem {
  static constexpr std::size_t kOwn = Align(sizeof(T) * kM * Dims<kD>::kPitch);
  static constexpr std::size_t kTile = Align(sizeof(T) * Dims<kD>::kNKey * Dims<kD>::kPitch);
  static constexpr std::size_t kBias = Align(sizeof(T) * Dims<kD>::kNKey * (kM + 8));  // [query][key]
  static constexpr std::size_t kRowStats = Align(sizeof(float) * Dims<kD>::kNKey);
  static constexpr std::size_t kK = 0, kV = kOwn, kQ = 2 * kOwn, kDo = kQ + 2 * kTile, kPos = kDo + 2 * kTile;
  static constexpr std::size_t kMask = kPos + 2 * kBias, kLse = kMask + 2 * kBias, kDelta = kLse + 2 * kRowStats;
  static constexpr std::size_t kKey = kDelta + 2 * kRowStats, kBytes = kKey + 2 * kRowStats;
};

// A block per (key tile, b, h): dv = P_dropped^T dout, dk = scale * dS^T q.  The warps' scores
// are transposed ([key, query]); the query side streams.
template <typename T, int kD, bool kPos, bool kMask>
__global__ void __launch_bounds__(kThreads, kD == 64 ? 3 : 1)
    BackwardKeyKernel(BiasAttentionShape sh, HeadsView q, HeadsView k, HeadsView v, BiasView pos, BiasView mask,
                      HeadsView dout, const float* __restrict__ lse, const float* __restrict__ delta, HeadsOut dk,
                      HeadsOut dv, Dropout drop) {
  using S = KeySmem<T, kD>;
  constexpr int kN = Dims<kD>::kNKey, kNT = kN / 8, kDT = Dims<kD>::kDTiles, kBP = kM + 8;
  extern __shared__ __align__(128) unsigned char smem[];
  T* s_k = reinterpret_cast<T*>(smem + S::kK);
  T* s_v = reinterpret_cast<T*>(smem + S::kV);
  auto s_q = [&](int st) { return reinterpret_cast<T*>(smem + S::kQ + st * S::kTile); };
  auto s_do = [&](int st) { return reinterpret_cast<T*>(smem + S::kDo + st * S::kTile); };
  auto s_pos = [&](int st) { return reinterpret_cast<T*>(smem + S::kPos + st * S::kBias); };
  auto s_mask = [&](int st) { return reinterpret_cast<T*>(smem + S::kMask + st * S::kBias); };
  auto s_lse = [&](int st) { return reinterpret_cast<float*>(smem + S::kLse + st * S::kRowStats); };
  auto s_delta = [&](int st) { return reinterpret_cast<float*>(smem + S::kDelta + st * S::kRowStats); };
  auto s_key = [&](int st) { return reinterpret_cast<std::uint32_t*>(smem + S::kKey + st * S::kRowStats); };

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
  const std::int64_t bh = blockIdx.y, b = bh / sh.heads, h = bh % sh.heads;
  const std::int64_t j0 = static_cast<std::int64_t>(blockIdx.x) * kM;
  const T* gq = static_cast<const T*>(q.ptr) + b * q.sb + h * q.sh;
  const T* gdo = static_cast<const T*>(dout.ptr) + b * dout.sb + h * dout.sh;
  const bool pos_vec = kPos && Vectorisable(pos, sh.k_len), mask_vec = kMask && Vectorisable(mask, sh.k_len);
  const int tiles = static_cast<int>((sh.q_len + kN - 1) / kN);

  auto issue = [&](int tile) {
    const int st = tile % 2;
    const std::int64_t i0 = static_cast<std::int64_t>(tile) * kN;
    LoadTileAsync<T, kD, kN>(s_q(st), gq, q.sl, i0, sh.q_len);
    LoadTileAsync<T, kD, kN>(s_do(st), gdo, dout.sl, i0, sh.q_len);
    if constexpr (kPos) LoadBiasAsync<T, kN, kM>(s_pos(st), pos, b, h, i0, j0, sh.q_len, sh.k_len, pos_vec);
    if constexpr (kMask) LoadBiasAsync<T, kN, kM>(s_mask(st), mask, b, h, i0, j0, sh.q_len, sh.k_len, mask_vec);
    for (int c = threadIdx.x; c < kN; c += kThreads) {
      const std::int64_t i = i0 + c;
      const float v = i < sh.q_len ? lse[bh * sh.q_len + i] : -INFINITY;
      s_lse(st)[c] = v == -INFINITY ? INFINITY : v;  // a query with no key (or none at all): p = 0
      s_delta(st)[c] = i < sh.q_len ? delta[bh * sh.q_len + i] : 0.f;
      s_key(st)[c] = drop.threshold != 0 ? RowKey(drop, bh, i) : 0u;
    }
    CpAsyncCommit();
  };
  LoadTileAsync<T, kD, kM>(s_k, static_cast<const T*>(k.ptr) + b * k.sb + h * k.sh, k.sl, j0, sh.k_len);
  LoadTileAsync<T, kD, kM>(s_v, static_cast<const T*>(v.ptr) + b * v.sb + h * v.sh, v.sl, j0, sh.k_len);
  issue(0);

  // The thread's keys within the tile: adjacent (the products interleave the rows), so one
  // 32-bit load gives both biases and one hash both dropout draws.
  const int row[2] = {warp * 16 + 2 * g, warp * 16 + 2 * g + 1};
  float acc_dk[kDT][4], acc_dv[kDT][4];
#pragma unroll
  for (int n = 0; n < kDT; ++n) {
    acc_dk[n][0] = acc_dk[n][1] = acc_dk[n][2] = acc_dk[n][3] = 0.f;
    acc_dv[n][0] = acc_dv[n][1] = acc_dv[n][2] = acc_dv[n][3] = 0.f;
  }

  for (int tile = 0; tile < tiles; ++tile) {
    if (tile + 1 < tiles) {
      issue(tile + 1);
      CpAsyncWait<1>();
    } else {
      CpAsyncWait<0>();
    }
    __syncthreads();
    const int st = tile % 2;
    float s[kNT][4], dp[kNT][4];
#pragma unroll
    for (int n = 0; n < kNT; ++n) {
      s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
      dp[n][0] = dp[n][1] = dp[n][2] = dp[n][3] = 0.f;
    }
    RowsTimesTileT<T, kD, kN, true>(s, s_k, s_q(st), warp, lane);
    RowsTimesTileT<T, kD, kN, true>(dp, s_v, s_do(st), warp, lane);

    const T* bp = s_pos(st);
    const T* bm = s_mask(st);
    const float* lse_c = s_lse(st);
    const float* delta_c = s_delta(st);
    const std::uint32_t* key_c = s_key(st);
    const std::uint32_t j_pair = static_cast<std::uint32_t>(j0) + row[0];
#pragma unroll
    for (int n = 0; n < kNT; ++n) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int c = n * 8 + 2 * t4 + e;  // the query within the tile
        const float l_c = lse_c[c];
        const float2 add = BiasPair<T, kPos, kMask>(bp + c * kBP + row[0], bm + c * kBP + row[0]);
        s[n][e] = Exp2((s[n][e] * sh.scale + add.x - l_c) * kLog2e);
        s[n][2 + e] = Exp2((s[n][2 + e] * sh.scale + add.y - l_c) * kLog2e);
      }
    }
    if (drop.threshold != 0) {
#pragma unroll
      for (int n = 0; n < kNT; ++n) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int c = n * 8 + 2 * t4 + e;
          const float d_c = delta_c[c];
          const std::uint32_t d = Draws(key_c[c], j_pair);
          const float z0 = KeptLow(drop, d) ? drop.keep_scale : 0.f, z1 = KeptHigh(drop, d) ? drop.keep_scale : 0.f;
          dp[n][e] = s[n][e] * (dp[n][e] * z0 - d_c);  // dS, for dk
          dp[n][2 + e] = s[n][2 + e] * (dp[n][2 + e] * z1 - d_c);
          s[n][e] *= z0;  // the dropped probabilities, for dv
          s[n][2 + e] *= z1;
        }
      }
    } else {
#pragma unroll
      for (int n = 0; n < kNT; ++n) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float d_c = delta_c[2 * t4 + n * 8 + e];
          dp[n][e] = s[n][e] * (dp[n][e] - d_c);
          dp[n][2 + e] = s[n][2 + e] * (dp[n][2 + e] - d_c);
        }
      }
    }
    ScoresTimesTile<T, kD, kN>(acc_dv, s, s_do(st), lane);
    ScoresTimesTile<T, kD, kN>(acc_dk, dp, s_q(st), lane);
    __syncthreads();
  }

  T* gdk = static_cast<T*>(dk.ptr) + b * dk.sb + h * dk.sh;
  T* gdv = static_cast<T*>(dv.ptr) + b * dv.sb + h * dv.sh;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const std::int64_t j = j0 + row[r];
    if (j >= sh.k_len) continue;
#pragma unroll
    for (int n = 0; n < kDT; ++n) {
      *reinterpret_cast<std::uint32_t*>(gdk + j * dk.sl + n * 8 + 2 * t4) =
          Pack<T>(acc_dk[n][2 * r] * sh.scale, acc_dk[n][2 * r + 1] * sh.scale);
      *reinterpret_cast<std::uint32_t*>(gdv + j * dv.sl + n * 8 + 2 * t4) =
          Pack<T>(acc_dv[n][2 * r], acc_dv[n][2 * r + 1]);
    }
  }
}

__global__ void DropoutMaskKernel(BiasAttentionShape sh, Dropout drop, std::uint8_t* __restrict__ keep) {
  const std::int64_t n = sh.batch * sh.heads * sh.q_len * sh.k_len;
  for (std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t j = e % sh.k_len, i = (e / sh.k_len) % sh.q_len, bh = e / (sh.k_len * sh.q_len);
    if (drop.threshold == 0) {
      keep[e] = 1;
      continue;
    }
    const std::uint32_t d = Draws(RowKey(drop, bh, i), static_cast<std::uint32_t>(j));
    keep[e] = (j & 1) ? KeptHigh(drop, d) : KeptLow(drop, d);
  }
}

Dropout DropoutOf(const BiasAttentionShape& s) {
  Dropout d;
  d.seed_lo = static_cast<std::uint32_t>(s.seed);
  d.seed_hi = static_cast<std::uint32_t>(s.seed >> 32);
  const double t = std::nearbyint(static_cast<double>(s.dropout) * 65536.0);
  d.threshold = s.dropout <= 0.f ? 0u : static_cast<std::uint32_t>(t < 1.0 ? 1.0 : (t > 65535.0 ? 65535.0 : t));
  d.keep_scale = s.dropout > 0.f ? 1.f / (1.f - s.dropout) : 1.f;
  return d;
}

// Lets `kernel` take `smem` bytes of dynamic shared memory (over the default 48 KiB).
template <typename Kernel>
cudaError_t AllowSmem(Kernel kernel, std::size_t smem) {
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
}

dim3 Grid(std::int64_t rows, const BiasAttentionShape& s) {
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
template <typename T, int kD, bool kPos, bool kMask>
struct ForwardFn {
  static constexpr auto kFn = ForwardKernel<T, kD, kPos, kMask>;
};
template <typename T, int kD, bool kPos, bool kMask>
struct QueryFn {
  static constexpr auto kFn = BackwardQueryKernel<T, kD, kPos, kMask>;
};
template <typename T, int kD, bool kPos, bool kMask>
struct KeyFn {
  static constexpr auto kFn = BackwardKeyKernel<T, kD, kPos, kMask>;
};

template <typename T, int kD>
cudaError_t ForwardTD(const BiasAttentionShape& s, HeadsView q, HeadsView k, HeadsView v, BiasView pos, BiasView mask,
                      HeadsOut out, float* lse, cudaStream_t stream) {
  using S = ForwardSmem<T, kD>;
  const std::size_t smem = S::Bytes(mask.ptr != nullptr && mask.si == 0);
  return WithBiases<ForwardFn, T, kD>(pos, mask, [&](auto kernel) {
    cudaError_t e = AllowSmem(kernel, S::Bytes(false));
    if (e != cudaSuccess) return e;
    kernel<<<Grid(s.q_len, s), kThreads, smem, stream>>>(s, q, k, v, pos, mask, out, lse, DropoutOf(s));
    return cudaGetLastError();
  });
}

template <typename T, int kD>
cudaError_t BackwardTD(const BiasAttentionShape& s, HeadsView q, HeadsView k, HeadsView v, BiasView pos, BiasView mask,
                       HeadsView out, HeadsView dout, const float* lse, float* delta, HeadsOut dq, HeadsOut dk,
                       HeadsOut dv, float* dpos, cudaStream_t stream) {
  const std::int64_t rows = s.batch * s.heads * s.q_len;
  constexpr int kRowsPerBlock = 8;
  DeltaKernel<T, kD>
      <<<static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock), 32 * kRowsPerBlock, 0, stream>>>(
          s, out, dout, delta);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  const std::size_t q_smem = QuerySmem<T, kD>::Bytes(mask.ptr != nullptr && mask.si == 0);
  constexpr std::size_t k_smem = KeySmem<T, kD>::kBytes;
  e = WithBiases<QueryFn, T, kD>(pos, mask, [&](auto kernel) {
    cudaError_t e = AllowSmem(kernel, QuerySmem<T, kD>::Bytes(false));
    if (e != cudaSuccess) return e;
    kernel<<<Grid(s.q_len, s), kThreads, q_smem, stream>>>(s, q, k, v, pos, mask, dout, lse, delta, dq, dpos,
                                                           DropoutOf(s));
    return cudaGetLastError();
  });
  if (e != cudaSuccess) return e;
  return WithBiases<KeyFn, T, kD>(pos, mask, [&](auto kernel) {
    cudaError_t e = AllowSmem(kernel, k_smem);
    if (e != cudaSuccess) return e;
    kernel<<<Grid(s.k_len, s), kThreads, k_smem, stream>>>(s, q, k, v, pos, mask, dout, lse, delta, dk, dv,
                                                           DropoutOf(s));
    return cudaGetLastError();
  });
}

bool Aligned(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }
bool Aligned(const HeadsView& t) { return Aligned(t.ptr) && t.sb % 8 == 0 && t.sl % 8 == 0 && t.sh % 8 == 0; }
bool Aligned(const HeadsOut& t) { return Aligned(t.ptr) && t.sb % 8 == 0 && t.sl % 8 == 0 && t.sh % 8 == 0; }

bool Empty(const BiasAttentionShape& s) { return s.batch == 0 || s.heads == 0 || s.q_len == 0 || s.k_len == 0; }

}  // namespace

bool BiasAttentionSupports(const BiasAttentionShape& s) {
  if (s.batch < 0 || s.heads < 0 || s.q_len < 0 || s.k_len < 0) return false;
  if (s.head_dim != 64 && s.head_dim != 128) return false;
  if (!(s.dropout >= 0.f && s.dropout < 1.f)) return false;
  if (Empty(s)) return true;
  constexpr std::int64_t kMaxLen = 1 << 30;  // the kernels index rows and keys in 32 bits
  if (s.q_len > kMaxLen || s.k_len > kMaxLen) return false;
  constexpr std::int64_t kMaxGridY = 65535, kMaxGridX = 2147483647;
  return s.batch <= kMaxGridY / s.heads && (s.q_len + kM - 1) / kM <= kMaxGridX && (s.k_len + kM - 1) / kM <= kMaxGridX;
}

cudaError_t LaunchBiasAttentionForward(BiasAttentionDtype dtype, const BiasAttentionShape& s, HeadsView q, HeadsView k,
                                       HeadsView v, BiasView pos, BiasView mask, HeadsOut out, float* lse,
                                       cudaStream_t stream) {
  if (!BiasAttentionSupports(s)) return cudaErrorInvalidValue;
  if (Empty(s)) return cudaSuccess;
  if (!Aligned(q) || !Aligned(k) || !Aligned(v) || !Aligned(out)) return cudaErrorInvalidValue;
  const bool bf16 = dtype == BiasAttentionDtype::kBFloat16;
  if (s.head_dim == 64) {
    return bf16 ? ForwardTD<__nv_bfloat16, 64>(s, q, k, v, pos, mask, out, lse, stream)
                : ForwardTD<__half, 64>(s, q, k, v, pos, mask, out, lse, stream);
  }
  return bf16 ? ForwardTD<__nv_bfloat16, 128>(s, q, k, v, pos, mask, out, lse, stream)
              : ForwardTD<__half, 128>(s, q, k, v, pos, mask, out, lse, stream);
}

cudaError_t LaunchBiasAttentionBackward(BiasAttentionDtype dtype, const BiasAttentionShape& s, HeadsView q, HeadsView k,
                                        HeadsView v, BiasView pos, BiasView mask, HeadsView out, HeadsView dout,
                                        const float* lse, float* delta, HeadsOut dq, HeadsOut dk, HeadsOut dv,
                                        float* dpos, cudaStream_t stream) {
  if (!BiasAttentionSupports(s)) return cudaErrorInvalidValue;
  if (Empty(s)) return cudaSuccess;
  if (!Aligned(q) || !Aligned(k) || !Aligned(v) || !Aligned(dout) || !Aligned(dq) || !Aligned(dk) || !Aligned(dv)) {
    return cudaErrorInvalidValue;
  }
  const bool bf16 = dtype == BiasAttentionDtype::kBFloat16;
  if (s.head_dim == 64) {
    return bf16 ? BackwardTD<__nv_bfloat16, 64>(s, q, k, v, pos, mask, out, dout, lse, delta, dq, dk, dv, dpos, stream)
                : BackwardTD<__half, 64>(s, q, k, v, pos, mask, out, dout, lse, delta, dq, dk, dv, dpos, stream);
  }
  return bf16 ? BackwardTD<__nv_bfloat16, 128>(s, q, k, v, pos, mask, out, dout, lse, delta, dq, dk, dv, dpos, stream)
              : BackwardTD<__half, 128>(s, q, k, v, pos, mask, out, dout, lse, delta, dq, dk, dv, dpos, stream);
}

cudaError_t LaunchBiasAttentionDropoutMask(const BiasAttentionShape& s, std::uint8_t* keep, cudaStream_t stream) {
  if (!BiasAttentionSupports(s)) return cudaErrorInvalidValue;
  if (Empty(s)) return cudaSuccess;
  DropoutMaskKernel<<<1024, 256, 0, stream>>>(s, DropoutOf(s), keep);
  return cudaGetLastError();
}

}  // namespace zt::ops::cuda
