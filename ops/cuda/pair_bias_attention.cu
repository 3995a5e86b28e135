#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "ops/cuda/element.cuh"
#include "ops/cuda/pair_bias_attention.h"

namespace zt::ops::cuda {
namespace {

using element::FromFloat;
using element::ToFloat;

// Every kernel runs 128 threads.  A block owns a tile of kRows rows (query rows in the forward
// and dq passes, key rows in the dk/dv pass) and streams tiles of kCols rows of the other side
// through shared memory.  kGroup consecutive threads (one warp's slice) own one row: each
// computes kColsPerThread of the row's kCols scores (columns g, g+kGroup, ...) and accumulates
// kDimsPerThread of the row's D outputs (dimensions g, g+kGroup, ...).  The head dimension is
// padded with zeros to kD in {16, 32, 64, 128}, so any D <= 128 works.  Shared rows are padded
// by one float to spread the banks.  Everything stays under the 48 KiB of static shared memory.
constexpr int kThreads = 128;
constexpr unsigned kFullMask = 0xffffffffu;

template <int kD>
struct Tiles {
  static constexpr int kRows = kD > 64 ? 16 : 32;
  static constexpr int kCols = kRows;
  static constexpr int kGroup = kThreads / kRows;  // 4 or 8 threads per owned row
  static constexpr int kColsPerThread = kCols / kGroup;
  static constexpr int kDimsPerThread = kD / kGroup;
  static constexpr int kStride = kD + 1;         // a [rows, kD] tile's row in shared memory
  static constexpr int kTileStride = kCols + 1;  // a [kRows, kCols] score tile's row
  static_assert(32 % kGroup == 0, "a row's threads must sit in one warp");
  static_assert(kCols % kGroup == 0 && kD % kGroup == 0, "tiles must split evenly");
};

// Reductions over the kGroup threads of one row (consecutive lanes of one warp).  Every lane of
// the warp must call them.
template <int kGroup>
__device__ __forceinline__ float GroupMax(float x) {
#pragma unroll
  for (int o = 1; o < kGroup; o <<= 1) x = fmaxf(x, __shfl_xor_sync(kFullMask, x, o));
  return x;
}
template <int kGroup>
__device__ __forceinline__ float GroupSum(float x) {
#pragma unroll
  for (int o = 1; o < kGroup; o <<= 1) x += __shfl_xor_sync(kFullMask, x, o);
  return x;
}

// s[r][c] = g[first + r][c] as float for r < rows, c < kD; zero past n rows or d columns.
template <typename T, int kD>
__device__ __forceinline__ void LoadRows(float* __restrict__ s, const T* __restrict__ g, std::int64_t first, int rows,
                                         std::int64_t n, int d) {
  for (int idx = threadIdx.x; idx < rows * kD; idx += kThreads) {
    const int r = idx / kD, c = idx % kD;
    const std::int64_t row = first + r;
    s[r * (kD + 1) + c] = (row < n && c < d) ? ToFloat(g[row * d + c]) : 0.f;
  }
}

// s[r][c] = bias[row0 + r][col0 + c] for the [kRows, kCols] tile, -inf where the key col0 + c
// is padded or either index is past n.  Coalesced: consecutive threads read consecutive keys.
template <typename T, int kD>
__device__ __forceinline__ void LoadBiasTile(float* __restrict__ s, const T* __restrict__ bias,
                                             const bool* __restrict__ key_mask, std::int64_t row0, std::int64_t col0,
                                             std::int64_t n) {
  using C = Tiles<kD>;
  for (int idx = threadIdx.x; idx < C::kRows * C::kCols; idx += kThreads) {
    const int r = idx / C::kCols, c = idx % C::kCols;
    const std::int64_t i = row0 + r, j = col0 + c;
    s[r * C::kTileStride + c] = (i < n && j < n && key_mask[j]) ? ToFloat(bias[i * n + j]) : -INFINITY;
  }
}

template <typename T, int kD>
__global__ void __launch_bounds__(kThreads)
    ForwardKernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, const T* __restrict__ bias,
                  const bool* __restrict__ key_mask, std::int64_t heads, std::int64_t n, int d, float scale,
                  T* __restrict__ out, float* __restrict__ lse) {
  using C = Tiles<kD>;
  __shared__ float s_q[C::kRows * C::kStride];
  __shared__ float s_k[C::kCols * C::kStride];
  __shared__ float s_v[C::kCols * C::kStride];
  __shared__ float s_p[C::kRows * C::kTileStride];  // bias, then probabilities

  const std::int64_t bh = blockIdx.x, b = bh / heads;
  const std::int64_t row0 = static_cast<std::int64_t>(blockIdx.y) * C::kRows;
  q += bh * n * d;
  k += bh * n * d;
  v += bh * n * d;
  out += bh * n * d;
  bias += bh * n * n;
  key_mask += b * n;
  lse += bh * n;

  const int r = threadIdx.x / C::kGroup, g = threadIdx.x % C::kGroup;
  const std::int64_t row = row0 + r;
  LoadRows<T, kD>(s_q, q, row0, C::kRows, n, d);

  float m = -INFINITY;  // running row maximum
  float l = 0.f;        // running sum of exp(score - m)
  float acc[C::kDimsPerThread];
#pragma unroll
  for (int x = 0; x < C::kDimsPerThread; ++x) acc[x] = 0.f;

  for (std::int64_t col0 = 0; col0 < n; col0 += C::kCols) {
    __syncthreads();  // the previous tile is consumed
    LoadRows<T, kD>(s_k, k, col0, C::kCols, n, d);
    LoadRows<T, kD>(s_v, v, col0, C::kCols, n, d);
    LoadBiasTile<T, kD>(s_p, bias, key_mask, row0, col0, n);
    __syncthreads();

    // The row's dots with this thread's kColsPerThread keys, as independent sums.
    float s[C::kColsPerThread];
#pragma unroll
    for (int x = 0; x < C::kColsPerThread; ++x) s[x] = 0.f;
#pragma unroll 8
    for (int e = 0; e < kD; ++e) {
      const float q_e = s_q[r * C::kStride + e];
#pragma unroll
      for (int x = 0; x < C::kColsPerThread; ++x) s[x] += q_e * s_k[(g + x * C::kGroup) * C::kStride + e];
    }
    float tile_max = -INFINITY;
#pragma unroll
    for (int x = 0; x < C::kColsPerThread; ++x) {
      const float b_rc = s_p[r * C::kTileStride + g + x * C::kGroup];
      s[x] = b_rc == -INFINITY ? -INFINITY : s[x] * scale + b_rc;  // -inf: padded key, or past n
      tile_max = fmaxf(tile_max, s[x]);
    }
    tile_max = GroupMax<C::kGroup>(tile_max);
    const float m_new = fmaxf(m, tile_max);
    // While every key so far is padded, m_new is -inf: subtract 0 instead so that exp sees
    // -inf - 0 = -inf (0) rather than -inf - -inf (NaN).
    const float m_ref = m_new == -INFINITY ? 0.f : m_new;
    const float alpha = expf(m - m_ref);  // 0 when m is -inf
    float p_sum = 0.f;
#pragma unroll
    for (int x = 0; x < C::kColsPerThread; ++x) {
      const float p = expf(s[x] - m_ref);
      s_p[r * C::kTileStride + g + x * C::kGroup] = p;
      p_sum += p;
    }
    p_sum = GroupSum<C::kGroup>(p_sum);
    l = l * alpha + p_sum;
    m = m_new;
    __syncwarp();  // the row's probabilities are visible to its kGroup threads
#pragma unroll
    for (int x = 0; x < C::kDimsPerThread; ++x) acc[x] *= alpha;
#pragma unroll 4
    for (int c = 0; c < C::kCols; ++c) {
      const float p = s_p[r * C::kTileStride + c];
#pragma unroll
      for (int x = 0; x < C::kDimsPerThread; ++x) acc[x] += p * s_v[c * C::kStride + g + x * C::kGroup];
    }
  }

  if (row < n) {
    const float inv_l = l > 0.f ? 1.f / l : 0.f;  // every key padded: the row is 0
#pragma unroll
    for (int x = 0; x < C::kDimsPerThread; ++x) {
      const int e = g + x * C::kGroup;
      if (e < d) out[row * d + e] = FromFloat<T>(acc[x] * inv_l);
    }
    if (g == 0) lse[row] = l > 0.f ? m + logf(l) : -INFINITY;
  }
}

// delta[i] = sum_e dout[i][e] * out[i][e], one thread per row of [B*H*N, d].
template <typename T>
__global__ void DeltaKernel(const T* __restrict__ out, const T* __restrict__ dout, std::int64_t rows, int d,
                            float* __restrict__ delta) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows) return;
  float sum = 0.f;
  for (int e = 0; e < d; ++e) sum += ToFloat(dout[i * d + e]) * ToFloat(out[i * d + e]);
  delta[i] = sum;
}

