#include "science/molecule/metrics.h"

#include <cmath>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

namespace zt::science::molecule {
namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

// The values sklearn's documentation gives for these inputs.
TEST(MetricsTest, RegressionMatchesSklearnExamples) {
  const RegressionMetrics m = Regression({2.5, 0.0, 2, 8}, {3, -0.5, 2, 7});
  EXPECT_NEAR(m.r2, 0.9486081370449679, 1e-12);
  EXPECT_NEAR(m.mae, 0.5, 1e-12);
  EXPECT_NEAR(m.rmse, std::sqrt(0.375), 1e-12);
  EXPECT_EQ(m.count, 4);
}

TEST(MetricsTest, MissingTargetsAreLeftOut) {
  const RegressionMetrics m = Regression({2.5, 100, 0.0, 2, 8}, {3, kNan, -0.5, 2, 7});
  EXPECT_NEAR(m.r2, 0.9486081370449679, 1e-12);
  EXPECT_EQ(m.count, 4);
  EXPECT_TRUE(std::isnan(Regression({1}, {kNan}).rmse));
}

TEST(MetricsTest, TheMeanScoresZeroR2) {
  const std::vector<double> truth = {1, 2, 3, 6};
  EXPECT_NEAR(Regression({3, 3, 3, 3}, truth).r2, 0.0, 1e-12);
  EXPECT_LT(Regression({6, 6, 6, 6}, truth).r2, 0.0);
}

TEST(MetricsTest, RocAucMatchesSklearnExamples) {
  EXPECT_NEAR(RocAuc({0.1, 0.4, 0.35, 0.8}, {0, 0, 1, 1}), 0.75, 1e-12);
  EXPECT_NEAR(RocAuc({0.5, 0.5, 0.5}, {0, 1, 1}), 0.5, 1e-12);  // ties share their rank
  EXPECT_NEAR(RocAuc({0.2, 0.9, 0.5, 0.5}, {0, 1, 0, 1}), 0.875, 1e-12);
  EXPECT_NEAR(RocAuc({3, 2, 1}, {0, kNan, 1}), 0.0, 1e-12);
  EXPECT_TRUE(std::isnan(RocAuc({0.1, 0.2}, {1, 1})));  // one class only
}

}  // namespace
}  // namespace zt::science::molecule
