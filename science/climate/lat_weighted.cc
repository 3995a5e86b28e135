#include "science/climate/lat_weighted.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace zt::science {

absl::StatusOr<std::vector<double>> LatitudeWeights(absl::Span<const double> lats_deg) {
  if (lats_deg.empty()) return absl::InvalidArgumentError("LatitudeWeights: no latitudes");
  std::vector<double> w(lats_deg.size());
  double sum = 0;
  for (std::size_t i = 0; i < lats_deg.size(); ++i) {
    const double lat = lats_deg[i];
    if (!(lat >= -90.0 && lat <= 90.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("LatitudeWeights: latitude ", lat, " at index ", i, " is outside [-90, 90] degrees"));
    }
    w[i] = std::cos(lat * M_PI / 180.0);
    sum += w[i];
  }
  const double mean = sum / static_cast<double>(w.size());
  if (!(mean > 1e-12)) return absl::InvalidArgumentError("LatitudeWeights: the grid has only polar latitudes");
  for (double& x : w) x /= mean;
  return w;
}

absl::StatusOr<double> LatWeightedRmse(absl::Span<const float> pred, absl::Span<const float> truth,
                                       absl::Span<const double> weights, std::int64_t batch, std::int64_t nlat,
                                       std::int64_t nlon) {
  if (batch <= 0 || nlat <= 0 || nlon <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("LatWeightedRmse: bad shape [", batch, ", ", nlat, ", ", nlon, "]"));
  }
  const std::size_t n = static_cast<std::size_t>(batch * nlat * nlon);
  if (pred.size() != n || truth.size() != n || weights.size() != static_cast<std::size_t>(nlat)) {
    return absl::InvalidArgumentError(absl::StrCat("LatWeightedRmse: sizes pred=", pred.size(), " truth=", truth.size(),
                                                   " weights=", weights.size(), " do not fit [", batch, ", ", nlat,
                                                   ", ", nlon, "]"));
  }
  double total = 0;
  for (std::int64_t b = 0; b < batch; ++b) {
    double sum = 0;
    for (std::int64_t i = 0; i < nlat; ++i) {
      const std::size_t row = static_cast<std::size_t>((b * nlat + i) * nlon);
      double s = 0;
      for (std::int64_t j = 0; j < nlon; ++j) {
        const double d = static_cast<double>(pred[row + j]) - truth[row + j];
        s += d * d;
      }
      sum += weights[i] * s;
    }
    total += std::sqrt(sum / static_cast<double>(nlat * nlon));
  }
  return total / static_cast<double>(batch);
}

}  // namespace zt::science
