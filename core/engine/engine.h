// The training engine: what deepspeed.initialize returns, for ZeRO stages 0-3.
//
//   ASSIGN_OR_RETURN(zt::Config config, zt::Config::FromFile(path, job));
//   ASSIGN_OR_RETURN(std::shared_ptr<zt::Communicator> comm, zt::Communicator::Create(comm_options));
//   ASSIGN_OR_RETURN(std::unique_ptr<zt::Engine> engine, zt::Engine::Create(model, config, comm));
//   for (const zt::Batch& batch : micro_batches) {
//     ASSIGN_OR_RETURN(at::Tensor loss, engine->Forward(batch));
//     RETURN_IF_ERROR(engine->Backward(loss));
//     RETURN_IF_ERROR(engine->Step());          // updates only at accumulation boundaries
//   }
//   RETURN_IF_ERROR(engine->SaveCheckpoint(save_dir));   // LoadCheckpoint(save_dir) resumes
//
// The update is the one plain single-process training computes on the global batch (the
// equivalence the tests hold every stage to):
//  - the model's parameters become views of one flat buffer (partition.h's layout) in the
//    compute dtype (fp32, or bf16/fp16 with fp32 master weights in the optimizer);
//  - Backward scales the loss by loss_scale / gradient_accumulation_steps; gradients are
//    accumulated in fp32 and, on the boundary micro-step only, reduced across ranks in buckets
//    while backward runs (grad_reducer.h): all-reduce at stage 0, reduce to the owning rank at
//    stages 1 and 2 (stage 2 keeps only the rank's shard when there is no accumulation);
//  - Step checks for inf/NaN across ranks (fp16, and bf16 with check_grad_overflow; every rank
//    skips an overflowed step together and the loss scaler reacts), clips by the global norm,
//    runs Adam/AdamW on the rank's fp32 shard (all of it at stage 0), then all-gathers the
//    updated parameters (stages 1 and 2) and advances the LR schedule.
// Every rank checks at creation that all ranks hold the same parameters (names, shapes,
// dtypes, order), so a mismatch fails with a message instead of hanging.
#ifndef ZEROTRAIN_CORE_ENGINE_ENGINE_H_
#define ZEROTRAIN_CORE_ENGINE_ENGINE_H_

#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/comm/communicator.h"
#include "core/config/config.h"
#include "core/engine/model.h"
#include "core/monitor/monitor.h"
#include "core/monitor/step_line.h"
#include "core/optim/adam_shard.h"
#include "core/optim/host_adam.h"
#include "core/optim/lr_schedule.h"
#include "core/precision/loss_scaler.h"
#include "core/util/device_stats.h"
#include "core/zero/grad_reducer.h"
#include "core/zero/partition.h"
#include "core/zero/stage3.h"

namespace zt {

class Engine;
class LoggingCommunicator;
namespace profiler {
class FlopsProfiler;
}  // namespace profiler

// Full parameters for a scope (DeepSpeed's GatheredParameters): at stage 3 every unit is
// gathered for the scope's life; with a modifier rank, that rank's values are what every rank
// keeps when the scope ends (for initialising or editing weights).  At stages 0-2 parameters
// are always whole; a modifier rank's values are broadcast at the end all the same.  Every rank
// opens and closes the scope at the same point.
class GatheredParameters {
 public:
  ~GatheredParameters();
  GatheredParameters(const GatheredParameters&) = delete;
  GatheredParameters& operator=(const GatheredParameters&) = delete;
  // Ends the scope now (the destructor does it otherwise, logging a failure).
  [[nodiscard]] absl::Status Release();

