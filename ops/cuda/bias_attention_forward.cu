// T5 attention, forward: one pass over the keys with an online softmax (bias_attention_tiles.cuh
// has the tiling), and the dropout pattern as a mask for tests.
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
        s[n][2 * r] = fmaf(s[n][2 * r], sh.scale, add.x);
        s[n][2 * r + 1] = fmaf(s[n][2 * r + 1], sh.scale, add.y);
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
    float nb[2];  // -base * log2(e): p = 2^(s log2(e) + nb)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(kFullMask, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(kFullMask, mx[r], 2));
      const float base = mx[r] == -INFINITY ? 0.f : mx[r];  // a row with no key yet stays at zero
      const float alpha = Exp2((m[r] - base) * kLog2e);
      nb[r] = -base * kLog2e;
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
        const float p0 = Exp2(fmaf(s[n][2 * r], kLog2e, nb[r])), p1 = Exp2(fmaf(s[n][2 * r + 1], kLog2e, nb[r]));
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
          s[n][2 * r] = KeptLow(drop, d) ? s[n][2 * r] : 0.f;  // 1 / (1 - p) is applied at the end
          s[n][2 * r + 1] = KeptHigh(drop, d) ? s[n][2 * r + 1] : 0.f;
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
    const float inv = l[r] > 0.f ? drop.keep_scale / l[r] : 0.f;
    const float base = m[r] == -INFINITY ? 0.f : m[r];
    // In base 2, as the backward exponentiates: p = 2^(s log2(e) - lse); +inf makes a row with no key p = 0.
    if (t4 == 0) lse[bh * sh.q_len + i] = l[r] > 0.f ? base * kLog2e + __log2f(l[r]) : INFINITY;
#pragma unroll
    for (int n = 0; n < kDT; ++n) {
      *reinterpret_cast<std::uint32_t*>(go + i * out.sl + n * 8 + 2 * t4) =
          Pack<T>(acc[n][2 * r] * inv, acc[n][2 * r + 1] * inv);
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

template <typename T, int kD, bool kPos, bool kMask>
struct ForwardFn {
  static constexpr auto kFn = ForwardKernel<T, kD, kPos, kMask>;
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

}  // namespace
}  // namespace attention

bool BiasAttentionSupports(const BiasAttentionShape& s) {
  if (s.batch < 0 || s.heads < 0 || s.q_len < 0 || s.k_len < 0) return false;
  if (s.head_dim != 64 && s.head_dim != 128) return false;
  if (!(s.dropout >= 0.f && s.dropout < 1.f)) return false;
  if (attention::Empty(s)) return true;
  constexpr std::int64_t kMaxLen = 1 << 30;  // the kernels index rows and keys in 32 bits
  if (s.q_len > kMaxLen || s.k_len > kMaxLen) return false;
  constexpr std::int64_t kMaxGridY = 65535, kMaxGridX = 2147483647;
  return s.batch <= kMaxGridY / s.heads && (s.q_len + attention::kM - 1) / attention::kM <= kMaxGridX &&
         (s.k_len + attention::kM - 1) / attention::kM <= kMaxGridX;
}

cudaError_t LaunchBiasAttentionForward(ElementType dtype, const BiasAttentionShape& s, HeadsView q, HeadsView k,
                                       HeadsView v, BiasView pos, BiasView mask, HeadsOut out, float* lse,
                                       cudaStream_t stream) {
  if (!BiasAttentionSupports(s)) return cudaErrorInvalidValue;
  if (attention::Empty(s)) return cudaSuccess;
  if (!attention::Aligned(q) || !attention::Aligned(k) || !attention::Aligned(v) || !attention::Aligned(out))
    return cudaErrorInvalidValue;
  if (dtype == ElementType::kFloat32) return cudaErrorInvalidValue;  // 16-bit kernels only
  const bool bf16 = dtype == ElementType::kBFloat16;
  if (s.head_dim == 64) {
    return bf16 ? attention::ForwardTD<__nv_bfloat16, 64>(s, q, k, v, pos, mask, out, lse, stream)
                : attention::ForwardTD<__half, 64>(s, q, k, v, pos, mask, out, lse, stream);
  }
  return bf16 ? attention::ForwardTD<__nv_bfloat16, 128>(s, q, k, v, pos, mask, out, lse, stream)
              : attention::ForwardTD<__half, 128>(s, q, k, v, pos, mask, out, lse, stream);
}

cudaError_t LaunchBiasAttentionDropoutMask(const BiasAttentionShape& s, std::uint8_t* keep, cudaStream_t stream) {
  if (!BiasAttentionSupports(s)) return cudaErrorInvalidValue;
  if (attention::Empty(s)) return cudaSuccess;
  attention::DropoutMaskKernel<<<1024, 256, 0, stream>>>(s, attention::DropoutOf(s), keep);
  return cudaGetLastError();
}

}  // namespace zt::ops::cuda
