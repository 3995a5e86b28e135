#include "core/precision/loss_scaler.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/util/logging.h"

namespace zt {

LossScaler LossScaler::Create(const Fp16Config& fp16, int zero_stage) {
  LossScaler s;
  if (!fp16.enabled) return s;
  if (fp16.loss_scale > 0) {
    s.scale_ = fp16.loss_scale;
    return s;
  }
  s.dynamic_ = true;
  s.zero_rules_ = zero_stage >= 1;
  s.scale_ = std::ldexp(1.0, fp16.initial_scale_power);
  s.min_scale_ = fp16.min_loss_scale;
  s.window_ = fp16.loss_scale_window;
  s.delayed_shift_ = s.zero_rules_ ? fp16.hysteresis : 1;
  s.hysteresis_ = s.delayed_shift_;
  s.consecutive_hysteresis_ = fp16.consecutive_hysteresis;
  return s;
}

absl::Status LossScaler::Update(bool overflow) {
  if (!dynamic_) {
    if (overflow) ZT_LOG(WARNING) << "fp16 overflow: skipping this step (static loss scale " << scale_ << ")";
    ++iter_;
    return absl::OkStatus();
  }
  if (overflow) {
    if (delayed_shift_ == 1 || hysteresis_ == 1) {
      if (zero_rules_ && scale_ == min_scale_) {
        return absl::AbortedError(absl::StrCat("fp16 overflow with the loss scale already at min_loss_scale ",
                                               min_scale_, ": cannot lower it further, stopping the run"));
      }
      const double next = std::max(scale_ / 2.0, min_scale_);
      ZT_LOG(INFO) << "fp16 overflow: skipping this step, loss scale " << scale_ << " -> " << next;
      scale_ = next;
    } else {
      ZT_LOG(INFO) << "fp16 overflow: skipping this step, loss scale stays " << scale_ << ", hysteresis " << hysteresis_
                   << " -> " << hysteresis_ - 1;
      --hysteresis_;
    }
    last_overflow_iter_ = iter_;
  } else {
    if (consecutive_hysteresis_) hysteresis_ = delayed_shift_;
    const std::int64_t stable = iter_ - last_overflow_iter_ - 1;
    if (stable > 0 && stable % window_ == 0) {
      if (!consecutive_hysteresis_) hysteresis_ = delayed_shift_;
      scale_ *= 2.0;
    }
  }
  ++iter_;
  return absl::OkStatus();
}

void LossScaler::Restore(const State& s) {
  scale_ = s.scale;
  iter_ = s.iter;
  last_overflow_iter_ = s.last_overflow_iter;
  hysteresis_ = s.hysteresis;
}

}  // namespace zt