 private:
  friend class Engine;
  GatheredParameters(Engine* engine, int modifier_rank) : engine_(engine), modifier_rank_(modifier_rank) {}
  Engine* engine_;
  int modifier_rank_;
  bool released_ = false;
};

// Engine::SaveCheckpoint's options.
struct SaveCheckpointOptions {
  // The job's own state (JSON: data position, history), handed back by LoadCheckpoint.
  std::string client_state;
  // Written by rank 0 into the step directory beside the shards (the model's config.json).
  std::map<std::string, std::string> files;
  // Parameter name -> the name tools/zero_to_fp32 writes it under (HF's names); unlisted
  // names are written as they are.
  std::map<std::string, std::string> export_names;
  bool update_latest = true;
  // Keep the newest `keep` step directories in save_dir (and the one `latest` names); 0 keeps all.
  int keep = 0;
  // Crash tests: called on rank 0 before every disk-changing step (CheckpointWriterOptions).
  std::function<void(absl::string_view step)> before_each_write_step;
};

// What Engine::LoadCheckpoint found.
struct LoadedCheckpoint {
  std::string step_dir;
  std::int64_t global_step = 0;
  int saved_world_size = 1;
  int saved_stage = 0;
  std::string client_state;
};

// Engine::SetProgress: what a job knows about its run, for the engine's step lines.
struct ProgressOptions {
  std::int64_t total_steps = 0;  // optimizer steps of the whole run; 0: unknown (no ETA, no bar)
  double steps_per_epoch = 0;    // optimizer steps per epoch; 0: no epoch in the line
  // A line every N optimizer steps when the config has no steps_per_print (0: none but the last).
  std::int64_t report_every = 0;
  double peak_tflops = 0;  // the device's dense peak for MFU; 0: from the card's name (a CPU: none)
  // Rank 0's progress bar: when stderr is a terminal (kAuto), always, or never.
  enum class Bar { kAuto, kOn, kOff } bar = Bar::kAuto;
};

// Engine::Totals: this process's training, all ranks together.
struct TrainingTotals {
  double seconds = 0;  // in optimizer steps: from each step's first Forward to its Step (rank 0)
  std::int64_t steps = 0;
  std::int64_t samples = 0;
  std::int64_t tokens = -1;  // -1: the model counts none
  double flops = -1;         // model FLOPs (Model::Work); -1: unknown
  double peak_tflops = 0;    // per device, as MFU uses it; 0: unknown
  int world_size = 1;
  MemoryStats memory;  // rank 0's at the call (gpu_peak: since the process started)
};

struct EngineOptions {
  // Where the model trains; default: cuda:<local rank> with the NCCL backend, else the CPU.
  std::optional<at::Device> device;
};

class Engine {
 public:
  static absl::StatusOr<std::unique_ptr<Engine>> Create(std::shared_ptr<Model> model, const Config& config,
                                                        std::shared_ptr<Communicator> comm,
                                                        const EngineOptions& options = {});
  ~Engine();

  // Moves the batch to the model's device (casting floating inputs to fp16 when
  // fp16.auto_cast) and returns the model's loss.
  absl::StatusOr<at::Tensor> Forward(const Batch& batch);
  // Backward of this micro-step's loss; on an accumulation boundary, also the gradient
  // reduction across ranks.
  [[nodiscard]] absl::Status Backward(const at::Tensor& loss);
  // Ends the micro-step; on an accumulation boundary, the optimizer step.
  [[nodiscard]] absl::Status Step();

  // See GatheredParameters.  modifier_rank -1: read-only.
  absl::StatusOr<std::unique_ptr<GatheredParameters>> GatherParameters(int modifier_rank = -1);
  // Every parameter's full value (16-bit at bf16/fp16), on the CPU, by name; at stage 3 only
  // with zero_optimization.stage3_gather_16bit_weights_on_model_save, as DeepSpeed.
  absl::StatusOr<std::map<std::string, at::Tensor>> ConsolidatedStateDict();
  // Returns once every rank got here.  At stage 3 ranks waiting here keep serving the others'
  // gathers, so ranks that ran different forward code (generation lengths) meet again.
  [[nodiscard]] absl::Status Barrier();
  // --- checkpoints (engine_checkpoint.cc) --------------------------------------------------
  // Writes SAVE_DIR/global_step<global_steps()>/ and points SAVE_DIR/latest at it
  // (core/ckpt/checkpoint_dir.h: crash-safe, checksummed).  Each rank writes its partition of
  // the 16-bit parameters, fp32 master weights and Adam moments (stage 0: rank 0 holds them all)
  // and its RNG states; rank 0 adds the manifest with the partition map, the engine's counters,
  // LR schedule and loss scaler, and options.client_state.  Every rank calls it at the same
  // accumulation boundary; the save directory must be one filesystem all ranks see.
  [[nodiscard]] absl::Status SaveCheckpoint(const std::string& save_dir, const SaveCheckpointOptions& options = {});
  // Loads a checkpoint (a step directory, or a save directory with `latest`) saved at any world
  // size and ZeRO stage: each rank reads the slices of its own partition from whichever ranks'
  // files hold them, after checking those files' checksums.  Nothing changes unless every rank
  // read everything it needs; then training continues exactly where the saved run was (the
  // same world size and stage continue bit for bit).  Every rank calls it at the same point.
  absl::StatusOr<LoadedCheckpoint> LoadCheckpoint(const std::string& path);