// P[i][j] = exp(scale * q_i·k_j + bias[i][j] - lse_i), 0 for padded keys and where lse_i = -inf.
// dP[i][j] = dout_i·v_j, dS = P * (dP - delta_i).

// The query pass: a block per (b, h, query tile) writes dq = scale * dS·k and dbias = dS.
template <typename T, int kD>
__global__ void __launch_bounds__(kThreads)
    BackwardQueryKernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                        const T* __restrict__ bias, const bool* __restrict__ key_mask, const T* __restrict__ dout,
                        const float* __restrict__ lse, const float* __restrict__ delta, std::int64_t heads,
                        std::int64_t n, int d, float scale, T* __restrict__ dq, T* __restrict__ dbias) {
  using C = Tiles<kD>;
  __shared__ float s_q[C::kRows * C::kStride];
  __shared__ float s_do[C::kRows * C::kStride];
  __shared__ float s_k[C::kCols * C::kStride];
  __shared__ float s_v[C::kCols * C::kStride];
  __shared__ float s_ds[C::kRows * C::kTileStride];  // bias, then dS

  const std::int64_t bh = blockIdx.x, b = bh / heads;
  const std::int64_t row0 = static_cast<std::int64_t>(blockIdx.y) * C::kRows;
  q += bh * n * d;
  k += bh * n * d;
  v += bh * n * d;
  dout += bh * n * d;
  dq += bh * n * d;
  bias += bh * n * n;
  dbias += bh * n * n;
  key_mask += b * n;
  lse += bh * n;
  delta += bh * n;

  const int r = threadIdx.x / C::kGroup, g = threadIdx.x % C::kGroup;
  const std::int64_t row = row0 + r;
  const float row_lse = row < n ? lse[row] : -INFINITY;
  const bool live = row_lse > -INFINITY;  // false past n and where every key is padded
  const float row_delta = row < n ? delta[row] : 0.f;
  LoadRows<T, kD>(s_q, q, row0, C::kRows, n, d);
  LoadRows<T, kD>(s_do, dout, row0, C::kRows, n, d);

  float acc[C::kDimsPerThread];
#pragma unroll
  for (int x = 0; x < C::kDimsPerThread; ++x) acc[x] = 0.f;

  for (std::int64_t col0 = 0; col0 < n; col0 += C::kCols) {
    __syncthreads();  // the previous tile is consumed (dbias stored, dq accumulated)
    LoadRows<T, kD>(s_k, k, col0, C::kCols, n, d);
    LoadRows<T, kD>(s_v, v, col0, C::kCols, n, d);
    LoadBiasTile<T, kD>(s_ds, bias, key_mask, row0, col0, n);
    __syncthreads();

    float qk[C::kColsPerThread], dp[C::kColsPerThread];
#pragma unroll
    for (int x = 0; x < C::kColsPerThread; ++x) qk[x] = dp[x] = 0.f;
#pragma unroll 8
    for (int e = 0; e < kD; ++e) {
      const float q_e = s_q[r * C::kStride + e], do_e = s_do[r * C::kStride + e];
#pragma unroll
      for (int x = 0; x < C::kColsPerThread; ++x) {
        const int c = g + x * C::kGroup;
        qk[x] += q_e * s_k[c * C::kStride + e];
        dp[x] += do_e * s_v[c * C::kStride + e];
      }
    }
#pragma unroll
    for (int x = 0; x < C::kColsPerThread; ++x) {
      const int c = g + x * C::kGroup;
      const float b_rc = s_ds[r * C::kTileStride + c];
      float ds = 0.f;
      if (live && b_rc != -INFINITY) ds = expf(qk[x] * scale + b_rc - row_lse) * (dp[x] - row_delta);
      s_ds[r * C::kTileStride + c] = ds;
    }
    __syncthreads();  // the whole dS tile is written

    // dbias = dS, coalesced; every in-range element (padded keys get 0).
    for (int idx = threadIdx.x; idx < C::kRows * C::kCols; idx += kThreads) {
      const int rr = idx / C::kCols, cc = idx % C::kCols;
      const std::int64_t i = row0 + rr, j = col0 + cc;
      if (i < n && j < n) dbias[i * n + j] = FromFloat<T>(s_ds[rr * C::kTileStride + cc]);
    }
#pragma unroll 4
    for (int c = 0; c < C::kCols; ++c) {
      const float ds = s_ds[r * C::kTileStride + c];
#pragma unroll
      for (int x = 0; x < C::kDimsPerThread; ++x) acc[x] += ds * s_k[c * C::kStride + g + x * C::kGroup];
    }
  }

  if (row < n) {
#pragma unroll
    for (int x = 0; x < C::kDimsPerThread; ++x) {
      const int e = g + x * C::kGroup;
      if (e < d) dq[row * d + e] = FromFloat<T>(acc[x] * scale);
    }
  }
}

