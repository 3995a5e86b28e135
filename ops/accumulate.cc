#include "ops/accumulate.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include "ops/fused_impl.h"

namespace zt::ops {
namespace {

FusedImpl<AccumulateSlicesFn>& Impl() {
  static FusedImpl<AccumulateSlicesFn> impl("ZT_ACCUMULATE");
  return impl;
}

void Check(const std::vector<AccumulateSlice>& slices) {
  for (std::size_t i = 0; i < slices.size(); ++i) {
    const AccumulateSlice& s = slices[i];
    TORCH_CHECK(s.src.defined() && s.dst.defined(), "AccumulateSlices: slice ", i, " has an undefined tensor");
    const at::ScalarType t = s.src.scalar_type();
    TORCH_CHECK(t == at::kFloat || t == at::kBFloat16 || t == at::kHalf, "AccumulateSlices: slice ", i, " has a ", t,
                " source; float32, bfloat16 or float16 expected");
    TORCH_CHECK(s.dst.scalar_type() == at::kFloat, "AccumulateSlices: slice ", i, " has a ", s.dst.scalar_type(),
                " destination; float32 expected");
    TORCH_CHECK(s.src.is_contiguous() && s.dst.is_contiguous(), "AccumulateSlices: slice ", i, " is not contiguous");
    TORCH_CHECK(s.src.device() == s.dst.device(), "AccumulateSlices: slice ", i, " goes from ", s.src.device(), " to ",
                s.dst.device());
    TORCH_CHECK(s.n >= 0 && s.src_offset >= 0 && s.dst_offset >= 0 && s.src_offset + s.n <= s.src.numel() &&
                    s.dst_offset + s.n <= s.dst.numel(),
                "AccumulateSlices: slice ", i, " (", s.n, " elements from ", s.src_offset, " of ", s.src.numel(),
                " to ", s.dst_offset, " of ", s.dst.numel(), ") is out of bounds");
  }
}

}  // namespace

void AccumulateSlicesReference(const std::vector<AccumulateSlice>& slices) {
  Check(slices);
  for (const AccumulateSlice& s : slices) {
    at::Tensor dst = s.dst.view({-1}).narrow(0, s.dst_offset, s.n);
    const at::Tensor src = s.src.view({-1}).narrow(0, s.src_offset, s.n);
    if (s.assign) {
      dst.copy_(src);
    } else {
      dst.add_(src);
    }
  }
}

void AccumulateSlices(const std::vector<AccumulateSlice>& slices) {
  if (slices.empty()) return;
  AccumulateSlicesFn fused = Impl().Get();
  bool one_cuda_device = fused != nullptr;
  for (const AccumulateSlice& s : slices) {
    if (!one_cuda_device) break;
    one_cuda_device = s.dst.defined() && s.dst.is_cuda() && s.dst.device() == slices[0].dst.device();
  }
  if (!one_cuda_device) return AccumulateSlicesReference(slices);
  Check(slices);
  fused(slices);
}

void RegisterCudaAccumulateSlices(AccumulateSlicesFn fn) { Impl().Set(fn); }

bool HasCudaAccumulateSlices() { return Impl().registered(); }

}  // namespace zt::ops