  // --- progress (engine_report.cc) --------------------------------------------------------
  // Every steps_per_print optimizer steps (else options.report_every) and at the last step, every
  // rank meets in one small all-reduce and rank 0 prints the step line (monitor/step_line.h:
  // loss over the ranks and micro-steps since the last line, LR, grad norm, samples/s, tokens/s,
  // TFLOPS and MFU from Model::Work, GPU and host memory, ETA) and hands the throughput and
  // memory figures to the tensorboard / csv_monitor writers.  On a terminal rank 0 also redraws a
  // progress bar after every optimizer step.  Call before training; every rank passes the same.
  void SetProgress(const ProgressOptions& options);
  // The totals of this process's training so far; every rank calls it at the same point.
  absl::StatusOr<TrainingTotals> Totals();
  // The last step line's numbers (rank 0; other ranks' lack the gathered ones).
  const monitor::StepStats& last_report() const { return meter_.last; }

  // Ends training: a barrier, then the engine lets go of the model.  Call it on every rank
  // before shutting the communicator down.
  [[nodiscard]] absl::Status Shutdown();

  // --- state ------------------------------------------------------------------------------
  bool is_gradient_accumulation_boundary() const;
  std::int64_t micro_steps() const { return micro_steps_; }
  std::int64_t global_steps() const { return global_steps_; }    // boundaries, skipped ones too
  std::int64_t skipped_steps() const { return skipped_steps_; }  // fp16/bf16 overflows
  double lr() const { return schedule_->lr(); }
  double loss_scale() const { return scaler_.scale(); }
  // The global gradient norm of the last applied step, before clipping (unscaled).  Reading it
  // may wait for the GPU (the norm stays there until asked for).
  double last_grad_norm() const;
  const FlatLayout& layout() const { return layout_; }
  // The optimizer state of this rank's partition: on the device (nullptr when all of it is
  // offloaded) and in host memory (ZeRO-Offload, nullptr without).  With a partial offload
  // (stage 3's offload_optimizer.ratio) the host part holds the first host_elems() elements.
  const AdamShard* device_optimizer() const { return adam_.get(); }
  const HostAdam* host_optimizer() const { return host_adam_.get(); }
  HostAdam* host_optimizer() { return host_adam_.get(); }
  // The NVMe swap I/O engine (offload device nvme), else null.
  const io::IoEngine* io_engine() const { return io_.get(); }
  std::int64_t host_elems() const { return host_elems_; }
  // Bytes of model parameters this rank holds now (stage 3: shards, gathered units, persistent).
  std::int64_t ParameterBytes() const;
  // The stage-3 coordinator (nullptr below stage 3).
  const Stage3* stage3() const { return stage3_.get(); }
  Model& module() { return *model_; }
  Communicator& comm() { return *comm_; }
  const Communicator& comm() const { return *comm_; }
  at::Device device() const { return device_; }
  const Config& config() const { return config_; }

 private:
  Engine(std::shared_ptr<Model> model, const Config& config, std::shared_ptr<Communicator> comm, at::Device device);
  friend class GatheredParameters;
  absl::Status Init();
  absl::Status InitStage3();
  // The optimizer over `params` (this rank's partition in the compute dtype; the master weights
  // start from it): Adam on the device, in host memory, or split at offload_optimizer.ratio.
  absl::Status InitOptimizer(const at::Tensor& params, const at::Tensor& device_master);
  // The master weights after `params` changed outside the optimizer (a modifier rank).
  absl::Status ReloadMaster();
  absl::Status CreateIoEngine();  // from the "aio" block, once
  absl::Status Flatten();
  // A rank's optimizer partition as pieces of the named trainable parameters: piece elements
  // [begin, end) of parameter `param` sit at [offset, ...) of the partition (engine_checkpoint.cc).
  struct StatePiece {
    int param = 0;
    std::int64_t begin = 0, end = 0, offset = 0;
  };
  struct StateMap {
    std::vector<std::string> names;
    std::vector<std::vector<std::int64_t>> shapes;
    std::vector<StatePiece> pieces;
    std::int64_t size = 0;  // the partition's length
  };
  StateMap MapState(int rank) const;
  // This rank's partition of one kind (0 parameters, 1 master, 2 exp_avg, 3 exp_avg_sq), on the
  // device or in host memory, `host` holding the offloaded state when there is some.
  absl::StatusOr<at::Tensor> PartitionValues(int kind, const HostAdam::State* host);
  absl::Status InstallPartition(const std::vector<at::Tensor>& values, std::int64_t optimizer_steps);
  absl::Status ReleaseGathered(int modifier_rank);
  absl::Status AllGatherUpdated();
  absl::Status ApplyStep();
  // After each optimizer step: the step line when one is due (engine_report.cc).
  absl::Status MaybeReport();
  // The meter's window summed over the ranks, added to the totals; *stats gets the window's
  // rates (rank 0).  A collective.
  absl::Status FlushMeter(monitor::StepStats* stats);
  void DrawBar();
  double EtaSeconds() const;
  // DeepSpeed's monitor events after an optimizer step (rank 0, tensorboard / csv_monitor).
  absl::Status WriteMonitorEvents();

