#include "science/molecule/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace zt::science::molecule {

RegressionMetrics Regression(const std::vector<double>& predicted, const std::vector<double>& truth) {
  RegressionMetrics m;
  double sum = 0;
  for (std::size_t i = 0; i < truth.size(); ++i) {
    if (std::isnan(truth[i])) continue;
    sum += truth[i];
    ++m.count;
  }
  if (m.count == 0) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    return {nan, nan, nan, 0};
  }
  const double mean = sum / static_cast<double>(m.count);
  double se = 0, ae = 0, tot = 0;
  for (std::size_t i = 0; i < truth.size(); ++i) {
    if (std::isnan(truth[i])) continue;
    const double d = predicted[i] - truth[i];
    se += d * d;
    ae += std::abs(d);
    tot += (truth[i] - mean) * (truth[i] - mean);
  }
  const auto n = static_cast<double>(m.count);
  m.rmse = std::sqrt(se / n);
  m.mae = ae / n;
  // sklearn: a constant truth gives 1 for a perfect fit, else 0.
  m.r2 = tot > 0 ? 1.0 - se / tot : (se == 0 ? 1.0 : 0.0);
  return m;
}

double RocAuc(const std::vector<double>& scores, const std::vector<double>& labels) {
  std::vector<std::size_t> idx;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (!std::isnan(labels[i])) idx.push_back(i);
  }
  std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return scores[a] < scores[b]; });
  // Mann-Whitney U: the positives' rank sum, tied scores sharing their average rank.
  double positive_ranks = 0, positives = 0;
  for (std::size_t i = 0; i < idx.size();) {
    std::size_t j = i;
    while (j < idx.size() && scores[idx[j]] == scores[idx[i]]) ++j;
    const double rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;  // ranks i+1..j
    for (std::size_t k = i; k < j; ++k) {
      if (labels[idx[k]] > 0.5) {
        positive_ranks += rank;
        positives += 1;
      }
    }
    i = j;
  }
  const double negatives = static_cast<double>(idx.size()) - positives;
  if (positives == 0 || negatives == 0) return std::numeric_limits<double>::quiet_NaN();
  return (positive_ranks - positives * (positives + 1) / 2) / (positives * negatives);
}

}  // namespace zt::science::molecule
