// Many gradient slices added into float32 buffers as one op: what a ZeRO gradient hook does for
// each parameter (core/zero/grad_reducer.h), batched so that a step launches a few kernels
// instead of one per parameter.  The CUDA kernel (//ops/cuda:accumulate_cuda) registers itself
// here; ZT_ACCUMULATE=reference forces the per-slice ATen adds.
//
//   std::vector<zt::ops::AccumulateSlice> slices = {{grad, 0, staging, 128, grad.numel()}, ...};
//   zt::ops::AccumulateSlices(slices);   // staging[128 + i] += float(grad.flat[i])
//
// A slice with `assign` writes instead (dst = float(src)): the first gradient into a buffer
// whose old contents are void, which saves zeroing the buffer and reading it back.
#ifndef ZEROTRAIN_OPS_ACCUMULATE_H_
#define ZEROTRAIN_OPS_ACCUMULATE_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace zt::ops {

// dst[dst_offset + i] += src.flat[src_offset + i] for i < n (= with `assign`).  src: contiguous
// float32, bfloat16 or float16; dst: contiguous float32 on src's device.  Slices may not overlap
// one another's dst.
struct AccumulateSlice {
  at::Tensor src;
  std::int64_t src_offset;
  at::Tensor dst;
  std::int64_t dst_offset;
  std::int64_t n;
  bool assign = false;
};

// Plain ATen adds, one per slice, on any device.
void AccumulateSlicesReference(const std::vector<AccumulateSlice>& slices);

// The CUDA kernel for CUDA slices where registered, else the reference.  Bad slices (dtype, bounds,
// devices) throw c10::Error naming the slice.
void AccumulateSlices(const std::vector<AccumulateSlice>& slices);

// The CUDA library's implementation: it is given checked CUDA slices of one device.
using AccumulateSlicesFn = void (*)(const std::vector<AccumulateSlice>& slices);
void RegisterCudaAccumulateSlices(AccumulateSlicesFn fn);
bool HasCudaAccumulateSlices();

}  // namespace zt::ops

#endif  // ZEROTRAIN_OPS_ACCUMULATE_H_