  std::shared_ptr<Model> model_;
  Config config_;
  std::shared_ptr<Communicator> comm_;
  // comm_ itself when comms_logger or wall_clock_breakdown time the collectives, else null.
  std::shared_ptr<LoggingCommunicator> comms_logger_;
  at::Device device_;
  at::ScalarType compute_dtype_ = at::kFloat;

  std::vector<at::Tensor> params_;
  std::vector<std::string> param_names_;  // stages 0-2: of params_
  FlatLayout layout_;
  at::Tensor flat_;                       // [padded] compute dtype: the parameters are views of it
  at::Tensor opt_params_;                 // compute dtype: the partition the optimizer updates
  at::Tensor master_;                     // fp32 master weights of its device part (opt_params_ itself in fp32)
  std::unique_ptr<io::IoEngine> io_;      // ZeRO-Infinity's swap I/O (outlives its users below)
  std::unique_ptr<GradReducer> reducer_;  // stages 0-2
  std::unique_ptr<Stage3> stage3_;        // stage 3
  std::unique_ptr<AdamShard> adam_;       // [host_elems_, n) of the partition
  std::unique_ptr<HostAdam> host_adam_;   // [0, host_elems_): ZeRO-Offload
  std::int64_t host_elems_ = 0;
  std::optional<LrSchedule> schedule_;
  LossScaler scaler_;

  std::int64_t micro_steps_ = 0;
  std::int64_t global_steps_ = 0;
  std::int64_t skipped_steps_ = 0;
  mutable double last_grad_norm_ = 0;
  mutable at::Tensor last_grad_norm_device_;  // when set, the norm not yet read from the GPU
  bool backward_done_ = false;
  at::Tensor last_loss_;  // detached; read only when a report is due (reading syncs a GPU)
  // tensorboard / csv_monitor (rank 0 only): the accumulation's loss sum, read at the boundary.
  std::optional<monitor::Monitor> monitor_;
  at::Tensor monitor_loss_sum_;

  // wall_clock_breakdown
  std::chrono::steady_clock::time_point t_forward_, t_backward_;
  double fwd_s_ = 0, bwd_s_ = 0, step_s_ = 0;

  // flops_profiler (rank 0): the first forward of step profile_step, reported after its
  // optimizer step (engine_report.cc).
  std::unique_ptr<profiler::FlopsProfiler> flops_profiler_;
  enum class ProfilePhase { kWaiting, kProfiled, kDone } profile_phase_ = ProfilePhase::kWaiting;
  double profile_bwd_s_ = 0;
  absl::Status MaybeStartFlopsProfile();
  absl::Status StopFlopsProfile();
  absl::Status MaybeReportFlopsProfile(double step_seconds);

  // What the step lines count (engine_report.cc).  The window runs from the last line.
  struct StepMeter {
    ProgressOptions options;
    bool bar = false;
    double peak_tflops = 0;
    bool started = false;  // the first Forward happened
    bool in_step = false;  // between an optimizer step's first Forward and its Step
    std::chrono::steady_clock::time_point run_start, step_start, last_step;
    std::int64_t run_first_step = 0;
    // This rank's window.  busy_s: seconds from each optimizer step's first Forward to its Step
    // (evaluation, checkpoints and data loading between steps are not training time).
    at::Tensor loss_sum;  // detached, on the device: read only when a line is due
    std::int64_t steps = 0, micro = 0, samples = 0, tokens = 0;
    double flops = 0, busy_s = 0;
    bool tokens_known = true, flops_known = true;
    // All ranks, flushed windows (total_busy_s: rank 0's).
    std::int64_t total_samples = 0, total_tokens = 0, total_steps = 0;
    double total_flops = 0, total_busy_s = 0;
    bool total_tokens_known = true, total_flops_known = true;
    monitor::StepStats last;
  } meter_;
};

}  // namespace zt

#endif  // ZEROTRAIN_CORE_ENGINE_ENGINE_H_
