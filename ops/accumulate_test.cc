// The reference of ops/accumulate.h on the CPU: sums and the checks that name the bad slice.
#include "ops/accumulate.h"

#include <ATen/ATen.h>

#include <vector>

#include "gtest/gtest.h"

namespace zt::ops {
namespace {

TEST(AccumulateSlicesTest, AddsEachSliceAtItsOffsets) {
  at::manual_seed(0);
  const at::Tensor a = at::randn({10}, at::kBFloat16), b = at::randn({6}, at::kFloat), c = at::randn({2, 3}, at::kHalf);
  at::Tensor dst = at::randn({20});
  const at::Tensor before = dst.clone();
  AccumulateSlices({{a, 2, dst, 0, 8}, {b, 0, dst, 8, 6}, {c, 1, dst, 15, 5}});
  at::Tensor want = before.clone();
  want.narrow(0, 0, 8).add_(a.narrow(0, 2, 8).to(at::kFloat));
  want.narrow(0, 8, 6).add_(b);
  want.narrow(0, 15, 5).add_(c.view({-1}).narrow(0, 1, 5).to(at::kFloat));
  EXPECT_TRUE(at::equal(dst, want));
  AccumulateSlices({});
  AccumulateSlices({{a, 0, dst, 0, 0}});
  EXPECT_TRUE(at::equal(dst, want)) << "nothing to add changes nothing";
}

TEST(AccumulateSlicesTest, AssigningSlicesOverwrite) {
  at::manual_seed(1);
  const at::Tensor a = at::randn({10}, at::kBFloat16), b = at::randn({6});
  at::Tensor dst = at::full({20}, 7.f);
  AccumulateSlices({{a, 2, dst, 0, 8, /*assign=*/true}, {b, 0, dst, 8, 6}});
  at::Tensor want = at::full({20}, 7.f);
  want.narrow(0, 0, 8).copy_(a.narrow(0, 2, 8));
  want.narrow(0, 8, 6).add_(b);
  EXPECT_TRUE(at::equal(dst, want));
}

TEST(AccumulateSlicesTest, RefusesBadSlicesByIndex) {
  const at::Tensor src = at::ones({8}), dst = at::zeros({8});
  auto message = [](const std::vector<AccumulateSlice>& slices) {
    try {
      AccumulateSlices(slices);
    } catch (const c10::Error& e) {
      return std::string(e.what_without_backtrace());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({{src, 0, dst, 0, 8}, {src, 1, dst, 0, 8}}).find("slice 1 (8 elements from 1 of 8"),
            std::string::npos);
  EXPECT_NE(message({{src.to(at::kDouble), 0, dst, 0, 8}}).find("slice 0 has a Double source"), std::string::npos);
  EXPECT_NE(message({{src, 0, dst.to(at::kHalf), 0, 8}}).find("slice 0 has a Half destination"), std::string::npos);
  EXPECT_NE(message({{src, 0, dst.view({2, 4}).t(), 0, 8}}).find("slice 0 is not contiguous"), std::string::npos);
  EXPECT_NE(message({{src, 0, at::Tensor(), 0, 8}}).find("slice 0 has an undefined tensor"), std::string::npos);
  EXPECT_TRUE(at::equal(dst, at::zeros({8}))) << "a refused batch adds nothing";
}

}  // namespace
}  // namespace zt::ops
