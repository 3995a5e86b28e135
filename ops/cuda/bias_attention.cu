#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <cmath>
#include <cstdint>

#include "ops/cuda/bias_attention.h"

namespace zt::ops::cuda {
namespace {

namespace wmma = nvcuda::wmma;

// Every kernel runs 4 warps on a tile of 64 rows (queries in the forward and the dq pass, keys in
// the dk/dv pass), 16 rows per warp, and streams tiles of 64 rows of the other side through
// shared memory.  Each warp multiplies its 16-row strip on tensor cores (WMMA 16x16x16, float32
// accumulators), stores the [16, 64] scores to shared memory, and works on them with two lanes
// per row (lane l: row l/2, columns 2k + l%2).
constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kTile = 64;
constexpr int kStrip = 16;          // rows per warp
constexpr int kSPitch = kTile + 4;  // float row pitch of [16, 64] strips
constexpr int kBPitch = kTile + 1;  // float row pitch of [64, 64] bias tiles (odd: no conflicts)
constexpr int kPPitch = kTile + 8;  // 16-bit row pitch of [16, 64] strips
constexpr int kColsPerLane = kTile / 2;
constexpr unsigned kFullMask = 0xffffffffu;

template <int kD>
struct Dims {
  static_assert(kD % 16 == 0, "head dimension in whole fragments");
  static constexpr int kPitch = kD + 8;  // 16-bit row pitch of [64, D] tiles
  static constexpr int kFrags = kD / 16;
  static constexpr int kOutPitch = kD + 4;  // float row pitch of a warp's [16, D] result
};

__device__ __forceinline__ float ToFloat(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float ToFloat(__half x) { return __half2float(x); }
template <typename T>
__device__ __forceinline__ T FromFloat(float x);
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float x) {
  return __float2bfloat16(x);
}
template <>
__device__ __forceinline__ __half FromFloat<__half>(float x) {
  return __float2half(x);
}

struct Dropout {
  std::uint32_t seed_lo, seed_hi;
  std::uint32_t threshold;  // 0: no dropout
  float keep_scale;         // 1 / (1 - p)
};

// A 32-bit integer hash with full avalanche (two multiply-xorshift rounds).
__device__ __forceinline__ std::uint32_t Mix32(std::uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

// The dropout draw of element (bh, i, j) is Mix32(RowKey(bh, i) ^ j * golden): kept when it
// clears the threshold.  Row keys are computed once per row where the row is fixed.
__device__ __forceinline__ std::uint32_t RowKey(const Dropout& d, std::int64_t bh, std::int64_t i) {
  return Mix32(d.seed_lo ^ Mix32(d.seed_hi + static_cast<std::uint32_t>(bh) * 0x85ebca6bu +
                                 static_cast<std::uint32_t>(i) * 0xc2b2ae35u));
}
__device__ __forceinline__ bool Keep(const Dropout& d, std::uint32_t row_key, std::int64_t j) {
  return Mix32(row_key ^ (static_cast<std::uint32_t>(j) * 0x9e3779b1u)) >= d.threshold;
}

// s[r][c] = rows row0 + r of a [L, D] operand (rows `sl` apart), zero past len.  16-byte moves;
// every load is issued before the first store, so their latencies overlap.
template <typename T, int kD>
__device__ __forceinline__ void LoadTile(T* __restrict__ s, const T* __restrict__ g, std::int64_t sl, std::int64_t row0,
                                         std::int64_t len) {
  constexpr int kVecs = kD / 8;
  constexpr int kIters = kTile * kVecs / kThreads;
  static_assert(kTile * kVecs % kThreads == 0, "whole iterations");
  uint4 val[kIters];
#pragma unroll
  for (int t = 0; t < kIters; ++t) {
    const int idx = threadIdx.x + t * kThreads, r = idx / kVecs, c = (idx % kVecs) * 8;
    const std::int64_t row = row0 + r;
    val[t] = row < len ? *reinterpret_cast<const uint4*>(g + row * sl + c) : make_uint4(0, 0, 0, 0);
  }
#pragma unroll
  for (int t = 0; t < kIters; ++t) {
    const int idx = threadIdx.x + t * kThreads, r = idx / kVecs, c = (idx % kVecs) * 8;
    *reinterpret_cast<uint4*>(s + r * Dims<kD>::kPitch + c) = val[t];
  }
}

// The [64 queries, 64 keys] tile of pos + mask from (i0, j0) as float (pitch kBPitch), -inf
// past either length.  keys_major stores it as s[key][query].  A thread keeps one key column;
// consecutive threads read consecutive keys.
template <typename T>
__device__ __forceinline__ void LoadBiasTile(float* __restrict__ s, const BiasView& pos, const BiasView& mask,
                                             std::int64_t b, std::int64_t h, std::int64_t i0, std::int64_t j0,
                                             std::int64_t lq, std::int64_t lk, bool keys_major) {
  const int c = threadIdx.x % kTile;
  const std::int64_t j = j0 + c;
  const bool key_ok = j < lk;
  const T* p = static_cast<const T*>(pos.ptr);
  const T* m = static_cast<const T*>(mask.ptr);
  if (p != nullptr) p += h * pos.sh + i0 * pos.si + j * pos.sj;
  if (m != nullptr) m += b * mask.sb + h * mask.sh + i0 * mask.si + j * mask.sj;
  const int rows = static_cast<int>(lq - i0 < kTile ? lq - i0 : kTile);
  constexpr int kStep = kThreads / kTile, kBatch = 8;
  const int r0 = threadIdx.x / kTile;
  // kBatch loads at a time before their sums and stores, so their latencies overlap.
#pragma unroll 1
  for (int first = r0; first < kTile; first += kBatch * kStep) {
    T pv[kBatch], mv[kBatch];
#pragma unroll
    for (int t = 0; t < kBatch; ++t) {
      const int r = first + t * kStep;
      const bool ok = key_ok && r < rows;
      pv[t] = p != nullptr && ok ? p[r * pos.si] : FromFloat<T>(0.f);
      mv[t] = m != nullptr && ok ? m[r * mask.si] : FromFloat<T>(0.f);
    }
#pragma unroll
    for (int t = 0; t < kBatch; ++t) {
      const int r = first + t * kStep;
      const float x = key_ok && r < rows ? ToFloat(pv[t]) + ToFloat(mv[t]) : -INFINITY;
      s[keys_major ? c * kBPitch + r : r * kBPitch + c] = x;
    }
  }
}

template <typename T>
using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major>;
template <typename T>
using FragBRow = wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major>;
template <typename T>
using FragBCol = wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major>;
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

// out[16, 64] (float, pitch kSPitch) = a[16, D] (kFrags fragments) x tile[64, D]^T.
template <typename T, int kD>
__device__ __forceinline__ void StripTimesTileT(const FragA<T> (&a)[Dims<kD>::kFrags], const T* tile, float* out) {
#pragma unroll
  for (int n = 0; n < kTile / 16; ++n) {
    FragC acc;
    wmma::fill_fragment(acc, 0.f);
#pragma unroll
    for (int kk = 0; kk < Dims<kD>::kFrags; ++kk) {
      FragBCol<T> bf;
      wmma::load_matrix_sync(bf, tile + n * 16 * Dims<kD>::kPitch + kk * 16, Dims<kD>::kPitch);
      wmma::mma_sync(acc, a[kk], bf, acc);
    }
    wmma::store_matrix_sync(out + n * 16, acc, kSPitch, wmma::mem_row_major);
  }
}

// acc[16, D] += strip[16, 64] (16-bit, pitch kPPitch) x tile[64, D].
template <typename T, int kD>
__device__ __forceinline__ void StripTimesTile(const T* strip, const T* tile, FragC (&acc)[Dims<kD>::kFrags]) {
#pragma unroll
  for (int kk = 0; kk < kTile / 16; ++kk) {
    FragA<T> af;
    wmma::load_matrix_sync(af, strip + kk * 16, kPPitch);
#pragma unroll
    for (int n = 0; n < Dims<kD>::kFrags; ++n) {
      FragBRow<T> bf;
      wmma::load_matrix_sync(bf, tile + kk * 16 * Dims<kD>::kPitch + n * 16, Dims<kD>::kPitch);
      wmma::mma_sync(acc[n], af, bf, acc[n]);
    }
  }
}

template <typename T, int kD>
__device__ __forceinline__ void LoadStrip(FragA<T> (&a)[Dims<kD>::kFrags], const T* tile, int warp) {
#pragma unroll
  for (int kk = 0; kk < Dims<kD>::kFrags; ++kk) {
    wmma::load_matrix_sync(a[kk], tile + warp * kStrip * Dims<kD>::kPitch + kk * 16, Dims<kD>::kPitch);
  }
}

// Writes a warp's [16, D] accumulators (times `scale`) to rows row0.. of a [L, D] operand,
// through `stage` (float, 16 x kOutPitch, the warp's own).
template <typename T, int kD>
__device__ __forceinline__ void StoreStrip(FragC (&acc)[Dims<kD>::kFrags], float* stage, T* g, std::int64_t sl,
                                           std::int64_t row0, std::int64_t len, float scale) {
#pragma unroll
  for (int n = 0; n < Dims<kD>::kFrags; ++n) {
    wmma::store_matrix_sync(stage + n * 16, acc[n], Dims<kD>::kOutPitch, wmma::mem_row_major);
  }
  __syncwarp();
  const int lane = threadIdx.x % 32;
  constexpr int kVecs = kD / 8;
  for (int idx = lane; idx < kStrip * kVecs; idx += 32) {
    const int r = idx / kVecs, c = (idx % kVecs) * 8;
    const std::int64_t row = row0 + r;
    if (row >= len) continue;
    alignas(16) T v[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) v[e] = FromFloat<T>(stage[r * Dims<kD>::kOutPitch + c + e] * scale);
    *reinterpret_cast<uint4*>(g + row * sl + c) = *reinterpret_cast<const uint4*>(v);
  }
}

constexpr std::size_t Align(std::size_t bytes) { return (bytes + 127) / 128 * 128; }

template <typename T, int kD>
struct ForwardSmem {
  static constexpr std::size_t kTileBytes = Align(sizeof(T) * kTile * Dims<kD>::kPitch);
  static constexpr std::size_t kQ = 0, kK = kQ + kTileBytes, kV = kK + kTileBytes, kS = kV + kTileBytes;
  static constexpr std::size_t kP = kS + Align(sizeof(float) * kWarps * kStrip * kSPitch);
  static constexpr std::size_t kBias = kP + Align(sizeof(T) * kWarps * kStrip * kPPitch);
  static constexpr std::size_t kBytes = kBias + Align(sizeof(float) * kTile * kBPitch);
  static_assert(2 * kTileBytes >= sizeof(float) * kWarps * kStrip * Dims<kD>::kOutPitch, "output stage fits K, V");
};

template <typename T, int kD>
__global__ void __launch_bounds__(kThreads)
    ForwardKernel(BiasAttentionShape sh, HeadsView q, HeadsView k, HeadsView v, BiasView pos, BiasView mask,
                  HeadsOut out, float* __restrict__ lse, Dropout drop) {
  using L = ForwardSmem<T, kD>;
  extern __shared__ __align__(128) unsigned char smem[];
  T* s_q = reinterpret_cast<T*>(smem + L::kQ);
  T* s_k = reinterpret_cast<T*>(smem + L::kK);
  T* s_v = reinterpret_cast<T*>(smem + L::kV);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* s_s = reinterpret_cast<float*>(smem + L::kS) + warp * kStrip * kSPitch;
  T* s_p = reinterpret_cast<T*>(smem + L::kP) + warp * kStrip * kPPitch;
  float* s_bias = reinterpret_cast<float*>(smem + L::kBias);

  const std::int64_t bh = blockIdx.y, b = bh / sh.heads, h = bh % sh.heads;
  const std::int64_t i0 = static_cast<std::int64_t>(blockIdx.x) * kTile;
  const T* gq = static_cast<const T*>(q.ptr) + b * q.sb + h * q.sh;
  const T* gk = static_cast<const T*>(k.ptr) + b * k.sb + h * k.sh;
  const T* gv = static_cast<const T*>(v.ptr) + b * v.sb + h * v.sh;
  const int r = lane / 2, half = lane % 2;
  const int brow = warp * kStrip + r;  // the lane's row within the block's tile
  const std::int64_t i = i0 + brow;

  LoadTile<T, kD>(s_q, gq, q.sl, i0, sh.q_len);
  __syncthreads();
  FragA<T> qf[Dims<kD>::kFrags];
  LoadStrip<T, kD>(qf, s_q, warp);

  // Pass 1: the row logsumexp.
  float m = -INFINITY, l = 0.f;
  for (std::int64_t j0 = 0; j0 < sh.k_len; j0 += kTile) {
    __syncthreads();
    LoadTile<T, kD>(s_k, gk, k.sl, j0, sh.k_len);
    LoadBiasTile<T>(s_bias, pos, mask, b, h, i0, j0, sh.q_len, sh.k_len, false);
    __syncthreads();
    StripTimesTileT<T, kD>(qf, s_k, s_s);
    __syncwarp();
    float x[kColsPerLane];
    float tmax = -INFINITY;
#pragma unroll
    for (int t = 0; t < kColsPerLane; ++t) {
      const int c = 2 * t + half;
      x[t] = s_s[r * kSPitch + c] * sh.scale + s_bias[brow * kBPitch + c];
      tmax = fmaxf(tmax, x[t]);
    }
    tmax = fmaxf(tmax, __shfl_xor_sync(kFullMask, tmax, 1));
    const float m_new = fmaxf(m, tmax);
    // Rows past q_len (and rows with no key yet) stay at -inf; every lane still takes part in
    // the shuffle, which a diverged lane would hang.
    float sum = 0.f;
    if (m_new != -INFINITY) {
#pragma unroll
      for (int t = 0; t < kColsPerLane; ++t) sum += __expf(x[t] - m_new);
    }
    sum += __shfl_xor_sync(kFullMask, sum, 1);
    if (m_new != -INFINITY) {
      l = l * __expf(m - m_new) + sum;
      m = m_new;
    }
  }
  const float row_lse = l > 0.f ? m + __logf(l) : -INFINITY;
  if (half == 0 && i < sh.q_len) lse[bh * sh.q_len + i] = row_lse;

  // Pass 2: out = P v with the final probabilities.
  const std::uint32_t row_key = drop.threshold != 0 ? RowKey(drop, bh, i) : 0u;
  FragC acc[Dims<kD>::kFrags];
#pragma unroll
  for (int n = 0; n < Dims<kD>::kFrags; ++n) wmma::fill_fragment(acc[n], 0.f);
  for (std::int64_t j0 = 0; j0 < sh.k_len; j0 += kTile) {
    __syncthreads();
    LoadTile<T, kD>(s_k, gk, k.sl, j0, sh.k_len);
    LoadTile<T, kD>(s_v, gv, v.sl, j0, sh.k_len);
    LoadBiasTile<T>(s_bias, pos, mask, b, h, i0, j0, sh.q_len, sh.k_len, false);
    __syncthreads();
    StripTimesTileT<T, kD>(qf, s_k, s_s);
    __syncwarp();
#pragma unroll 8
    for (int t = 0; t < kColsPerLane; ++t) {
      const int c = 2 * t + half;
      const float x = s_s[r * kSPitch + c] * sh.scale + s_bias[brow * kBPitch + c];
      float p = row_lse == -INFINITY ? 0.f : __expf(x - row_lse);
      if (drop.threshold != 0) {
        p = Keep(drop, row_key, j0 + c) ? p * drop.keep_scale : 0.f;
      }
      s_p[r * kPPitch + c] = FromFloat<T>(p);
    }
    __syncwarp();
    StripTimesTile<T, kD>(s_p, s_v, acc);
  }
  __syncthreads();  // K and V are free: they stage the output
  float* stage = reinterpret_cast<float*>(smem + L::kK) + warp * kStrip * Dims<kD>::kOutPitch;
  StoreStrip<T, kD>(acc, stage, static_cast<T*>(out.ptr) + b * out.sb + h * out.sh, out.sl, i0 + warp * kStrip,
                    sh.q_len, 1.f);
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
  static constexpr std::size_t kTileBytes = Align(sizeof(T) * kTile * Dims<kD>::kPitch);
  static constexpr std::size_t kStripF = Align(sizeof(float) * kWarps * kStrip * kSPitch);
  static constexpr std::size_t kQ = 0, kDo = kTileBytes, kK = 2 * kTileBytes, kV = 3 * kTileBytes;
  static constexpr std::size_t kS = 4 * kTileBytes, kDp = kS + kStripF, kDs = kDp + kStripF;
  static constexpr std::size_t kBias = kDs + Align(sizeof(T) * kWarps * kStrip * kPPitch);
  static constexpr std::size_t kBytes = kBias + Align(sizeof(float) * kTile * kBPitch);
  static_assert(2 * kTileBytes >= sizeof(float) * kWarps * kStrip * Dims<kD>::kOutPitch, "output stage fits K, V");
};

// A block per (query tile, b, h): dq = scale * dS k, and dS (summed over the batch) into dpos.
template <typename T, int kD>
__global__ void __launch_bounds__(kThreads)
    BackwardQueryKernel(BiasAttentionShape sh, HeadsView q, HeadsView k, HeadsView v, BiasView pos, BiasView mask,
                        HeadsView dout, const float* __restrict__ lse, const float* __restrict__ delta, HeadsOut dq,
                        float* __restrict__ dpos, Dropout drop) {
  using L = QuerySmem<T, kD>;
  extern __shared__ __align__(128) unsigned char smem[];
  T* s_q = reinterpret_cast<T*>(smem + L::kQ);
  T* s_do = reinterpret_cast<T*>(smem + L::kDo);
  T* s_k = reinterpret_cast<T*>(smem + L::kK);
  T* s_v = reinterpret_cast<T*>(smem + L::kV);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* s_s = reinterpret_cast<float*>(smem + L::kS) + warp * kStrip * kSPitch;
  float* s_dp = reinterpret_cast<float*>(smem + L::kDp) + warp * kStrip * kSPitch;
  T* s_ds = reinterpret_cast<T*>(smem + L::kDs) + warp * kStrip * kPPitch;
  float* s_bias = reinterpret_cast<float*>(smem + L::kBias);

  const std::int64_t bh = blockIdx.y, b = bh / sh.heads, h = bh % sh.heads;
  const std::int64_t i0 = static_cast<std::int64_t>(blockIdx.x) * kTile;
  const T* gk = static_cast<const T*>(k.ptr) + b * k.sb + h * k.sh;
  const T* gv = static_cast<const T*>(v.ptr) + b * v.sb + h * v.sh;
  const int r = lane / 2, half = lane % 2;
  const int brow = warp * kStrip + r;
  const std::int64_t i = i0 + brow;
  const float row_lse = i < sh.q_len ? lse[bh * sh.q_len + i] : -INFINITY;
  const float row_delta = i < sh.q_len ? delta[bh * sh.q_len + i] : 0.f;
  const std::uint32_t row_key = drop.threshold != 0 ? RowKey(drop, bh, i) : 0u;

  LoadTile<T, kD>(s_q, static_cast<const T*>(q.ptr) + b * q.sb + h * q.sh, q.sl, i0, sh.q_len);
  LoadTile<T, kD>(s_do, static_cast<const T*>(dout.ptr) + b * dout.sb + h * dout.sh, dout.sl, i0, sh.q_len);
  __syncthreads();
  FragA<T> qf[Dims<kD>::kFrags], dof[Dims<kD>::kFrags];
  LoadStrip<T, kD>(qf, s_q, warp);
  LoadStrip<T, kD>(dof, s_do, warp);
  FragC acc[Dims<kD>::kFrags];
#pragma unroll
  for (int n = 0; n < Dims<kD>::kFrags; ++n) wmma::fill_fragment(acc[n], 0.f);

  for (std::int64_t j0 = 0; j0 < sh.k_len; j0 += kTile) {
    __syncthreads();
    LoadTile<T, kD>(s_k, gk, k.sl, j0, sh.k_len);
    LoadTile<T, kD>(s_v, gv, v.sl, j0, sh.k_len);
    LoadBiasTile<T>(s_bias, pos, mask, b, h, i0, j0, sh.q_len, sh.k_len, false);
    __syncthreads();
    StripTimesTileT<T, kD>(qf, s_k, s_s);
    StripTimesTileT<T, kD>(dof, s_v, s_dp);
    __syncwarp();
#pragma unroll 8
    for (int t = 0; t < kColsPerLane; ++t) {
      const int c = 2 * t + half;
      const float x = s_s[r * kSPitch + c] * sh.scale + s_bias[brow * kBPitch + c];
      const float p = row_lse == -INFINITY ? 0.f : __expf(x - row_lse);
      float z = 1.f;
      if (drop.threshold != 0) {
        z = Keep(drop, row_key, j0 + c) ? drop.keep_scale : 0.f;
      }
      const float ds = p * (s_dp[r * kSPitch + c] * z - row_delta);
      s_s[r * kSPitch + c] = ds;
      s_ds[r * kPPitch + c] = FromFloat<T>(ds);
    }
    __syncwarp();
    if (dpos != nullptr) {  // a row at a time: 32 lanes, consecutive keys
      for (int rr = 0; rr < kStrip; ++rr) {
        const std::int64_t ii = i0 + warp * kStrip + rr;
        if (ii >= sh.q_len) break;
        for (int c = lane; c < kTile; c += 32) {
          const std::int64_t j = j0 + c;
          if (j < sh.k_len) atomicAdd(dpos + (h * sh.q_len + ii) * sh.k_len + j, s_s[rr * kSPitch + c]);
        }
      }
    }
    StripTimesTile<T, kD>(s_ds, s_k, acc);
  }
  __syncthreads();
  float* stage = reinterpret_cast<float*>(smem + L::kK) + warp * kStrip * Dims<kD>::kOutPitch;
  StoreStrip<T, kD>(acc, stage, static_cast<T*>(dq.ptr) + b * dq.sb + h * dq.sh, dq.sl, i0 + warp * kStrip, sh.q_len,
                    sh.scale);
}

template <typename T, int kD>
struct KeySmem {
  static constexpr std::size_t kTileBytes = Align(sizeof(T) * kTile * Dims<kD>::kPitch);
  static constexpr std::size_t kStripF = Align(sizeof(float) * kWarps * kStrip * kSPitch);
  static constexpr std::size_t kStripH = Align(sizeof(T) * kWarps * kStrip * kPPitch);
  static constexpr std::size_t kK = 0, kV = kTileBytes, kQ = 2 * kTileBytes, kDo = 3 * kTileBytes;
  static constexpr std::size_t kS = 4 * kTileBytes, kDp = kS + kStripF, kP = kDp + kStripF, kDs = kP + kStripH;
  static constexpr std::size_t kBias = kDs + kStripH, kLse = kBias + Align(sizeof(float) * kTile * kBPitch);
  static constexpr std::size_t kDelta = kLse + Align(sizeof(float) * kTile);
  static constexpr std::size_t kBytes = kDelta + Align(sizeof(float) * kTile);
  static_assert(2 * kTileBytes >= sizeof(float) * kWarps * kStrip * Dims<kD>::kOutPitch, "output stage fits Q, dO");
};

// A block per (key tile, b, h): dv = P_dropped^T dout, dk = scale * dS^T q.
template <typename T, int kD>
__global__ void __launch_bounds__(kThreads)
    BackwardKeyKernel(BiasAttentionShape sh, HeadsView q, HeadsView k, HeadsView v, BiasView pos, BiasView mask,
                      HeadsView dout, const float* __restrict__ lse, const float* __restrict__ delta, HeadsOut dk,
                      HeadsOut dv, Dropout drop) {
  using L = KeySmem<T, kD>;
  extern __shared__ __align__(128) unsigned char smem[];
  T* s_k = reinterpret_cast<T*>(smem + L::kK);
  T* s_v = reinterpret_cast<T*>(smem + L::kV);
  T* s_q = reinterpret_cast<T*>(smem + L::kQ);
  T* s_do = reinterpret_cast<T*>(smem + L::kDo);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* s_s = reinterpret_cast<float*>(smem + L::kS) + warp * kStrip * kSPitch;  // [key][query]
  float* s_dp = reinterpret_cast<float*>(smem + L::kDp) + warp * kStrip * kSPitch;
  T* s_p = reinterpret_cast<T*>(smem + L::kP) + warp * kStrip * kPPitch;
  T* s_ds = reinterpret_cast<T*>(smem + L::kDs) + warp * kStrip * kPPitch;
  float* s_bias = reinterpret_cast<float*>(smem + L::kBias);  // [key][query]
  float* s_lse = reinterpret_cast<float*>(smem + L::kLse);
  float* s_delta = reinterpret_cast<float*>(smem + L::kDelta);

  const std::int64_t bh = blockIdx.y, b = bh / sh.heads, h = bh % sh.heads;
  const std::int64_t j0 = static_cast<std::int64_t>(blockIdx.x) * kTile;
  const T* gq = static_cast<const T*>(q.ptr) + b * q.sb + h * q.sh;
  const T* gdo = static_cast<const T*>(dout.ptr) + b * dout.sb + h * dout.sh;
  const int r = lane / 2, half = lane % 2;
  const int bkey = warp * kStrip + r;
  const std::int64_t j = j0 + bkey;

  LoadTile<T, kD>(s_k, static_cast<const T*>(k.ptr) + b * k.sb + h * k.sh, k.sl, j0, sh.k_len);
  LoadTile<T, kD>(s_v, static_cast<const T*>(v.ptr) + b * v.sb + h * v.sh, v.sl, j0, sh.k_len);
  __syncthreads();
  FragA<T> kf[Dims<kD>::kFrags], vf[Dims<kD>::kFrags];
  LoadStrip<T, kD>(kf, s_k, warp);
  LoadStrip<T, kD>(vf, s_v, warp);
  FragC acc_dk[Dims<kD>::kFrags], acc_dv[Dims<kD>::kFrags];
#pragma unroll
  for (int n = 0; n < Dims<kD>::kFrags; ++n) {
    wmma::fill_fragment(acc_dk[n], 0.f);
    wmma::fill_fragment(acc_dv[n], 0.f);
  }

  for (std::int64_t i0 = 0; i0 < sh.q_len; i0 += kTile) {
    __syncthreads();
    LoadTile<T, kD>(s_q, gq, q.sl, i0, sh.q_len);
    LoadTile<T, kD>(s_do, gdo, dout.sl, i0, sh.q_len);
    LoadBiasTile<T>(s_bias, pos, mask, b, h, i0, j0, sh.q_len, sh.k_len, true);
    for (int c = threadIdx.x; c < kTile; c += kThreads) {
      const std::int64_t ii = i0 + c;
      s_lse[c] = ii < sh.q_len ? lse[bh * sh.q_len + ii] : -INFINITY;
      s_delta[c] = ii < sh.q_len ? delta[bh * sh.q_len + ii] : 0.f;
    }
    __syncthreads();
    StripTimesTileT<T, kD>(kf, s_q, s_s);
    StripTimesTileT<T, kD>(vf, s_do, s_dp);
    __syncwarp();
#pragma unroll 8
    for (int t = 0; t < kColsPerLane; ++t) {
      const int c = 2 * t + half;
      const float x = s_s[r * kSPitch + c] * sh.scale + s_bias[bkey * kBPitch + c];
      const float lse_c = s_lse[c];
      const float p = lse_c == -INFINITY ? 0.f : __expf(x - lse_c);
      float z = 1.f;
      if (drop.threshold != 0) {
        z = Keep(drop, RowKey(drop, bh, i0 + c), j) ? drop.keep_scale : 0.f;
      }
      s_p[r * kPPitch + c] = FromFloat<T>(p * z);
      s_ds[r * kPPitch + c] = FromFloat<T>(p * (s_dp[r * kSPitch + c] * z - s_delta[c]));
    }
    __syncwarp();
    StripTimesTile<T, kD>(s_p, s_do, acc_dv);
    StripTimesTile<T, kD>(s_ds, s_q, acc_dk);
  }
  __syncthreads();  // Q and dO are free: they stage the outputs
  float* stage = reinterpret_cast<float*>(smem + L::kQ) + warp * kStrip * Dims<kD>::kOutPitch;
  StoreStrip<T, kD>(acc_dk, stage, static_cast<T*>(dk.ptr) + b * dk.sb + h * dk.sh, dk.sl, j0 + warp * kStrip, sh.k_len,
                    sh.scale);
  __syncwarp();
  StoreStrip<T, kD>(acc_dv, stage, static_cast<T*>(dv.ptr) + b * dv.sb + h * dv.sh, dv.sl, j0 + warp * kStrip, sh.k_len,
                    1.f);
}

__global__ void DropoutMaskKernel(BiasAttentionShape sh, Dropout drop, std::uint8_t* __restrict__ keep) {
  const std::int64_t n = sh.batch * sh.heads * sh.q_len * sh.k_len;
  for (std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t j = e % sh.k_len, i = (e / sh.k_len) % sh.q_len, bh = e / (sh.k_len * sh.q_len);
    keep[e] = drop.threshold == 0 || Keep(drop, RowKey(drop, bh, i), j);
  }
}

Dropout DropoutOf(const BiasAttentionShape& s) {
  Dropout d;
  d.seed_lo = static_cast<std::uint32_t>(s.seed);
  d.seed_hi = static_cast<std::uint32_t>(s.seed >> 32);
  const double t = static_cast<double>(s.dropout) * 4294967296.0;
  d.threshold = s.dropout <= 0.f ? 0u : static_cast<std::uint32_t>(t < 4294967295.0 ? t : 4294967295.0);
  if (s.dropout > 0.f && d.threshold == 0) d.threshold = 1;
  d.keep_scale = s.dropout > 0.f ? 1.f / (1.f - s.dropout) : 1.f;
  return d;
}

// Lets `kernel` take `smem` bytes of dynamic shared memory (over the default 48 KiB).
template <typename Kernel>
cudaError_t AllowSmem(Kernel kernel, std::size_t smem) {
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
}

dim3 Grid(std::int64_t rows, const BiasAttentionShape& s) {
  return dim3(static_cast<unsigned>((rows + kTile - 1) / kTile), static_cast<unsigned>(s.batch * s.heads));
}

template <typename T, int kD>
cudaError_t ForwardTD(const BiasAttentionShape& s, HeadsView q, HeadsView k, HeadsView v, BiasView pos, BiasView mask,
                      HeadsOut out, float* lse, cudaStream_t stream) {
  constexpr std::size_t smem = ForwardSmem<T, kD>::kBytes;
  cudaError_t e = AllowSmem(ForwardKernel<T, kD>, smem);
  if (e != cudaSuccess) return e;
  ForwardKernel<T, kD><<<Grid(s.q_len, s), kThreads, smem, stream>>>(s, q, k, v, pos, mask, out, lse, DropoutOf(s));
  return cudaGetLastError();
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
  constexpr std::size_t q_smem = QuerySmem<T, kD>::kBytes, k_smem = KeySmem<T, kD>::kBytes;
  if ((e = AllowSmem(BackwardQueryKernel<T, kD>, q_smem)) != cudaSuccess) return e;
  BackwardQueryKernel<T, kD>
      <<<Grid(s.q_len, s), kThreads, q_smem, stream>>>(s, q, k, v, pos, mask, dout, lse, delta, dq, dpos, DropoutOf(s));
  if ((e = cudaGetLastError()) != cudaSuccess) return e;
  if ((e = AllowSmem(BackwardKeyKernel<T, kD>, k_smem)) != cudaSuccess) return e;
  BackwardKeyKernel<T, kD>
      <<<Grid(s.k_len, s), kThreads, k_smem, stream>>>(s, q, k, v, pos, mask, dout, lse, delta, dk, dv, DropoutOf(s));
  return cudaGetLastError();
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
  constexpr std::int64_t kMaxGridY = 65535, kMaxGridX = 2147483647;
  return s.batch <= kMaxGridY / s.heads && (s.q_len + kTile - 1) / kTile <= kMaxGridX &&
         (s.k_len + kTile - 1) / kTile <= kMaxGridX;
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
