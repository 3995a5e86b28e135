// Latitude weighting for gridded climate fields (ClimaX, WeatherBench).
//
// On a regular latitude-longitude grid a cell's area shrinks with cos(latitude), so errors are
// weighted by w(lat) = cos(lat) / mean over the grid's latitudes of cos(lat) (mean weight 1):
//
//   std::vector<double> w = zt::science::LatitudeWeights(lats_deg);
//   double rmse = zt::science::LatWeightedRmse(pred, truth, w, /*batch=*/b, /*nlat=*/h, /*nlon=*/l);
//
// LatWeightedRmse is ClimaX's lat_weighted_rmse for one variable: per sample
// sqrt(mean over (lat, lon) of w * (pred - truth)^2), then the mean over samples.  Points whose
// truth is NaN (missing) are left out of the means.
//
// LatWeightedAcc is ClimaX's lat_weighted_acc (anomaly correlation coefficient) for one
// variable: anomalies from the climatology, centred on their mean over the batch, then
// sum(w p' t') / sqrt(sum(w p'^2) sum(w t'^2)); NaN when either has no variance.
#ifndef ZEROTRAIN_SCIENCE_CLIMATE_LAT_WEIGHTED_H_
#define ZEROTRAIN_SCIENCE_CLIMATE_LAT_WEIGHTED_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace zt::science {

// Weights for latitudes in degrees; any order.  Fails on an empty grid, a latitude outside
// [-90, 90], or a grid whose cosines sum to zero (only the poles).
absl::StatusOr<std::vector<double>> LatitudeWeights(absl::Span<const double> lats_deg);

// pred and truth are [batch, nlat, nlon] row-major; weights has nlat entries.
absl::StatusOr<double> LatWeightedRmse(absl::Span<const float> pred, absl::Span<const float> truth,
                                       absl::Span<const double> weights, std::int64_t batch, std::int64_t nlat,
                                       std::int64_t nlon);

// climatology is [nlat, nlon] (the mean field of the training period).
absl::StatusOr<double> LatWeightedAcc(absl::Span<const float> pred, absl::Span<const float> truth,
                                      absl::Span<const float> climatology, absl::Span<const double> weights,
                                      std::int64_t batch, std::int64_t nlat, std::int64_t nlon);

}  // namespace zt::science

#endif  // ZEROTRAIN_SCIENCE_CLIMATE_LAT_WEIGHTED_H_
