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

TEST(LatWeightedRmse, SkipsMissingTruth) {
  const float nan = std::nanf("");
  // One sample, 1 x 3 grid, weight 1: errors 1, (missing), 3 -> sqrt((1 + 9) / 2).
  const std::vector<float> pred = {1, 100, 3}, truth = {0, nan, 0};
  EXPECT_NEAR(*LatWeightedRmse(pred, truth, std::vector<double>{1.0}, 1, 1, 3), std::sqrt(5.0), 1e-12);
  EXPECT_TRUE(std::isnan(*LatWeightedRmse(pred, std::vector<float>{nan, nan, nan}, std::vector<double>{1.0}, 1, 1, 3)));
}

TEST(LatWeightedAcc, IsACorrelationOfAnomalies) {
  const std::vector<double> w = {0.5, 1.5};
  const std::vector<float> clim = {10, 20, 30, 40};
  const std::vector<float> truth = {11, 19, 33, 38, 12, 21, 29, 41};  // 2 samples of 2 x 2
  std::vector<float> same = truth, opposite(8), affine(8);
  for (int k = 0; k < 8; ++k) {
    const float anomaly = truth[k] - clim[k % 4];
    opposite[k] = clim[k % 4] - anomaly;
    affine[k] = clim[k % 4] + 2 * anomaly + 3;  // a scaled, shifted anomaly correlates perfectly
  }
  EXPECT_NEAR(*LatWeightedAcc(same, truth, clim, w, 2, 2, 2), 1.0, 1e-12);
  EXPECT_NEAR(*LatWeightedAcc(opposite, truth, clim, w, 2, 2, 2), -1.0, 1e-12);
  EXPECT_NEAR(*LatWeightedAcc(affine, truth, clim, w, 2, 2, 2), 1.0, 1e-12);
  // Persistence of the climatology has no variance: undefined.
  std::vector<float> climatology_forecast(8);
  for (int k = 0; k < 8; ++k) climatology_forecast[k] = clim[k % 4];
  EXPECT_TRUE(std::isnan(*LatWeightedAcc(climatology_forecast, truth, clim, w, 2, 2, 2)));
  // By hand, one sample of 1 x 2 with weights 1: anomalies p = (1, 3), t = (2, 1) centred to
  // (-1, 1) and (0.5, -0.5): sum p't' = -1, sqrt(2 * 0.5) = 1 -> -1; with a third point the
  // weights matter.
  EXPECT_NEAR(*LatWeightedAcc(std::vector<float>{1, 3}, std::vector<float>{2, 1}, std::vector<float>{0, 0},
                              std::vector<double>{1.0}, 1, 1, 2),
              -1.0, 1e-12);
  const float nan = std::nanf("");
  EXPECT_NEAR(*LatWeightedAcc(std::vector<float>{1, 3, 7, 9}, std::vector<float>{2, 4, nan, 8},
                              std::vector<float>{0, 0, 0, 0}, std::vector<double>{1.0, 1.0}, 1, 2, 2),
              *LatWeightedAcc(std::vector<float>{1, 3, 9}, std::vector<float>{2, 4, 8}, std::vector<float>{0, 0, 0},
                              std::vector<double>{1.0}, 1, 1, 3),
              1e-12);
  EXPECT_FALSE(LatWeightedAcc(same, truth, clim, w, 2, 2, 3).ok());
}

}  // namespace
}  // namespace zt::science
