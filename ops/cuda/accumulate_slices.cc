// Registers the CUDA kernel of ops/accumulate.h (ops/cuda/accumulate.h) for at::Tensor slices.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/util/Exception.h>

#include <vector>

#include "ops/accumulate.h"
#include "ops/cuda/accumulate.h"
#include "ops/cuda/element_type_of.h"

namespace zt::ops::cuda {
namespace {

void AccumulateSlicesCuda(const std::vector<AccumulateSlice>& slices) {
  const c10::cuda::CUDAGuard guard(slices[0].dst.device());
  std::vector<RawSlice> raw;
  raw.reserve(slices.size());
  for (const AccumulateSlice& s : slices) {
    const auto* src = static_cast<const char*>(s.src.data_ptr()) + s.src_offset * s.src.element_size();
    raw.push_back(
        RawSlice{src, s.dst.data_ptr<float>() + s.dst_offset, s.n, *ElementTypeOf(s.src.scalar_type()), s.assign});
  }
  const cudaError_t e =
      LaunchAccumulate(raw.data(), static_cast<int>(raw.size()), at::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(e == cudaSuccess, "AccumulateSlices: kernel launch failed: ", cudaGetErrorString(e));
}

[[maybe_unused]] const bool kRegistered = [] {
  RegisterCudaAccumulateSlices(&AccumulateSlicesCuda);
  return true;
}();

}  // namespace
}  // namespace zt::ops::cuda