// The key pass: a block per (b, h, key tile) writes dv = P^T·dout and dk = scale * dS^T·q.
template <typename T, int kD>
__global__ void __launch_bounds__(kThreads)
    BackwardKeyKernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                      const T* __restrict__ bias, const bool* __restrict__ key_mask, const T* __restrict__ dout,
                      const float* __restrict__ lse, const float* __restrict__ delta, std::int64_t heads,
                      std::int64_t n, int d, float scale, T* __restrict__ dk, T* __restrict__ dv) {
  using C = Tiles<kD>;
  __shared__ float s_k[C::kRows * C::kStride];
  __shared__ float s_v[C::kRows * C::kStride];
  __shared__ float s_q[C::kCols * C::kStride];
  __shared__ float s_do[C::kCols * C::kStride];
  __shared__ float s_p[C::kRows * C::kTileStride];   // [key][query]: P
  __shared__ float s_ds[C::kRows * C::kTileStride];  // [key][query]: bias, then dS
  __shared__ float s_lse[C::kCols];
  __shared__ float s_delta[C::kCols];

  const std::int64_t bh = blockIdx.x, b = bh / heads;
  const std::int64_t key0 = static_cast<std::int64_t>(blockIdx.y) * C::kRows;
  q += bh * n * d;
  k += bh * n * d;
  v += bh * n * d;
  dout += bh * n * d;
  dk += bh * n * d;
  dv += bh * n * d;
  bias += bh * n * n;
  key_mask += b * n;
  lse += bh * n;
  delta += bh * n;

  const int r = threadIdx.x / C::kGroup, g = threadIdx.x % C::kGroup;
  const std::int64_t key = key0 + r;
  const bool key_live = key < n && key_mask[key];  // a padded key gets dk = dv = 0
  LoadRows<T, kD>(s_k, k, key0, C::kRows, n, d);
  LoadRows<T, kD>(s_v, v, key0, C::kRows, n, d);

  float acc_dk[C::kDimsPerThread], acc_dv[C::kDimsPerThread];
#pragma unroll
  for (int x = 0; x < C::kDimsPerThread; ++x) acc_dk[x] = acc_dv[x] = 0.f;

  for (std::int64_t col0 = 0; col0 < n; col0 += C::kCols) {
    __syncthreads();  // the previous query tile is consumed
    LoadRows<T, kD>(s_q, q, col0, C::kCols, n, d);
    LoadRows<T, kD>(s_do, dout, col0, C::kCols, n, d);
    for (int c = threadIdx.x; c < C::kCols; c += kThreads) {
      const std::int64_t i = col0 + c;
      s_lse[c] = i < n ? lse[i] : -INFINITY;
      s_delta[c] = i < n ? delta[i] : 0.f;
    }
    // s_ds[key r][query c] = bias[col0 + c][key0 + r]: consecutive threads, consecutive keys.
    for (int idx = threadIdx.x; idx < C::kRows * C::kCols; idx += kThreads) {
      const int c = idx / C::kRows, rr = idx % C::kRows;
      const std::int64_t i = col0 + c, j = key0 + rr;
      s_ds[rr * C::kTileStride + c] = (i < n && j < n) ? ToFloat(bias[i * n + j]) : 0.f;
    }
    __syncthreads();

    float qk[C::kColsPerThread], dp[C::kColsPerThread];
#pragma unroll
    for (int x = 0; x < C::kColsPerThread; ++x) qk[x] = dp[x] = 0.f;
#pragma unroll 8
    for (int e = 0; e < kD; ++e) {
      const float k_e = s_k[r * C::kStride + e], v_e = s_v[r * C::kStride + e];
#pragma unroll
      for (int x = 0; x < C::kColsPerThread; ++x) {
        const int c = g + x * C::kGroup;
        qk[x] += s_q[c * C::kStride + e] * k_e;
        dp[x] += s_do[c * C::kStride + e] * v_e;
      }
    }
#pragma unroll
    for (int x = 0; x < C::kColsPerThread; ++x) {
      const int c = g + x * C::kGroup;
      const float lse_c = s_lse[c];
      float p = 0.f, ds = 0.f;
      if (key_live && lse_c > -INFINITY) {
        p = expf(qk[x] * scale + s_ds[r * C::kTileStride + c] - lse_c);
        ds = p * (dp[x] - s_delta[c]);
      }
      s_p[r * C::kTileStride + c] = p;
      s_ds[r * C::kTileStride + c] = ds;
    }
    __syncwarp();  // the row's P and dS are visible to its kGroup threads
#pragma unroll 4
    for (int c = 0; c < C::kCols; ++c) {
      const float p = s_p[r * C::kTileStride + c], ds = s_ds[r * C::kTileStride + c];
#pragma unroll
      for (int x = 0; x < C::kDimsPerThread; ++x) {
        const int e = g + x * C::kGroup;
        acc_dv[x] += p * s_do[c * C::kStride + e];
        acc_dk[x] += ds * s_q[c * C::kStride + e];
      }
    }
  }

  if (key < n) {
#pragma unroll
    for (int x = 0; x < C::kDimsPerThread; ++x) {
      const int e = g + x * C::kGroup;
      if (e < d) {
        dk[key * d + e] = FromFloat<T>(acc_dk[x] * scale);
        dv[key * d + e] = FromFloat<T>(acc_dv[x]);
      }
    }
  }
}

