// The CUDA kernel of ops/accumulate.h against the per-slice ATen adds on fresh random slices:
// mixed dtypes, unaligned offsets, empty and odd-sized slices, more slices than one launch takes.
#include <ATen/ATen.h>

#include <vector>

#include "gtest/gtest.h"
#include "ops/accumulate.h"

namespace zt::ops {
namespace {

TEST(AccumulateSlicesCudaTest, MatchesTheReferenceExactly) {
  ASSERT_TRUE(at::hasCUDA()) << "no CUDA device";
  ASSERT_TRUE(HasCudaAccumulateSlices());
  at::manual_seed(1);
  const auto cuda = at::TensorOptions().device(at::kCUDA);
  const std::vector<std::int64_t> sizes = {0, 1, 7, 8, 9, 1000, 4096, (1 << 20) + 3};
  const std::vector<at::ScalarType> dtypes = {at::kBFloat16, at::kHalf, at::kFloat};
  // 150 slices (three launches) into two buffers, each slice at its own offsets.
  std::int64_t total = 0;
  std::vector<std::int64_t> n;
  for (int i = 0; i < 150; ++i) {
    n.push_back(sizes[(i * 7) % sizes.size()]);
    total += n.back() + i % 5;
  }
  at::Tensor a = at::randn({total}, cuda), b = at::randn({total}, cuda);
  const at::Tensor a0 = a.clone(), b0 = b.clone(), a_before = a.clone();
  std::vector<AccumulateSlice> fused, reference;
  std::int64_t at_a = 0, at_b = 0;
  for (int i = 0; i < 150; ++i) {
    const std::int64_t skip = i % 3;  // sources read from an offset, so from unaligned addresses too
    const at::Tensor src = at::randn({n[i] + skip}, cuda.dtype(dtypes[i % dtypes.size()]));
    const bool to_a = i % 2 == 0;
    std::int64_t& offset = to_a ? at_a : at_b;
    offset += i % 5;
    const bool assign = i % 4 == 1;  // a few slices overwrite what is there
    fused.push_back({src, skip, to_a ? a : b, offset, n[i], assign});
    reference.push_back({src, skip, to_a ? a0 : b0, offset, n[i], assign});
    offset += n[i];
  }
  AccumulateSlices(fused);
  AccumulateSlicesReference(reference);
  EXPECT_TRUE(at::equal(a, a0));
  EXPECT_TRUE(at::equal(b, b0));
  EXPECT_FALSE(at::equal(a, a_before));
}

TEST(AccumulateSlicesCudaTest, ChecksSlicesBeforeLaunching) {
  const auto cuda = at::TensorOptions().device(at::kCUDA);
  const at::Tensor dst = at::zeros({8}, cuda);
  EXPECT_THROW(AccumulateSlices({{at::ones({8}, cuda), 4, dst, 0, 8}}), c10::Error);
  EXPECT_THROW(AccumulateSlices({{at::ones({8}), 0, dst, 0, 8}}), c10::Error) << "a CPU source";
  EXPECT_TRUE(at::equal(dst, at::zeros({8}, cuda)));
}

}  // namespace
}  // namespace zt::ops
