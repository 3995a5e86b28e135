// fp16 loss scaling with DeepSpeed's semantics.
//
//   zt::LossScaler scaler = zt::LossScaler::Create(config.fp16, /*zero_stage=*/2);
//   loss * scaler.scale() -> backward -> overflow = any inf/NaN gradient on any rank
//   RETURN_IF_ERROR(scaler.Update(overflow));   // once per optimizer step; skip it on overflow
//
// Dynamic scaling (fp16.loss_scale == 0) starts at 2^initial_scale_power.  Under ZeRO (stage
// >= 1) it is DeepSpeed's DynamicLossScaler: an overflow halves the scale (not below
// min_loss_scale) once `hysteresis` overflows have been absorbed, and fails the run when the
// scale is already at the minimum; the scale doubles after loss_scale_window + 1 consecutive
// good steps; consecutive_hysteresis refills the hysteresis on every good step instead of only
// when the scale grows.  At stage 0 it is DeepSpeed's FP16_Optimizer rule: no hysteresis, no
// failure at the minimum.  A static scale (loss_scale > 0) never changes.  Without fp16 the
// scale is 1.
#ifndef ZEROTRAIN_CORE_PRECISION_LOSS_SCALER_H_
#define ZEROTRAIN_CORE_PRECISION_LOSS_SCALER_H_

#include <cstdint>

#include "absl/status/status.h"
#include "core/config/config.h"

namespace zt {

class LossScaler {
 public:
  static LossScaler Create(const Fp16Config& fp16, int zero_stage);

  double scale() const { return scale_; }
  bool dynamic() const { return dynamic_; }
  int hysteresis_left() const { return hysteresis_; }
  std::int64_t iteration() const { return iter_; }

  // Records one optimizer step.  Returns kAborted when an overflow happens with the scale
  // already at min_loss_scale under ZeRO (DeepSpeed stops the run there).
  [[nodiscard]] absl::Status Update(bool overflow);

  // For checkpoints: the whole state.
  struct State {
    double scale;
    std::int64_t iter;
    std::int64_t last_overflow_iter;
    int hysteresis;
  };
  State state() const { return {scale_, iter_, last_overflow_iter_, hysteresis_}; }
  void Restore(const State& s);

 private:
  bool dynamic_ = false;
  bool zero_rules_ = true;  // DynamicLossScaler (hysteresis, fail at min) vs FP16_Optimizer
  double scale_ = 1.0;
  double min_scale_ = 1.0;
  std::int64_t window_ = 1000;
  int delayed_shift_ = 1;
  bool consecutive_hysteresis_ = false;
  int hysteresis_ = 1;
  std::int64_t iter_ = 0;
  std::int64_t last_overflow_iter_ = -1;
};

}  // namespace zt

#endif  // ZEROTRAIN_CORE_PRECISION_LOSS_SCALER_H_
