#include "core/optim/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace zt {
namespace {

bool IsClose(double a, double b) { return std::fabs(a - b) <= 1e-9 * std::max(std::fabs(a), std::fabs(b)); }

}  // namespace

absl::StatusOr<LrSchedule> LrSchedule::Create(const SchedulerConfig& c, double optimizer_lr) {
  switch (c.type) {
    case SchedulerType::kWarmupLR:
    case SchedulerType::kWarmupDecayLR:
    case SchedulerType::kWarmupCosineLR:
      if (c.warmup_num_steps <= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("scheduler.params.warmup_num_steps must be a positive integer, got ", c.warmup_num_steps));
      }
      if (c.type != SchedulerType::kWarmupLR && !c.total_num_steps) {
        return absl::InvalidArgumentError("scheduler.params.total_num_steps is required by this scheduler");
      }
      break;
    case SchedulerType::kLRRangeTest:
      if (c.lr_range_test_step_size <= 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "scheduler.params.lr_range_test_step_size must be a positive integer, got ", c.lr_range_test_step_size));
      }
      break;
    case SchedulerType::kOneCycle:
      if (!(c.cycle_first_step_size > 0)) {
        return absl::InvalidArgumentError(
            absl::StrCat("scheduler.params.cycle_first_step_size must be positive, got ", c.cycle_first_step_size));
      }
      if (c.cycle_second_step_size && *c.cycle_second_step_size < 0) {
        return absl::InvalidArgumentError("scheduler.params.cycle_second_step_size must not be negative");
      }
      break;
    case SchedulerType::kNone:
      break;
  }
  return LrSchedule(c, optimizer_lr);
}

LrSchedule::LrSchedule(const SchedulerConfig& c, double optimizer_lr)
    : c_(c), optimizer_lr_(optimizer_lr), lr_(optimizer_lr), last_batch_iteration_(c.last_batch_iteration) {
  warmup_steps_ = static_cast<double>(std::max<std::int64_t>(2, c.warmup_num_steps));
  inverse_log_ = 1.0 / std::log(warmup_steps_);
  max_lr_ = c.warmup_max_lr.value_or(c.type == SchedulerType::kWarmupDecayLR ? 0.001 : optimizer_lr);
  if (c.type == SchedulerType::kOneCycle) {
    const double first = c.cycle_first_step_size;
    second_size_ = c.cycle_second_step_size.value_or(first);
    cycle_total_ = first + second_size_;
    step_ratio_ = first / cycle_total_;
    second_stairs_ = c.cycle_second_stair_count.value_or(c.cycle_first_stair_count);
    skip_lr_decay_ = skip_mom_decay_ = IsClose(c.decay_step_size, 0);
    skip_lr_decay_ = skip_lr_decay_ || IsClose(c.decay_lr_rate, 0);
    skip_mom_decay_ = skip_mom_decay_ || IsClose(c.decay_mom_rate, 0);
  }
  // DeepSpeed sets the lr at construction only when starting fresh.
  if (c.type != SchedulerType::kNone && last_batch_iteration_ == -1) {
    if (c.type == SchedulerType::kOneCycle) {
      lr_ = c.cycle_min_lr;
      if (c.cycle_momentum) betas_ = std::make_pair(c.cycle_min_mom, 0.99);
    } else {
      Compute();
    }
  }
}

void LrSchedule::Step() { StepTo(last_batch_iteration_ + 1); }

void LrSchedule::StepTo(std::int64_t i) {
  last_batch_iteration_ = i;
  if (c_.type != SchedulerType::kNone) Compute();
}

void LrSchedule::Compute() {
  const std::int64_t i = last_batch_iteration_;
  const double di = static_cast<double>(i);
  auto warmup_gamma = [&]() {
    return c_.warmup_type == WarmupType::kLog ? inverse_log_ * std::log(di + 1) : di / warmup_steps_;
  };
  switch (c_.type) {
    case SchedulerType::kNone:
      lr_ = optimizer_lr_;
      return;
    case SchedulerType::kWarmupLR:
    case SchedulerType::kWarmupDecayLR: {
      const double min_lr = c_.warmup_min_lr;
      if (i < 0) {
        lr_ = min_lr;
        return;
      }
      double gamma = 1.0;
      if (di < warmup_steps_) {
        gamma = warmup_gamma();
      } else if (c_.type == SchedulerType::kWarmupDecayLR) {
        const double total = static_cast<double>(*c_.total_num_steps);
        gamma = std::max(0.0, (total - di) / std::max(1.0, total - warmup_steps_));
      }
      lr_ = min_lr + (max_lr_ - min_lr) * gamma;
      return;
    }
    case SchedulerType::kWarmupCosineLR: {
      double ratio = 0.0;
      if (i >= 0 && di < warmup_steps_) {
        ratio = c_.warmup_min_ratio + warmup_gamma() * (1.0 - c_.warmup_min_ratio);
      } else if (i >= 0) {
        const double real_last = di - warmup_steps_ + 1;
        const double real_total = std::max(1.0, static_cast<double>(*c_.total_num_steps) - warmup_steps_);
        const double p = std::min(1.0, real_last / real_total);
        const double cos_value = (1 + std::cos(M_PI * p)) / 2;
        ratio = std::max(0.0, c_.cos_min_ratio + (1.0 - c_.cos_min_ratio) * cos_value);
      }
      lr_ = optimizer_lr_ * ratio;
      return;
    }
    case SchedulerType::kLRRangeTest: {
      const double x = (di + 1) / static_cast<double>(c_.lr_range_test_step_size);
      const double interval = c_.lr_range_test_staircase ? std::floor(x) : x;
      lr_ = c_.lr_range_test_min_lr * (1 + c_.lr_range_test_step_rate * interval);
      return;
    }
    case SchedulerType::kOneCycle: {
      const double b = di + 1;
      const double cycle = std::floor(1 + b / cycle_total_);
      const double x = 1.0 + b / cycle_total_ - cycle;
      double sf;
      std::int64_t stairs;
      if (x <= step_ratio_) {
        sf = x / step_ratio_;
        stairs = c_.cycle_first_stair_count;
      } else {
        sf = (x - 1) / (step_ratio_ - 1);
        stairs = second_stairs_;
      }
      if (stairs > 0) {
        const double ci = std::fmod(b, cycle_total_);  // b >= 0: Python's % agrees
        const double first = c_.cycle_first_step_size;
        const double pos = ci <= first ? ci * stairs / first : (cycle_total_ - ci) * stairs / second_size_;
        sf = std::floor(pos) / stairs;
      }
      if (di < cycle_total_) {
        lr_ = c_.cycle_min_lr + (c_.cycle_max_lr - c_.cycle_min_lr) * sf;
        if (c_.cycle_momentum)
          betas_ = std::make_pair(c_.cycle_max_mom - (c_.cycle_max_mom - c_.cycle_min_mom) * sf, 0.99);
      } else {
        const double d = di - cycle_total_ + 1;
        lr_ = skip_lr_decay_ ? c_.cycle_min_lr : c_.cycle_min_lr / (1 + c_.decay_lr_rate * (d / c_.decay_step_size));
        if (c_.cycle_momentum) {
          const double beta1 = skip_mom_decay_ ? c_.cycle_max_mom
                                               : c_.cycle_max_mom * (1 + c_.decay_mom_rate * (d / c_.decay_step_size));
          betas_ = std::make_pair(beta1, 0.99);
        }
      }
      return;
    }
  }
}

}  // namespace zt
