// DeepSpeed's learning-rate schedules (WarmupLR, WarmupDecayLR, WarmupCosineLR, OneCycle,
// LRRangeTest), reproduced step for step in double precision.
//
//   ASSIGN_OR_RETURN(zt::LrSchedule sched, zt::LrSchedule::Create(config.scheduler, config.optimizer.adam.lr));
//   for (...) { opt_step(sched.lr()); sched.Step(); }   // Step() after every applied update
//
// As in DeepSpeed, the schedule's lr at construction (last_batch_iteration = -1) is the lr of
// the first update, and Step() is called only after updates that were applied (an fp16 step
// skipped on overflow does not advance it).  OneCycle with cycle_momentum also drives Adam's
// betas: beta1 cycles, beta2 is 0.99.
#ifndef ZEROTRAIN_CORE_OPTIM_LR_SCHEDULE_H_
#define ZEROTRAIN_CORE_OPTIM_LR_SCHEDULE_H_

#include <cstdint>
#include <optional>
#include <utility>

#include "absl/status/statusor.h"
#include "core/config/config.h"

namespace zt {

class LrSchedule {
 public:
  // optimizer_lr: the optimizer's own lr (WarmupLR's default warmup_max_lr, WarmupCosineLR's
  // peak, and the constant lr when there is no schedule).
  static absl::StatusOr<LrSchedule> Create(const SchedulerConfig& config, double optimizer_lr);

  double lr() const { return lr_; }
  // Adam's (beta1, beta2) when the schedule sets them (OneCycle with cycle_momentum).
  std::optional<std::pair<double, double>> betas() const { return betas_; }
  std::int64_t last_batch_iteration() const { return last_batch_iteration_; }

  // DeepSpeed's scheduler.step(): advance one update and recompute lr (and betas).
  void Step();
  // Resume: set the iteration as scheduler.step(n) does.
  void StepTo(std::int64_t last_batch_iteration);

 private:
  LrSchedule(const SchedulerConfig& c, double optimizer_lr);
  void Compute();  // lr_ (and betas_) for last_batch_iteration_

  SchedulerConfig c_;
  double optimizer_lr_;
  double lr_;
  std::optional<std::pair<double, double>> betas_;
  std::int64_t last_batch_iteration_;
  // derived at construction
  double warmup_steps_ = 2;  // max(2, warmup_num_steps)
  double inverse_log_ = 0;   // 1 / log(warmup_steps_)
  double max_lr_ = 0;        // WarmupLR / WarmupDecayLR peak
  double cycle_total_ = 0;   // OneCycle: first + second step size
  double step_ratio_ = 0;    // OneCycle: first / total
  std::int64_t second_stairs_ = 0;
  double second_size_ = 0;
  bool skip_lr_decay_ = true;
  bool skip_mom_decay_ = true;
};

}  // namespace zt

#endif  // ZEROTRAIN_CORE_OPTIM_LR_SCHEDULE_H_
