// The engine's step lines, progress bar, monitor events and totals (engine.h, "progress").
#include <ATen/ATen.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/comm/comms_logger.h"
#include "core/engine/engine.h"
#include "core/monitor/step_line.h"
#include "core/profiler/flops_profiler.h"
#include "core/util/device_stats.h"
#include "core/util/logging.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace zt {
namespace {

double Between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

constexpr double kGib = 1024.0 * 1024.0 * 1024.0;

}  // namespace

void Engine::SetProgress(const ProgressOptions& options) {
  meter_.options = options;
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  meter_.bar = comm_->rank() == 0 && options.total_steps > 0 &&
               (options.bar == ProgressOptions::Bar::kOn || (options.bar == ProgressOptions::Bar::kAuto && tty));
  meter_.peak_tflops = options.peak_tflops > 0 ? options.peak_tflops : DevicePeakTflops(device_, compute_dtype_);
}

absl::Status Engine::FlushMeter(monitor::StepStats* stats) {
  StepMeter& m = meter_;
  // [loss sum, micro-steps, samples, tokens, flops, tokens unknown, flops unknown] over the ranks.
  at::Tensor sums;
  RETURN_IF_ERROR(CallTorch("gather the step counters", [&] {
    const at::Tensor counts =
        at::tensor(std::vector<double>{static_cast<double>(m.micro), static_cast<double>(m.samples),
                                       static_cast<double>(m.tokens), m.flops, m.tokens_known ? 0.0 : 1.0,
                                       m.flops_known ? 0.0 : 1.0},
                   at::kDouble)
            .to(device_);
    const at::Tensor loss =
        m.loss_sum.defined() ? m.loss_sum.to(at::kDouble).reshape({1}) : at::zeros({1}, counts.options());
    sums = at::cat({loss, counts});
  }));
  RETURN_IF_ERROR(AllReduceSync(*comm_, sums));
  std::vector<double> v(7);
  RETURN_IF_ERROR(CallTorch("read the step counters", [&] {
    const at::Tensor host = sums.to(at::kCPU).contiguous();
    std::copy(host.data_ptr<double>(), host.data_ptr<double>() + 7, v.begin());
  }));
  const double secs = std::max(m.busy_s, 1e-9);
  const bool tokens_known = v[5] == 0, flops_known = v[6] == 0;
  m.total_samples += static_cast<std::int64_t>(v[2]);
  m.total_tokens += static_cast<std::int64_t>(v[3]);
  m.total_flops += v[4];
  m.total_busy_s += m.busy_s;
  m.total_tokens_known = m.total_tokens_known && tokens_known;
  m.total_flops_known = m.total_flops_known && flops_known;
  if (stats != nullptr) {
    stats->loss = v[1] > 0 ? v[0] / v[1] : 0;
    stats->samples_per_sec = v[2] / secs;
    stats->tokens_per_sec = tokens_known ? v[3] / secs : -1;
    stats->tflops_per_gpu = flops_known ? v[4] / secs / comm_->world_size() / 1e12 : -1;
    stats->mfu = flops_known && m.peak_tflops > 0 ? stats->tflops_per_gpu / m.peak_tflops : -1;
  }
  m.loss_sum = at::Tensor();
  m.steps = m.micro = m.samples = m.tokens = 0;
  m.flops = m.busy_s = 0;
  m.tokens_known = m.flops_known = true;
  return absl::OkStatus();
}