template <int kD>
dim3 Grid(const PairBiasAttentionSizes& s) {
  return dim3(static_cast<unsigned>(s.batch * s.heads),
              static_cast<unsigned>((s.n + Tiles<kD>::kRows - 1) / Tiles<kD>::kRows));
}

template <typename T, int kD>
cudaError_t ForwardD(const PairBiasAttentionSizes& s, const void* q, const void* k, const void* v, const void* bias,
                     const bool* key_mask, float scale, void* out, float* lse, cudaStream_t stream) {
  ForwardKernel<T, kD><<<Grid<kD>(s), kThreads, 0, stream>>>(
      static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v), static_cast<const T*>(bias),
      key_mask, s.heads, s.n, static_cast<int>(s.head_dim), scale, static_cast<T*>(out), lse);
  return cudaGetLastError();
}

template <typename T, int kD>
cudaError_t BackwardD(const PairBiasAttentionSizes& s, const void* q, const void* k, const void* v, const void* bias,
                      const bool* key_mask, float scale, const void* dout, const float* lse, const float* delta,
                      void* dq, void* dk, void* dv, void* dbias, cudaStream_t stream) {
  const int d = static_cast<int>(s.head_dim);
  BackwardQueryKernel<T, kD><<<Grid<kD>(s), kThreads, 0, stream>>>(
      static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v), static_cast<const T*>(bias),
      key_mask, static_cast<const T*>(dout), lse, delta, s.heads, s.n, d, scale, static_cast<T*>(dq),
      static_cast<T*>(dbias));
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  BackwardKeyKernel<T, kD><<<Grid<kD>(s), kThreads, 0, stream>>>(
      static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v), static_cast<const T*>(bias),
      key_mask, static_cast<const T*>(dout), lse, delta, s.heads, s.n, d, scale, static_cast<T*>(dk),
      static_cast<T*>(dv));
  return cudaGetLastError();
}

