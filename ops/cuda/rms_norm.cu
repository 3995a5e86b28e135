#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "ops/cuda/rms_norm.h"

namespace zt::ops::cuda {
namespace {

constexpr int kWarps = 8;  // rows per block in the row kernels, one warp each
constexpr int kColumnThreads = 256;
constexpr int kRowsPerGroup = 64;  // rows one thread of the weight-gradient kernel sums (at least)
constexpr int kMaxGroups = 4096;

__device__ __forceinline__ float Load(const float* p, std::int64_t i) { return p[i]; }
__device__ __forceinline__ float Load(const __nv_bfloat16* p, std::int64_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ float Load(const __half* p, std::int64_t i) { return __half2float(p[i]); }
__device__ __forceinline__ void Store(float* p, std::int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void Store(__nv_bfloat16* p, std::int64_t i, float v) { p[i] = __float2bfloat16_rn(v); }
__device__ __forceinline__ void Store(__half* p, std::int64_t i, float v) { p[i] = __float2half_rn(v); }
// v rounded to T and back (the identity for float).
__device__ __forceinline__ float RoundTo(float v, const float*) { return v; }
__device__ __forceinline__ float RoundTo(float v, const __nv_bfloat16*) {
  return __bfloat162float(__float2bfloat16_rn(v));
}
__device__ __forceinline__ float RoundTo(float v, const __half*) { return __half2float(__float2half_rn(v)); }

__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// y: W when W is 16-bit, else float.
template <typename X, typename W, typename Y>
__global__ void __launch_bounds__(kWarps * 32)
    RmsNormForwardKernel(const X* __restrict__ x, const W* __restrict__ w, std::int64_t rows, std::int64_t d, float eps,
                         Y* __restrict__ y, float* __restrict__ rstd) {
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const X* xr = x + row * d;
  float ss = 0;
  for (std::int64_t j = lane; j < d; j += 32) {
    const float v = Load(xr, j);
    ss += v * v;
  }
  ss = WarpSum(ss);
  const float r = rsqrtf(ss / static_cast<float>(d) + eps);
  if (lane == 0) rstd[row] = r;
  Y* yr = y + row * d;
  for (std::int64_t j = lane; j < d; j += 32) {
    const float h = RoundTo(Load(xr, j) * r, w);
    Store(yr, j, Load(w, j) * h);
  }
}

template <typename X, typename W, typename Y>
__global__ void __launch_bounds__(kWarps * 32)
    RmsNormBackwardKernel(const X* __restrict__ x, const W* __restrict__ w, const float* __restrict__ rstd,
                          const Y* __restrict__ dy, const X* __restrict__ dres, std::int64_t rows, std::int64_t d,
                          X* __restrict__ dx) {
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const X* xr = x + row * d;
  const Y* dyr = dy + row * d;
  const float r = rstd[row];
  // dx_j = r * g_j - (r^3 / d) * x_j * sum_k g_k x_k, g = dy * w.
  float dot = 0;
  for (std::int64_t j = lane; j < d; j += 32) dot += Load(dyr, j) * Load(w, j) * Load(xr, j);
  dot = WarpSum(dot);
  const float c = r * r * r * dot / static_cast<float>(d);
  X* dxr = dx + row * d;
  if (dres != nullptr) {  // the residual branch's gradient of x, added in this pass
    const X* dresr = dres + row * d;
    for (std::int64_t j = lane; j < d; j += 32) {
      Store(dxr, j, r * Load(dyr, j) * Load(w, j) - c * Load(xr, j) + Load(dresr, j));
    }
  } else {
    for (std::int64_t j = lane; j < d; j += 32) Store(dxr, j, r * Load(dyr, j) * Load(w, j) - c * Load(xr, j));
  }
}

// The dx kernel for 16-bit x, w and dy alike whose rows are whole 16-byte vectors: each lane takes
// 8 consecutive elements a load (the kernel above moves 2 bytes a lane a load).
template <typename T>
__global__ void __launch_bounds__(kWarps * 32)
    RmsNormBackwardVecKernel(const T* __restrict__ x, const T* __restrict__ w, const float* __restrict__ rstd,
                             const T* __restrict__ dy, const T* __restrict__ dres, std::int64_t rows, std::int64_t d,
                             T* __restrict__ dx) {
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const std::int64_t vecs = d / 8;
  const uint4* xr = reinterpret_cast<const uint4*>(x + row * d);
  const uint4* dyr = reinterpret_cast<const uint4*>(dy + row * d);
  const uint4* wv = reinterpret_cast<const uint4*>(w);
  const float r = rstd[row];
  float dot = 0;
  for (std::int64_t v = lane; v < vecs; v += 32) {
    const uint4 a = xr[v], g = dyr[v], c = wv[v];
    const T *xe = reinterpret_cast<const T*>(&a), *ge = reinterpret_cast<const T*>(&g),
            *we = reinterpret_cast<const T*>(&c);
#pragma unroll
    for (int e = 0; e < 8; ++e) dot += Load(ge, e) * Load(we, e) * Load(xe, e);
  }
  dot = WarpSum(dot);
  const float k = r * r * r * dot / static_cast<float>(d);
  uint4* dxr = reinterpret_cast<uint4*>(dx + row * d);
  const uint4* resr = dres != nullptr ? reinterpret_cast<const uint4*>(dres + row * d) : nullptr;
  for (std::int64_t v = lane; v < vecs; v += 32) {
    const uint4 a = xr[v], g = dyr[v], c = wv[v];
    uint4 res = make_uint4(0, 0, 0, 0), out;
    if (resr != nullptr) res = resr[v];
    const T *xe = reinterpret_cast<const T*>(&a), *ge = reinterpret_cast<const T*>(&g),
            *we = reinterpret_cast<const T*>(&c), *re = reinterpret_cast<const T*>(&res);
    T* oe = reinterpret_cast<T*>(&out);
#pragma unroll
    for (int e = 0; e < 8; ++e) Store(oe, e, r * Load(ge, e) * Load(we, e) - k * Load(xe, e) + Load(re, e));
    dxr[v] = out;
  }
}

// dw_partial[g, j] = sum over rows of group g of dy[r, j] * round_w(x[r, j] * rstd[r]).
template <typename X, typename W, typename Y>
__global__ void __launch_bounds__(kColumnThreads)
    RmsNormWeightGradKernel(const X* __restrict__ x, const float* __restrict__ rstd, const Y* __restrict__ dy,
                            std::int64_t rows, std::int64_t d, float* __restrict__ dw_partial) {
  const std::int64_t j = static_cast<std::int64_t>(blockIdx.x) * kColumnThreads + threadIdx.x;
  if (j >= d) return;
  const std::int64_t per = (rows + gridDim.y - 1) / gridDim.y;
  const std::int64_t r0 = static_cast<std::int64_t>(blockIdx.y) * per;
  const std::int64_t r1 = r0 + per < rows ? r0 + per : rows;
  const W* tag = nullptr;
  float acc = 0;
  for (std::int64_t r = r0; r < r1; ++r) acc += Load(dy, r * d + j) * RoundTo(Load(x, r * d + j) * rstd[r], tag);
  dw_partial[static_cast<std::int64_t>(blockIdx.y) * d + j] = acc;
}

// dw[j] = sum over groups of dw_partial[g, j], in the weight's dtype.
template <typename W>
__global__ void __launch_bounds__(kColumnThreads)
    RmsNormWeightGradSumKernel(const float* __restrict__ dw_partial, int groups, std::int64_t d, W* __restrict__ dw) {
  const std::int64_t j = static_cast<std::int64_t>(blockIdx.x) * kColumnThreads + threadIdx.x;
  if (j >= d) return;
  float acc = 0;
  for (int g = 0; g < groups; ++g) acc += dw_partial[g * d + j];
  Store(dw, j, acc);
}

bool Aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

template <typename X, typename W, typename Y>
cudaError_t Forward(const void* x, const void* w, std::int64_t rows, std::int64_t d, float eps, void* y, float* rstd,
                    cudaStream_t stream) {
  const std::int64_t blocks = (rows + kWarps - 1) / kWarps;
  RmsNormForwardKernel<X, W, Y><<<static_cast<unsigned>(blocks), kWarps * 32, 0, stream>>>(
      static_cast<const X*>(x), static_cast<const W*>(w), rows, d, eps, static_cast<Y*>(y), rstd);
  return cudaGetLastError();
}

template <typename X, typename W, typename Y>
cudaError_t Backward(const void* x, const void* w, const float* rstd, const void* dy, const void* dres,
                     std::int64_t rows, std::int64_t d, void* dx, float* dw_partial, void* dw, cudaStream_t stream) {
  const std::int64_t blocks = (rows + kWarps - 1) / kWarps;
  bool vectors = false;  // 16-bit x, w and dy alike, rows of whole 16-byte vectors
  if constexpr (std::is_same_v<X, W> && std::is_same_v<X, Y> && sizeof(X) == 2) {
    vectors = d % 8 == 0 && Aligned16(x) && Aligned16(w) && Aligned16(dy) && Aligned16(dx) &&
              (dres == nullptr || Aligned16(dres));
    if (vectors) {
      RmsNormBackwardVecKernel<X><<<static_cast<unsigned>(blocks), kWarps * 32, 0, stream>>>(
          static_cast<const X*>(x), static_cast<const X*>(w), rstd, static_cast<const X*>(dy),
          static_cast<const X*>(dres), rows, d, static_cast<X*>(dx));
    }
  }
  if (!vectors) {
    RmsNormBackwardKernel<X, W, Y><<<static_cast<unsigned>(blocks), kWarps * 32, 0, stream>>>(
        static_cast<const X*>(x), static_cast<const W*>(w), rstd, static_cast<const Y*>(dy),
        static_cast<const X*>(dres), rows, d, static_cast<X*>(dx));
  }
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  const int groups = RmsNormWeightGroups(rows);
  const unsigned column_blocks = static_cast<unsigned>((d + kColumnThreads - 1) / kColumnThreads);
  RmsNormWeightGradKernel<X, W, Y><<<dim3(column_blocks, static_cast<unsigned>(groups)), kColumnThreads, 0, stream>>>(
      static_cast<const X*>(x), rstd, static_cast<const Y*>(dy), rows, d, dw_partial);
  e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  RmsNormWeightGradSumKernel<W>
      <<<column_blocks, kColumnThreads, 0, stream>>>(dw_partial, groups, d, static_cast<W*>(dw));
  return cudaGetLastError();
}

// The launches with their arguments, for Dispatch.
struct ForwardRun {
  const void *x, *w;
  std::int64_t rows, d;
  float eps;
  void* y;
  float* rstd;
  cudaStream_t s;
  template <typename X, typename W, typename Y>
  cudaError_t operator()() const {
    return Forward<X, W, Y>(x, w, rows, d, eps, y, rstd, s);
  }
};

struct BackwardRun {
  const void *x, *w;
  const float* rstd;
  const void *dy, *dres;
  std::int64_t rows, d;
  void* dx;
  float* dw_partial;
  void* dw;
  cudaStream_t s;
  template <typename X, typename W, typename Y>
  cudaError_t operator()() const {
    return Backward<X, W, Y>(x, w, rstd, dy, dres, rows, d, dx, dw_partial, dw, s);
  }
};

// Calls f.template operator()<X, W, Y>() for a supported pair.
template <typename F>
cudaError_t Dispatch(ElementType xd, ElementType wd, F&& f) {
  using B = __nv_bfloat16;
  if (xd == ElementType::kBFloat16 && wd == ElementType::kBFloat16) return f.template operator()<B, B, B>();
  if (xd == ElementType::kFloat16 && wd == ElementType::kFloat16)
    return f.template operator()<__half, __half, __half>();
  if (xd == ElementType::kFloat32 && wd == ElementType::kFloat32) return f.template operator()<float, float, float>();
  if (xd == ElementType::kFloat32 && wd == ElementType::kBFloat16) return f.template operator()<float, B, B>();
  if (xd == ElementType::kFloat32 && wd == ElementType::kFloat16) return f.template operator()<float, __half, __half>();
  return cudaErrorInvalidValue;
}

}  // namespace

bool RmsNormSupports(ElementType x, ElementType w) { return x == w || x == ElementType::kFloat32; }

int RmsNormWeightGroups(std::int64_t rows) {
  const std::int64_t g = (rows + kRowsPerGroup - 1) / kRowsPerGroup;
  return static_cast<int>(g < 1 ? 1 : g > kMaxGroups ? kMaxGroups : g);
}

cudaError_t LaunchRmsNormForward(ElementType x_dtype, ElementType w_dtype, const void* x, const void* weight,
                                 std::int64_t rows, std::int64_t d, float eps, void* y, float* rstd,
                                 cudaStream_t stream) {
  if (rows <= 0 || d <= 0) return rows < 0 || d < 0 ? cudaErrorInvalidValue : cudaSuccess;
  if ((rows + kWarps - 1) / kWarps > 0x7fffffffLL) return cudaErrorInvalidValue;
  const ForwardRun run{x, weight, rows, d, eps, y, rstd, stream};
  return Dispatch(x_dtype, w_dtype, run);
}

cudaError_t LaunchRmsNormBackward(ElementType x_dtype, ElementType w_dtype, const void* x, const void* weight,
                                  const float* rstd, const void* dy, const void* dres, std::int64_t rows,
                                  std::int64_t d, void* dx, float* dw_partial, void* dw, cudaStream_t stream) {
  if (rows <= 0 || d <= 0) return rows < 0 || d < 0 ? cudaErrorInvalidValue : cudaSuccess;
  if ((rows + kWarps - 1) / kWarps > 0x7fffffffLL) return cudaErrorInvalidValue;
  const BackwardRun run{x, weight, rstd, dy, dres, rows, d, dx, dw_partial, dw, stream};
  return Dispatch(x_dtype, w_dtype, run);
}

}  // namespace zt::ops::cuda
