#include "science/climate/lat_weighted.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace zt::science {
namespace {

TEST(LatitudeWeights, HaveMeanOneAndFollowCosine) {
  std::vector<double> lats = {-60, -30, 0, 30, 60};
  auto w = LatitudeWeights(lats);
  ASSERT_TRUE(w.ok()) << w.status();
  double mean = 0;
  for (double x : *w) mean += x / w->size();
  EXPECT_NEAR(mean, 1.0, 1e-12);
  EXPECT_NEAR((*w)[2] / (*w)[3], 1.0 / std::cos(M_PI / 6), 1e-12);
  EXPECT_DOUBLE_EQ((*w)[0], (*w)[4]);
}

TEST(LatitudeWeights, RejectsBadGrids) {
  EXPECT_EQ(LatitudeWeights({}).status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<double> out_of_range = {0, 95};
  EXPECT_EQ(LatitudeWeights(out_of_range).status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<double> poles = {-90, 90};
  EXPECT_EQ(LatitudeWeights(poles).status().code(), absl::StatusCode::kInvalidArgument);
}

// A worked example by hand: 2 latitudes (0 and 60 degrees: cosines 1 and 1/2, weights 4/3 and
// 2/3), 2 longitudes, 2 samples.
TEST(LatWeightedRmse, MatchesAHandComputedValue) {
  std::vector<double> lats = {0, 60};
  auto w = LatitudeWeights(lats);
  ASSERT_TRUE(w.ok());
  std::vector<float> truth(8, 0.0f);
  std::vector<float> pred = {1, 1, 0, 0,   // sample 0: error 1 on the equator row only
                             0, 0, 3, 3};  // sample 1: error 3 on the 60-degree row only
  auto r = LatWeightedRmse(pred, truth, *w, 2, 2, 2);
  ASSERT_TRUE(r.ok()) << r.status();
  const double s0 = std::sqrt((4.0 / 3 * 2) / 4);  // sqrt(mean of w*err^2)
  const double s1 = std::sqrt((2.0 / 3 * 2 * 9) / 4);
  EXPECT_NEAR(*r, (s0 + s1) / 2, 1e-12);
}

TEST(LatWeightedRmse, PerfectPredictionIsZeroAndShapesAreChecked) {
  std::vector<double> w = {1.0, 1.0};
  std::vector<float> x = {1, 2, 3, 4};
  auto r = LatWeightedRmse(x, x, w, 1, 2, 2);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 0.0);
  EXPECT_EQ(LatWeightedRmse(x, x, w, 1, 2, 3).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LatWeightedRmse(x, x, w, 0, 2, 2).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace zt::science