template <typename T>
cudaError_t ForwardT(const PairBiasAttentionSizes& s, const void* q, const void* k, const void* v, const void* bias,
                     const bool* key_mask, float scale, void* out, float* lse, cudaStream_t stream) {
  if (s.head_dim <= 16) return ForwardD<T, 16>(s, q, k, v, bias, key_mask, scale, out, lse, stream);
  if (s.head_dim <= 32) return ForwardD<T, 32>(s, q, k, v, bias, key_mask, scale, out, lse, stream);
  if (s.head_dim <= 64) return ForwardD<T, 64>(s, q, k, v, bias, key_mask, scale, out, lse, stream);
  return ForwardD<T, 128>(s, q, k, v, bias, key_mask, scale, out, lse, stream);
}

template <typename T>
cudaError_t BackwardT(const PairBiasAttentionSizes& s, const void* q, const void* k, const void* v, const void* bias,
                      const bool* key_mask, float scale, const void* out, const void* dout, const float* lse,
                      float* delta, void* dq, void* dk, void* dv, void* dbias, cudaStream_t stream) {
  const std::int64_t rows = s.batch * s.heads * s.n;
  constexpr int kDeltaThreads = 256;
  DeltaKernel<T><<<static_cast<unsigned>((rows + kDeltaThreads - 1) / kDeltaThreads), kDeltaThreads, 0, stream>>>(
      static_cast<const T*>(out), static_cast<const T*>(dout), rows, static_cast<int>(s.head_dim), delta);
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  if (s.head_dim <= 16)
    return BackwardD<T, 16>(s, q, k, v, bias, key_mask, scale, dout, lse, delta, dq, dk, dv, dbias, stream);
  if (s.head_dim <= 32)
    return BackwardD<T, 32>(s, q, k, v, bias, key_mask, scale, dout, lse, delta, dq, dk, dv, dbias, stream);
  if (s.head_dim <= 64)
    return BackwardD<T, 64>(s, q, k, v, bias, key_mask, scale, dout, lse, delta, dq, dk, dv, dbias, stream);
  return BackwardD<T, 128>(s, q, k, v, bias, key_mask, scale, dout, lse, delta, dq, dk, dv, dbias, stream);
}

