// Property-prediction metrics, always reported beside the trivial baseline: RMSE, MAE and R²
// for regression (baseline: the training mean), ROC-AUC for classification (baseline: the
// majority class, a constant score, whose AUC is 0.5).  Entries whose target is NaN (missing)
// are left out; a metric with nothing to measure is NaN.
#ifndef ZEROTRAIN_SCIENCE_MOLECULE_METRICS_H_
#define ZEROTRAIN_SCIENCE_MOLECULE_METRICS_H_

#include <vector>

namespace zt::science::molecule {

struct RegressionMetrics {
  double rmse = 0, mae = 0, r2 = 0;
  long count = 0;
};

// R² = 1 - SS_res / SS_tot around the mean of `truth` (sklearn's r2_score).
RegressionMetrics Regression(const std::vector<double>& predicted, const std::vector<double>& truth);

// ROC-AUC from scores and 0/1 labels (ties share the average rank, as sklearn's
// roc_auc_score); NaN when only one class is present.
double RocAuc(const std::vector<double>& scores, const std::vector<double>& labels);

}  // namespace zt::science::molecule

#endif  // ZEROTRAIN_SCIENCE_MOLECULE_METRICS_H_
