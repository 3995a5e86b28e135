#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "ops/cuda/element.cuh"
#include "ops/cuda/fused_adam.h"

namespace zt::ops::cuda {
namespace {

using element::FromFloat;
using element::ToFloat;

constexpr int kThreads = 256;
constexpr int kPerThread = 4;  // elements per thread per tile
constexpr std::int64_t kTile = static_cast<std::int64_t>(kThreads) * kPerThread;

// Kernel parameters: the chunks and the first tile of each (a prefix sum), passed by value.
struct ChunkList {
  AdamChunk chunk[kFusedAdamMaxChunks];
  std::int64_t first_tile[kFusedAdamMaxChunks + 1];
  int count;
};

// AdamReference's arithmetic with explicit round-to-nearest operations: nvcc would otherwise
// contract a*b+c into fused multiply-adds and the results would drift from the CPU's.
template <typename Out>
__global__ void __launch_bounds__(kThreads)
    FusedAdamKernel(ChunkList list, FusedAdamArgs a, const int* __restrict__ skip_if, int* __restrict__ nonfinite) {
  if (skip_if != nullptr && *skip_if != 0) return;
  const std::int64_t tile = blockIdx.x;
  int c = 0;
  while (c + 1 < list.count && tile >= list.first_tile[c + 1]) ++c;
  const AdamChunk& ch = list.chunk[c];
  const std::int64_t base = (tile - list.first_tile[c]) * kTile;
  Out* out16 = static_cast<Out*>(ch.out16);
  const float grad_scale =
      a.device_grad_scale != nullptr ? __fmul_rn(a.grad_scale, *a.device_grad_scale) : a.grad_scale;
  int bad = 0;
#pragma unroll
  for (int k = 0; k < kPerThread; ++k) {
    const std::int64_t i = base + k * kThreads + threadIdx.x;
    if (i >= ch.n) break;
    float g = ch.grad[i];
    if (grad_scale != 1.0f) g = __fmul_rn(g, grad_scale);
    bad |= !isfinite(g);
    float p = ch.param[i];
    if (a.l2) g = __fadd_rn(g, __fmul_rn(a.weight_decay, p));
    if (a.decay_param) p = __fmul_rn(p, a.decay);
    float m = ch.exp_avg[i];
    const float w = a.lerp_weight;
    m = fabsf(w) < 0.5f ? __fadd_rn(m, __fmul_rn(w, __fsub_rn(g, m)))
                        : __fsub_rn(g, __fmul_rn(__fsub_rn(g, m), __fsub_rn(1.0f, w)));
    const float v = __fadd_rn(__fmul_rn(ch.exp_avg_sq[i], a.beta2), __fmul_rn(__fmul_rn(a.one_minus_beta2, g), g));
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), a.bc2_sqrt), a.eps);
    p = __fadd_rn(p, __fmul_rn(a.neg_step_size, __fdiv_rn(m, denom)));
    ch.param[i] = p;
    ch.exp_avg[i] = m;
    ch.exp_avg_sq[i] = v;
    if (out16 != nullptr) {
      const Out o = FromFloat<Out>(p);
      out16[i] = o;
      bad |= isinf(ToFloat(o)) && !isinf(p);
    }
  }
  if (nonfinite != nullptr && __syncthreads_or(bad) && threadIdx.x == 0) *nonfinite = 1;
}

template <typename Out>
cudaError_t Launch(const AdamChunk* chunks, int count, const FusedAdamArgs& args, const int* skip_if, int* nonfinite,
                   cudaStream_t stream) {
  int next = 0;  // the first chunk not yet launched
  while (next < count) {
    ChunkList list{};
    list.count = 0;
    std::int64_t tiles = 0;
    for (; next < count && list.count < kFusedAdamMaxChunks; ++next) {
      const int i = next;
      if (chunks[i].n <= 0) continue;
      list.chunk[list.count] = chunks[i];
      list.first_tile[list.count] = tiles;
      tiles += (chunks[i].n + kTile - 1) / kTile;
      ++list.count;
    }
    if (list.count == 0) continue;
    list.first_tile[list.count] = tiles;
    if (tiles > 0x7fffffffLL) return cudaErrorInvalidValue;
    FusedAdamKernel<Out><<<static_cast<unsigned>(tiles), kThreads, 0, stream>>>(list, args, skip_if, nonfinite);
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

}  // namespace

cudaError_t LaunchFusedAdam(const AdamChunk* chunks, int count, AdamCopyOut copy_out, const FusedAdamArgs& args,
                            const int* skip_if, int* nonfinite, cudaStream_t stream) {
  if (count < 0) return cudaErrorInvalidValue;
  for (int i = 0; i < count; ++i) {
    const bool wants_out = copy_out != AdamCopyOut::kNone;
    if (chunks[i].n > 0 && (chunks[i].param == nullptr || chunks[i].grad == nullptr || chunks[i].exp_avg == nullptr ||
                            chunks[i].exp_avg_sq == nullptr || (wants_out && chunks[i].out16 == nullptr))) {
      return cudaErrorInvalidValue;
    }
  }
  // kNone: the bf16 instantiation with no chunk writing (out16 is ignored).
  if (copy_out == AdamCopyOut::kFloat16) return Launch<__half>(chunks, count, args, skip_if, nonfinite, stream);
  if (copy_out == AdamCopyOut::kNone) {
    AdamChunk local[kFusedAdamMaxChunks];
    for (int from = 0; from < count; from += kFusedAdamMaxChunks) {
      int m = 0;
      for (int i = from; i < count && m < kFusedAdamMaxChunks; ++i, ++m) {
        local[m] = chunks[i];
        local[m].out16 = nullptr;
      }
      const cudaError_t e = Launch<__nv_bfloat16>(local, m, args, skip_if, nonfinite, stream);
      if (e != cudaSuccess) return e;
    }
    return cudaSuccess;
  }
  return Launch<__nv_bfloat16>(chunks, count, args, skip_if, nonfinite, stream);
}

}  // namespace zt::ops::cuda