bool Empty(const PairBiasAttentionSizes& s) { return s.batch == 0 || s.heads == 0 || s.n == 0; }

}  // namespace

bool PairBiasAttentionSupports(const PairBiasAttentionSizes& s) {
  if (s.batch < 0 || s.heads < 0 || s.n < 0) return false;
  if (s.head_dim < 1 || s.head_dim > kPairBiasAttentionMaxHeadDim) return false;
  if (Empty(s)) return true;
  constexpr std::int64_t kMaxGridX = std::numeric_limits<std::int32_t>::max(), kMaxGridY = 65535;
  const std::int64_t min_rows_per_block = 16;
  return s.batch <= kMaxGridX / s.heads && (s.n + min_rows_per_block - 1) / min_rows_per_block <= kMaxGridY &&
         s.batch * s.heads * s.n <= kMaxGridX;
}

cudaError_t LaunchPairBiasAttentionForward(ElementType dtype, const PairBiasAttentionSizes& sizes, const void* q,
                                           const void* k, const void* v, const void* bias, const bool* key_mask,
                                           float scale, void* out, float* lse, cudaStream_t stream) {
  if (!PairBiasAttentionSupports(sizes)) return cudaErrorInvalidValue;
  if (Empty(sizes)) return cudaSuccess;
  switch (dtype) {
    case ElementType::kFloat32:
      return ForwardT<float>(sizes, q, k, v, bias, key_mask, scale, out, lse, stream);
    case ElementType::kBFloat16:
      return ForwardT<__nv_bfloat16>(sizes, q, k, v, bias, key_mask, scale, out, lse, stream);
    case ElementType::kFloat16:
      return ForwardT<__half>(sizes, q, k, v, bias, key_mask, scale, out, lse, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t LaunchPairBiasAttentionBackward(ElementType dtype, const PairBiasAttentionSizes& sizes, const void* q,
                                            const void* k, const void* v, const void* bias, const bool* key_mask,
                                            float scale, const void* out, const void* dout, const float* lse,
                                            float* delta, void* dq, void* dk, void* dv, void* dbias,
                                            cudaStream_t stream) {
  if (!PairBiasAttentionSupports(sizes)) return cudaErrorInvalidValue;
  if (Empty(sizes)) return cudaSuccess;
  switch (dtype) {
    case ElementType::kFloat32:
      return BackwardT<float>(sizes, q, k, v, bias, key_mask, scale, out, dout, lse, delta, dq, dk, dv, dbias, stream);
    case ElementType::kBFloat16:
      return BackwardT<__nv_bfloat16>(sizes, q, k, v, bias, key_mask, scale, out, dout, lse, delta, dq, dk, dv, dbias,
                                      stream);
    case ElementType::kFloat16:
      return BackwardT<__half>(sizes, q, k, v, bias, key_mask, scale, out, dout, lse, delta, dq, dk, dv, dbias, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace zt::ops::cuda
