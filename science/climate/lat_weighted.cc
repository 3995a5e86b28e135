#include "science/climate/lat_weighted.h"

#include <algorithm>
#include <cmath>
#include <limits>

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
  std::int64_t samples = 0;
  for (std::int64_t b = 0; b < batch; ++b) {
    double sum = 0;
    std::int64_t present = 0;
    for (std::int64_t i = 0; i < nlat; ++i) {
      const std::size_t row = static_cast<std::size_t>((b * nlat + i) * nlon);
      double s = 0;
      for (std::int64_t j = 0; j < nlon; ++j) {
        if (std::isnan(truth[row + j])) continue;
        const double d = static_cast<double>(pred[row + j]) - truth[row + j];
        s += d * d;
        ++present;
      }
      sum += weights[i] * s;
    }
    if (present == 0) continue;
    total += std::sqrt(sum / static_cast<double>(present));
    ++samples;
  }
  return samples > 0 ? total / static_cast<double>(samples) : std::numeric_limits<double>::quiet_NaN();
}

absl::StatusOr<double> LatWeightedAcc(absl::Span<const float> pred, absl::Span<const float> truth,
                                      absl::Span<const float> climatology, absl::Span<const double> weights,
                                      std::int64_t batch, std::int64_t nlat, std::int64_t nlon) {
  const std::size_t n = static_cast<std::size_t>(std::max<std::int64_t>(batch * nlat * nlon, 0));
  if (batch <= 0 || nlat <= 0 || nlon <= 0 || pred.size() != n || truth.size() != n ||
      climatology.size() != static_cast<std::size_t>(nlat * nlon) || weights.size() != static_cast<std::size_t>(nlat)) {
    return absl::InvalidArgumentError(absl::StrCat("LatWeightedAcc: sizes pred=", pred.size(), " truth=", truth.size(),
                                                   " climatology=", climatology.size(), " weights=", weights.size(),
                                                   " do not fit [", batch, ", ", nlat, ", ", nlon, "]"));
  }
  // The anomalies' means over the batch's present points.
  double mp = 0, mt = 0, count = 0;
  for (std::size_t k = 0; k < n; ++k) {
    if (std::isnan(truth[k])) continue;
    const float c = climatology[k % climatology.size()];
    mp += static_cast<double>(pred[k]) - c;
    mt += static_cast<double>(truth[k]) - c;
    count += 1;
  }
  if (count == 0) return std::numeric_limits<double>::quiet_NaN();
  mp /= count;
  mt /= count;
  double spt = 0, spp = 0, stt = 0;
  for (std::size_t k = 0; k < n; ++k) {
    if (std::isnan(truth[k])) continue;
    const float c = climatology[k % climatology.size()];
    const double w = weights[(k / static_cast<std::size_t>(nlon)) % static_cast<std::size_t>(nlat)];
    const double p = static_cast<double>(pred[k]) - c - mp, t = static_cast<double>(truth[k]) - c - mt;
    spt += w * p * t;
    spp += w * p * p;
    stt += w * t * t;
  }
  if (!(spp > 0) || !(stt > 0)) return std::numeric_limits<double>::quiet_NaN();
  return spt / std::sqrt(spp * stt);
}

}  // namespace zt::science
