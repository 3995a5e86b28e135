#include "ops/unscale.h"

#include <cmath>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

namespace zt::ops {
namespace {

TEST(NonFiniteCheckAndUnscale, ScalesFiniteValues) {
  std::vector<float> g = {1.0f, -2.0f, 65536.0f, 0.0f};
  EXPECT_FALSE(NonFiniteCheckAndUnscale(g.data(), g.size(), 1.0f / 1024));
  EXPECT_EQ(g, (std::vector<float>{1.0f / 1024, -2.0f / 1024, 64.0f, 0.0f}));
}

TEST(NonFiniteCheckAndUnscale, ReportsInfAndNan) {
  std::vector<float> a = {1.0f, std::numeric_limits<float>::infinity(), 3.0f};
  EXPECT_TRUE(NonFiniteCheckAndUnscale(a.data(), a.size(), 0.5f));
  EXPECT_EQ(a[2], 1.5f);  // the rest is still scaled
  std::vector<float> b = {std::nanf(""), 2.0f};
  EXPECT_TRUE(NonFiniteCheckAndUnscale(b.data(), b.size(), 1.0f));
  std::vector<float> c = {-std::numeric_limits<float>::infinity()};
  EXPECT_TRUE(NonFiniteCheckAndUnscale(c.data(), c.size(), 2.0f));
}

TEST(NonFiniteCheckAndUnscale, UnitScaleLeavesBitsAlone) {
  std::vector<float> g = {1e-45f, -0.0f, 3.4e38f};
  EXPECT_FALSE(NonFiniteCheckAndUnscale(g.data(), g.size(), 1.0f));
  EXPECT_EQ(g[0], 1e-45f);
  EXPECT_TRUE(std::signbit(g[1]));
  EXPECT_EQ(g[2], 3.4e38f);
}

TEST(NonFiniteCheckAndUnscale, EmptyIsFinite) { EXPECT_FALSE(NonFiniteCheckAndUnscale(nullptr, 0, 2.0f)); }

}  // namespace
}  // namespace zt::ops
