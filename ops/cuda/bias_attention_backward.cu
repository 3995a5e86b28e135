// T5 attention, backward: delta = rowsum(dout * out), then one pass over the keys per query tile
// (dq, and dpos summed over the batch) and one over the queries per key tile (dk, dv).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "ops/cuda/bias_attention.h"
#include "ops/cuda/bias_attention_tiles.cuh"

namespace zt::ops::cuda {
namespace attention {
namespace {

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
  float row_lse2[2], row_delta[2];  // lse is in base 2: p = 2^(s log2(e) - lse)
  std::uint32_t row_key[2] = {0u, 0u};
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const std::int64_t i = i0 + row[r];
    row_lse2[r] = i < sh.q_len ? lse[bh * sh.q_len + i] : INFINITY;  // a row with no key (or none at all): p = 0
    row_delta[r] = i < sh.q_len ? delta[bh * sh.q_len + i] : 0.f;
    if (drop.threshold != 0) row_key[r] = RowKey(drop, bh, i);
  }
  float* const dpos_tile = dpos != nullptr ? dpos + (h * sh.q_len + i0) * sh.k_len : nullptr;  // the tile's rows
  const int rows_in = static_cast<int>(sh.q_len - i0);  // rows of this tile that exist
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
        s[n][2 * r] = fmaf(s[n][2 * r], sh.scale, add.x);
        s[n][2 * r + 1] = fmaf(s[n][2 * r + 1], sh.scale, add.y);
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
    if (drop.threshold != 0) {  // dP of the dropped product: dp * z, z = kept / (1 - p) (applied below)
#pragma unroll
      for (int n = 0; n < kNT; ++n) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const std::uint32_t d = Draws(row_key[r], jt + n * 8 + 2 * t4);
          dp[n][2 * r] = KeptLow(drop, d) ? dp[n][2 * r] : 0.f;
          dp[n][2 * r + 1] = KeptHigh(drop, d) ? dp[n][2 * r + 1] : 0.f;
        }
      }
    }
#pragma unroll
    for (int n = 0; n < kNT; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float p = Exp2(fmaf(s[n][e], kLog2e, -row_lse2[e / 2]));
        s[n][e] = p * fmaf(dp[n][e], drop.keep_scale, -row_delta[e / 2]);  // dS
      }
    }
    if (dpos_tile != nullptr) {
#pragma unroll
      for (int n = 0; n < kNT; ++n) {
        const int j = jt + n * 8 + 2 * t4;
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          if (row[r] >= rows_in || j >= lk) continue;
          float* dst = dpos_tile + row[r] * sh.k_len + j;
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
    // The queries' lse and delta come in with the tiles (a synchronous load here would hold
    // every warp at the next barrier); past the end both are 0, which is harmless: those rows
    // of q and dout are zero, so their p meets zeros in every product.
    for (int c = threadIdx.x; c < kN; c += kThreads) {
      const std::int64_t i = i0 + c;
      const bool ok = i < sh.q_len;
      CpAsync4(s_lse(st) + c, ok ? lse + bh * sh.q_len + i : lse, ok);
      CpAsync4(s_delta(st) + c, ok ? delta + bh * sh.q_len + i : delta, ok);
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
        s[n][e] = Exp2(fmaf(fmaf(s[n][e], sh.scale, add.x), kLog2e, -l_c));
        s[n][2 + e] = Exp2(fmaf(fmaf(s[n][2 + e], sh.scale, add.y), kLog2e, -l_c));
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
          const bool k0 = KeptLow(drop, d), k1 = KeptHigh(drop, d);
          dp[n][e] = s[n][e] * fmaf(k0 ? dp[n][e] : 0.f, drop.keep_scale, -d_c);  // dS, for dk
          dp[n][2 + e] = s[n][2 + e] * fmaf(k1 ? dp[n][2 + e] : 0.f, drop.keep_scale, -d_c);
          s[n][e] = k0 ? s[n][e] : 0.f;  // the kept probabilities, for dv (1 / (1 - p) at the end)
          s[n][2 + e] = k1 ? s[n][2 + e] : 0.f;
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
          Pack<T>(acc_dv[n][2 * r] * drop.keep_scale, acc_dv[n][2 * r + 1] * drop.keep_scale);
    }
  }
}

template <typename T, int kD, bool kPos, bool kMask>
struct QueryFn {
  static constexpr auto kFn = BackwardQueryKernel<T, kD, kPos, kMask>;
};
template <typename T, int kD, bool kPos, bool kMask>
struct KeyFn {
  static constexpr auto kFn = BackwardKeyKernel<T, kD, kPos, kMask>;
};
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

}  // namespace
}  // namespace attention

cudaError_t LaunchBiasAttentionBackward(ElementType dtype, const BiasAttentionShape& s, HeadsView q, HeadsView k,
                                        HeadsView v, BiasView pos, BiasView mask, HeadsView out, HeadsView dout,
                                        const float* lse, float* delta, HeadsOut dq, HeadsOut dk, HeadsOut dv,
                                        float* dpos, cudaStream_t stream) {
  if (!BiasAttentionSupports(s)) return cudaErrorInvalidValue;
  if (attention::Empty(s)) return cudaSuccess;
  if (!attention::Aligned(q) || !attention::Aligned(k) || !attention::Aligned(v) || !attention::Aligned(dout) ||
      !attention::Aligned(dq) || !attention::Aligned(dk) || !attention::Aligned(dv)) {
    return cudaErrorInvalidValue;
  }
  if (dtype == ElementType::kFloat32) return cudaErrorInvalidValue;  // 16-bit kernels only
  const bool bf16 = dtype == ElementType::kBFloat16;
  if (s.head_dim == 64) {
    return bf16 ? attention::BackwardTD<__nv_bfloat16, 64>(s, q, k, v, pos, mask, out, dout, lse, delta, dq, dk, dv,
                                                           dpos, stream)
                : attention::BackwardTD<__half, 64>(s, q, k, v, pos, mask, out, dout, lse, delta, dq, dk, dv, dpos,
                                                    stream);
  }
  return bf16 ? attention::BackwardTD<__nv_bfloat16, 128>(s, q, k, v, pos, mask, out, dout, lse, delta, dq, dk, dv,
                                                          dpos, stream)
              : attention::BackwardTD<__half, 128>(s, q, k, v, pos, mask, out, dout, lse, delta, dq, dk, dv, dpos,
                                                   stream);
}
}  // namespace zt::ops::cuda