absl::Status Engine::MaybeReport() {
  StepMeter& m = meter_;
  ++m.total_steps;
  ++m.steps;
  const std::int64_t every = config_.steps_per_print.value_or(m.options.report_every);
  const bool due = (every > 0 && global_steps_ % every == 0) ||
                   (m.options.total_steps > 0 && global_steps_ == m.options.total_steps);
  const double fwd = fwd_s_, bwd = bwd_s_, step = step_s_;
  if (due) fwd_s_ = bwd_s_ = step_s_ = 0;
  const double comm_s = due && comms_logger_ ? comms_logger_->TakeSeconds() : 0;
  if (!due) {
    if (m.bar) DrawBar();
    return absl::OkStatus();
  }
  // wall_clock_breakdown's milliseconds per step over the window: forward, backward, step, comm.
  const double per_step = 1e3 / static_cast<double>(std::max<std::int64_t>(m.steps, 1));
  const double fwd_ms = fwd * per_step, bwd_ms = bwd * per_step, step_ms = step * per_step, comm_ms = comm_s * per_step;
  monitor::StepStats s;
  RETURN_IF_ERROR(FlushMeter(&s));
  if (comm_->rank() != 0) return absl::OkStatus();
  s.step = global_steps_;
  s.total_steps = m.options.total_steps;
  if (m.options.steps_per_epoch > 0) s.epoch = static_cast<double>(global_steps_) / m.options.steps_per_epoch;
  s.lr = schedule_->lr();
  s.has_loss_scale = config_.fp16.enabled;
  s.loss_scale = scaler_.scale();
  s.grad_norm = last_grad_norm();
  s.skipped = skipped_steps_;
  const MemoryStats mem = ReadMemoryStats(device_);
  s.gpu_allocated = mem.gpu_allocated;
  s.gpu_reserved = mem.gpu_reserved;
  s.gpu_peak = mem.gpu_peak;
  s.host_rss = mem.host_rss;
  s.pinned = mem.pinned;
  s.eta_seconds = EtaSeconds();
  m.last = s;
  monitor::PrintLine(monitor::FormatStepLine(s));
  if (config_.wall_clock_breakdown) {
    monitor::PrintLine(absl::StrFormat(
        "time per step (ms, rank 0): forward %.2f, backward+reduce %.2f, optimizer step %.2f; communication %.2f of "
        "them (collectives timed one by one)",
        fwd_ms, bwd_ms, step_ms, comm_ms));
  }
  if (m.bar) DrawBar();
  if (monitor_) {
    const std::int64_t x = global_steps_ * config_.train_micro_batch_size_per_gpu *
                           config_.gradient_accumulation_steps * comm_->world_size();
    std::vector<monitor::ScalarEvent> ev;
    ev.push_back({"Train/Samples/samples_per_sec", s.samples_per_sec, x});
    if (s.tokens_per_sec >= 0) ev.push_back({"Train/Samples/tokens_per_sec", s.tokens_per_sec, x});
    if (s.tflops_per_gpu >= 0) ev.push_back({"Train/Samples/tflops", s.tflops_per_gpu, x});
    if (s.mfu >= 0) ev.push_back({"Train/Samples/mfu", s.mfu, x});
    ev.push_back({"Train/Samples/grad_norm", s.grad_norm, x});
    if (s.gpu_allocated >= 0) {
      ev.push_back({"Train/Samples/gpu_mem_allocated_gib", s.gpu_allocated / kGib, x});
      ev.push_back({"Train/Samples/gpu_mem_reserved_gib", s.gpu_reserved / kGib, x});
      ev.push_back({"Train/Samples/gpu_mem_peak_gib", s.gpu_peak / kGib, x});
    }
    if (s.host_rss >= 0) ev.push_back({"Train/Samples/host_rss_gib", s.host_rss / kGib, x});
    if (s.pinned >= 0) ev.push_back({"Train/Samples/pinned_gib", s.pinned / kGib, x});
    if (config_.wall_clock_breakdown) {
      ev.push_back({"Train/Samples/elapsed_time_ms_forward", fwd_ms, x});
      ev.push_back({"Train/Samples/elapsed_time_ms_backward", bwd_ms, x});
      ev.push_back({"Train/Samples/elapsed_time_ms_step", step_ms, x});
      ev.push_back({"Train/Samples/elapsed_time_ms_communication", comm_ms, x});
    }
    RETURN_IF_ERROR(monitor_->WriteEvents(ev));
  }
  return absl::OkStatus();
}

// The run's wall time per step so far (evaluation and checkpoints included: they recur) times
// the steps left; -1 without a total or before the first step.
double Engine::EtaSeconds() const {
  const std::int64_t done = global_steps_ - meter_.run_first_step;
  if (meter_.options.total_steps <= 0 || done <= 0) return -1;
  return Between(meter_.run_start, meter_.last_step) / static_cast<double>(done) *
         static_cast<double>(std::max<std::int64_t>(meter_.options.total_steps - global_steps_, 0));
}

void Engine::DrawBar() {
  StepMeter& m = meter_;
  monitor::StepStats s = m.last;
  s.step = global_steps_;
  s.total_steps = m.options.total_steps;
  if (last_loss_.defined()) s.loss = last_loss_.to(at::kCPU, at::kDouble).item<double>();
  s.eta_seconds = EtaSeconds();
  monitor::DrawProgressBar(monitor::FormatProgressBar(s, monitor::TerminalColumns()));
  if (global_steps_ >= s.total_steps) monitor::EndProgressBar();
}

