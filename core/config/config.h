// DeepSpeed's JSON training config, as users already have it, parsed into a typed record.
//
//   zt::AutoValues job;                       // the job's own flags, for "auto" values
//   job.lr = 5e-5;  job.micro_batch = 4;  job.world_size = comm->world_size();
//   ASSIGN_OR_RETURN(zt::Config config, zt::Config::FromFile("ds_config_zero2.json", job));
//   RETURN_IF_ERROR(config.RequireImplemented());   // at job start
//
// Every key DeepSpeed accepts is known.  The parse is stricter than DeepSpeed's own: an
// unknown or mistyped key anywhere is an error naming its JSON path and the closest valid key;
// a wrong type names the path and the expected type; keys DeepSpeed has removed are errors with
// DeepSpeed's reason.  Integer keys accept integral numbers written as 2e8.  Defaults are
// DeepSpeed's current code's (0.19.8), e.g. reduce_bucket_size 5e8, stage3_prefetch_bucket_size
// 5e7, overlap_comm true only for stage 3.  Deprecated names are accepted with one warning.
//
// "auto" values are filled from AutoValues as HF transformers' DeepSpeed integration fills them
// (lr, betas, eps, weight_decay, batch sizes, accumulation, clipping, warmup/total steps,
// fp16/bf16, reduce_bucket_size = hidden^2, stage-3 prefetch = 0.9 hidden^2 and persistence
// threshold = 10 hidden); an explicit value that contradicts a job flag is an error listing every
// mismatch, as in HF.  An "auto" no job value fills takes DeepSpeed's default where DeepSpeed has
// one; where it has none (the batch sizes) the parse fails naming the key.  Batch sizes are
// inferred and checked like DeepSpeed's (train_batch_size = micro x accumulation x world size).
//
// Features this build does not implement yet are parsed and validated; they are listed in
// `not_implemented` and RequireImplemented() refuses them when a job starts, never silently
// ignoring them.
#ifndef ZEROTRAIN_CORE_CONFIG_CONFIG_H_
#define ZEROTRAIN_CORE_CONFIG_CONFIG_H_

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace zt {

enum class Precision { kFp32, kBf16, kFp16 };
enum class OffloadDevice { kNone, kCpu, kNvme };
enum class OptimizerType { kNone, kAdam, kAdamW };
enum class SchedulerType { kNone, kWarmupLR, kWarmupDecayLR, kWarmupCosineLR, kOneCycle, kLRRangeTest };
enum class WarmupType { kLog, kLinear };
enum class CommDataType { kDefault, kFp32, kFp16, kBf16 };  // communication_data_type
enum class AllReduceOp { kMean, kSum };                     // gradient_allreduce_op

// The job's own values that fill "auto" (HF's TrainingArguments and model config).  Unset
// fields fill nothing.
struct AutoValues {
  std::optional<double> lr;                     // optimizer.params.lr, scheduler warmup_max_lr
  std::optional<std::pair<double, double>> betas;  // optimizer.params.betas
  std::optional<double> eps;                    // optimizer.params.eps
  std::optional<double> weight_decay;           // optimizer.params.weight_decay
  std::optional<std::int64_t> micro_batch;      // train_micro_batch_size_per_gpu
  std::optional<std::int64_t> gradient_accumulation_steps;
  std::optional<double> max_grad_norm;          // gradient_clipping
  std::optional<std::int64_t> warmup_steps;     // scheduler.params.warmup_num_steps (max(1, .))
  std::optional<std::int64_t> total_steps;      // scheduler.params.total_num_steps
  std::optional<bool> fp16;                     // fp16.enabled
  std::optional<bool> bf16;                     // bf16.enabled
  std::optional<std::int64_t> hidden_size;      // bucket sizes, stage-3 thresholds
  int world_size = 1;                           // data-parallel ranks, for the batch arithmetic
};

struct Fp16Config {
  bool enabled = false;
  bool auto_cast = false;       // cast floating-point inputs of the model to fp16
  double loss_scale = 0;        // 0: dynamic scaling; > 0: this static scale
  int initial_scale_power = 16;  // dynamic scale starts at 2^initial_scale_power
  int loss_scale_window = 1000;  // good steps before the scale doubles
  int hysteresis = 2;            // overflows tolerated before the scale halves
  bool consecutive_hysteresis = false;  // refill hysteresis after every good step
  int min_loss_scale = 1;
  bool fp16_master_weights_and_grads = false;
};

struct Bf16Config {
  bool enabled = false;
  bool immediate_grad_update = false;
  bool check_grad_overflow = true;  // skip a step whose gradients hold inf/NaN
  bool bf16_master_weights_and_grads = false;
  bool bf16_optimizer_states = false;
};

// Adam and AdamW with PyTorch's arithmetic.  DeepSpeed's "Adam" is decoupled (AdamW) unless
// adam_w_mode is false; "AdamW" is always decoupled.
struct AdamConfig {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool decoupled_weight_decay = true;  // resolved: type == AdamW || adam_w_mode
  bool bias_correction = true;
  bool torch_adam = false;
};

struct OptimizerConfig {
  OptimizerType type = OptimizerType::kNone;  // kNone: the job supplies its optimizer
  AdamConfig adam;
};

// The parameters of every DeepSpeed LR schedule (deepspeed/runtime/lr_schedules.py); each
// schedule reads its own.  Optional fields default from other values as DeepSpeed does.
struct SchedulerConfig {
  SchedulerType type = SchedulerType::kNone;
  // WarmupLR, WarmupDecayLR
  double warmup_min_lr = 0.0;
  std::optional<double> warmup_max_lr;  // WarmupLR: the optimizer's lr; WarmupDecayLR: 0.001
  std::int64_t warmup_num_steps = 1000;
  WarmupType warmup_type = WarmupType::kLog;
  std::optional<std::int64_t> total_num_steps;  // required by WarmupDecayLR and WarmupCosineLR
  // WarmupCosineLR
  double warmup_min_ratio = 0.0;
  double cos_min_ratio = 0.0001;
  // LRRangeTest
  double lr_range_test_min_lr = 1e-3;
  std::int64_t lr_range_test_step_size = 2000;
  double lr_range_test_step_rate = 1.0;
  bool lr_range_test_staircase = false;
  // OneCycle (cycle_min_lr and cycle_max_lr are required)
  double cycle_min_lr = 0.0;
  double cycle_max_lr = 0.0;
  double decay_lr_rate = 0.0;
  double cycle_first_step_size = 2000;
  std::optional<double> cycle_second_step_size;    // default: cycle_first_step_size
  std::int64_t cycle_first_stair_count = 0;
  std::optional<std::int64_t> cycle_second_stair_count;  // default: cycle_first_stair_count
  double decay_step_size = 0;
  bool cycle_momentum = true;
  double cycle_min_mom = 0.8;
  double cycle_max_mom = 0.9;
  double decay_mom_rate = 0.0;
  // all
  std::int64_t last_batch_iteration = -1;
};

struct OffloadConfig {
  OffloadDevice device = OffloadDevice::kNone;
  std::string nvme_path;
  std::int64_t buffer_count = 0;  // offload_param 5, offload_optimizer 4
  std::int64_t buffer_size = 100000000;  // offload_param only
  std::int64_t max_in_cpu = 1000000000;  // offload_param only
  bool pin_memory = true;
  bool pipeline_read = false;   // offload_optimizer only
  bool pipeline_write = false;  // offload_optimizer only
  bool fast_init = false;       // offload_optimizer only
  double ratio = 1.0;           // offload_optimizer only
  bool super_offload = false;   // offload_optimizer only
  double cpuadam_cores_perc = 0.8;  // offload_optimizer only
  bool enabled() const { return device != OffloadDevice::kNone; }
};

struct ZeroConfig {
  int stage = 0;
  bool contiguous_gradients = true;
  bool reduce_scatter = true;
  std::int64_t reduce_bucket_size = 500000000;
  bool allgather_partitions = true;
  std::int64_t allgather_bucket_size = 500000000;
  // Resolved: DeepSpeed's default is stage == 3.  Stages 0-2 reduce buckets during the backward;
  // stage 3 leaves unit reduce-scatters in flight behind it.
  bool overlap_comm = false;
  bool load_from_fp32_weights = true;
  bool elastic_checkpoint = false;
  OffloadConfig offload_param;
  OffloadConfig offload_optimizer;
  std::int64_t sub_group_size = 1000000000;
  std::int64_t prefetch_bucket_size = 50000000;       // stage3_prefetch_bucket_size
  std::int64_t param_persistence_threshold = 100000;  // stage3_param_persistence_threshold
  std::int64_t model_persistence_threshold = std::numeric_limits<std::int64_t>::max();
  std::int64_t max_live_parameters = 1000000000;  // stage3_max_live_parameters
  std::int64_t max_reuse_distance = 1000000000;   // stage3_max_reuse_distance
  bool gather_16bit_weights_on_model_save = false;  // stage3_gather_16bit_weights_on_model_save
  bool ignore_unused_parameters = true;
  bool round_robin_gradients = false;
};

struct AioConfig {
  std::int64_t block_size = 1048576;
  int queue_depth = 8;
  int intra_op_parallelism = 1;  // legacy name: thread_count
  bool single_submit = false;
  bool overlap_events = true;
  bool use_gds = false;
};

struct ActivationCheckpointingConfig {
  bool partition_activations = false;
  bool contiguous_memory_optimization = false;
  bool cpu_checkpointing = false;
  std::optional<std::int64_t> number_checkpoints;
  bool synchronize_checkpoint_boundary = false;
  bool profile = false;
};

struct MonitorConfig {  // tensorboard, csv_monitor
  bool enabled = false;
  std::string output_path;
  std::string job_name = "DeepSpeedJobName";
};

struct CommsLoggerConfig {
  bool enabled = false;
  bool prof_all = true;
  std::vector<std::string> prof_ops;
  bool verbose = false;
  bool debug = false;
};

struct FlopsProfilerConfig {
  bool enabled = false;
  double recompute_fwd_factor = 0.0;
  std::int64_t profile_step = 1;
  std::int64_t module_depth = -1;
  std::int64_t top_modules = 1;
  bool detailed = true;
  std::string output_file;
};

struct CheckpointConfig {
  std::string tag_validation = "WARN";  // WARN, IGNORE or FAIL
  bool load_universal = false;
  bool use_node_local_storage = false;
  bool parallel_write_pipeline_stage = false;
};

class Config {
 public:
  // Reads and resolves a config file; errors name the file.
  static absl::StatusOr<Config> FromFile(const std::string& path, const AutoValues& job = {});
  // `source` names the text in errors (a file name, "--deepspeed argument", ...).
  static absl::StatusOr<Config> FromJson(const std::string& text, const std::string& source,
                                         const AutoValues& job = {});

  // Refuses, at job start, a config that uses a feature listed in not_implemented.
  [[nodiscard]] absl::Status RequireImplemented() const;

  // The resolved config as DeepSpeed JSON: every key with its value or default.
  std::string ToJson(int indent = 2) const;

  Precision precision() const {
    return fp16.enabled ? Precision::kFp16 : bf16.enabled ? Precision::kBf16 : Precision::kFp32;
  }

  // --- the record: every field says what it is in DeepSpeed's terms -----------------------
  std::int64_t train_batch_size = 0;                // micro x accumulation x world size
  std::int64_t train_micro_batch_size_per_gpu = 0;
  std::int64_t gradient_accumulation_steps = 0;
  double gradient_clipping = 1.0;                   // max global gradient norm; 0 disables
  std::optional<std::int64_t> steps_per_print;      // none: never print
  bool wall_clock_breakdown = false;
  bool memory_breakdown = false;
  bool prescale_gradients = false;
  double gradient_predivide_factor = 1.0;
  AllReduceOp gradient_allreduce_op = AllReduceOp::kMean;
  CommDataType communication_data_type = CommDataType::kDefault;
  Fp16Config fp16;
  Bf16Config bf16;
  OptimizerConfig optimizer;
  SchedulerConfig scheduler;
  ZeroConfig zero_optimization;
  AioConfig aio;
  ActivationCheckpointingConfig activation_checkpointing;
  MonitorConfig tensorboard;
  MonitorConfig csv_monitor;
  CommsLoggerConfig comms_logger;
  FlopsProfilerConfig flops_profiler;
  CheckpointConfig checkpoint;

  std::string source;  // where the config came from
  // Keys still "auto" because nothing filled them (only from ParseUnresolved; a job's config
  // never has any), as JSON paths.
  std::vector<std::string> unresolved_auto;
  // Features the config uses that this build does not implement yet, one readable line each,
  // e.g. "zero_optimization.offload_param.device=cpu (parameter offload to CPU)".
  std::vector<std::string> not_implemented;
  // Deprecation and other warnings raised while parsing.
  std::vector<std::string> warnings;
};

// For `ds_config check`: like FromJson, but "auto" values nothing fills stay "auto" (listed in
// unresolved_auto) instead of failing, and the batch arithmetic is checked only when all three
// batch values are known.
absl::StatusOr<Config> ParseUnresolved(const std::string& text, const std::string& source, const AutoValues& job);

}  // namespace zt

#endif  // ZEROTRAIN_CORE_CONFIG_CONFIG_H_