// DeepSpeed's flops profiler: on rank 0, the forward of the first micro-step of step
// profile_step (global steps completed, as DeepSpeed counts), reported after that optimizer step.
absl::Status Engine::MaybeStartFlopsProfile() {
  const FlopsProfilerConfig& c = config_.flops_profiler;
  if (!c.enabled || comm_->rank() != 0 || profile_phase_ != ProfilePhase::kWaiting || global_steps_ != c.profile_step ||
      micro_steps_ % config_.gradient_accumulation_steps != 0) {
    return absl::OkStatus();
  }
  flops_profiler_ = std::make_unique<profiler::FlopsProfiler>();
  if (absl::Status s = flops_profiler_->Start(*model_, device_); !s.ok()) {
    // Rank 0 alone: failing here would leave the other ranks waiting in the next collective.
    ZT_LOG(WARNING) << "flops_profiler: no profile: " << s.message();
    flops_profiler_.reset();
    profile_phase_ = ProfilePhase::kDone;
  }
  return absl::OkStatus();
}

absl::Status Engine::StopFlopsProfile() {
  profile_phase_ = ProfilePhase::kProfiled;
  if (absl::Status s = flops_profiler_->Stop(); !s.ok()) {
    ZT_LOG(WARNING) << "flops_profiler: no profile: " << s.message();
    flops_profiler_.reset();
    profile_phase_ = ProfilePhase::kDone;
  }
  return absl::OkStatus();
}

absl::Status Engine::MaybeReportFlopsProfile(double step_seconds) {
  if (profile_phase_ != ProfilePhase::kProfiled) return absl::OkStatus();
  profile_phase_ = ProfilePhase::kDone;
  const FlopsProfilerConfig& c = config_.flops_profiler;
  profiler::ProfileSummary s;
  s.profile_step = c.profile_step;
  s.world_size = s.data_parallel_size = comm_->world_size();
  s.micro_batch_size_per_gpu = config_.train_micro_batch_size_per_gpu;
  // The profiler's own forward time: it synchronises a CUDA device at its ends, where the
  // engine's forward timer would stop while kernels are still queued.
  s.fwd_latency_s = 0;
  s.bwd_latency_s = profile_bwd_s_;
  s.step_latency_s = step_seconds;
  s.recompute_fwd_factor = c.recompute_fwd_factor;
  s.module_depth = c.module_depth;
  s.top_modules = c.top_modules;
  s.detailed = c.detailed;
  // A report that cannot be written is a warning (rank 0 alone; it names the file).
  if (absl::Status w = profiler::WriteReport(flops_profiler_->Report(s), c.output_file); !w.ok()) {
    ZT_LOG(WARNING) << w.message();
  }
  flops_profiler_.reset();
  return absl::OkStatus();
}

absl::StatusOr<TrainingTotals> Engine::Totals() {
  RETURN_IF_ERROR(FlushMeter(nullptr));
  const StepMeter& m = meter_;
  TrainingTotals t;
  t.seconds = m.total_busy_s;
  t.steps = m.total_steps;
  t.samples = m.total_samples;
  t.tokens = m.total_tokens_known ? m.total_tokens : -1;
  t.flops = m.total_flops_known ? m.total_flops : -1;
  t.peak_tflops = m.peak_tflops;
  t.world_size = comm_->world_size();
  t.memory = ReadMemoryStats(device_);
  return t;
}

// DeepSpeed's events and x-axis: the samples trained so far (global steps x the global batch);
// the loss is this rank's mean over the accumulation's micro-steps.
absl::Status Engine::WriteMonitorEvents() {
  const std::int64_t samples = global_steps_ * config_.train_micro_batch_size_per_gpu *
                               config_.gradient_accumulation_steps * comm_->world_size();
  std::vector<monitor::ScalarEvent> events;
  double loss = 0;
  RETURN_IF_ERROR(CallTorch("read the loss", [&] {
    loss = monitor_loss_sum_.item<double>() / static_cast<double>(config_.gradient_accumulation_steps);
  }));
  monitor_loss_sum_ = at::Tensor();
  events.push_back({"Train/Samples/train_loss", loss, samples});
  events.push_back({"Train/Samples/lr", schedule_->lr(), samples});
  if (config_.fp16.enabled) events.push_back({"Train/Samples/loss_scale", scaler_.scale(), samples});
  return monitor_->WriteEvents(events);
}

}  // namespace zt
