// One table maps JSON paths to record fields; reading the record and ToJson both walk it, so a
// config printed by ToJson reads back to the same record.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "core/config/config.h"
#include "core/config/config_internal.h"

namespace zt {
namespace config_internal {

const Json* Lookup(const Json& doc, absl::string_view path) {
  const Json* node = &doc;
  for (absl::string_view part : absl::StrSplit(path, '.')) {
    if (!node->is_object()) return nullptr;
    const auto it = node->find(std::string(part));
    if (it == node->end()) return nullptr;
    node = &*it;
  }
  return node;
}

void SetAt(Json* doc, absl::string_view path, Json value) {
  Json* node = doc;
  for (absl::string_view part : absl::StrSplit(path, '.')) {
    if (!node->is_object()) *node = Json::object();
    node = &(*node)[std::string(part)];
  }
  *node = std::move(value);
}

void EraseAt(Json* doc, absl::string_view path) {
  const std::size_t dot = path.rfind('.');
  Json* parent = doc;
  if (dot != absl::string_view::npos) {
    parent = const_cast<Json*>(Lookup(*doc, path.substr(0, dot)));
    if (parent == nullptr) return;
  }
  if (parent->is_object()) parent->erase(std::string(path.substr(dot == absl::string_view::npos ? 0 : dot + 1)));
}

namespace {

// ---- value conversions (the schema walk has checked every type already) ----

void From(const Json& j, bool* v) { *v = j.get<bool>(); }
void From(const Json& j, int* v) { *v = static_cast<int>(j.get<std::int64_t>()); }
void From(const Json& j, std::int64_t* v) { *v = j.get<std::int64_t>(); }
void From(const Json& j, double* v) { *v = j.get<double>(); }
void From(const Json& j, std::string* v) { *v = j.get<std::string>(); }
void From(const Json& j, std::vector<std::string>* v) { *v = j.get<std::vector<std::string>>(); }
template <typename T>
void From(const Json& j, std::optional<T>* v) {
  T t{};
  From(j, &t);
  *v = t;
}
void From(const Json& j, OffloadDevice* v) {
  const std::string s = j.get<std::string>();
  *v = s == "cpu" ? OffloadDevice::kCpu : s == "nvme" ? OffloadDevice::kNvme : OffloadDevice::kNone;
}
void From(const Json& j, WarmupType* v) {
  *v = j.get<std::string>() == "linear" ? WarmupType::kLinear : WarmupType::kLog;
}
void From(const Json& j, AllReduceOp* v) {
  *v = j.get<std::string>() == "sum" ? AllReduceOp::kSum : AllReduceOp::kMean;
}
void From(const Json& j, CommDataType* v) {
  const std::string s = j.get<std::string>();
  *v = s == "fp32" ? CommDataType::kFp32 : s == "fp16" ? CommDataType::kFp16 : CommDataType::kBf16;
}

Json To(bool v) { return v; }
Json To(int v) { return static_cast<std::int64_t>(v); }
Json To(std::int64_t v) { return v; }
Json To(double v) { return v; }
Json To(const std::string& v) { return v; }
Json To(const std::vector<std::string>& v) { return v; }
template <typename T>
Json To(const std::optional<T>& v) {
  return v ? To(*v) : Json(nullptr);
}
Json To(OffloadDevice v) { return v == OffloadDevice::kCpu ? "cpu" : v == OffloadDevice::kNvme ? "nvme" : "none"; }
Json To(WarmupType v) { return v == WarmupType::kLinear ? "linear" : "log"; }
Json To(AllReduceOp v) { return v == AllReduceOp::kSum ? "sum" : "mean"; }
Json To(CommDataType v) {
  switch (v) {
    case CommDataType::kFp32:
      return "fp32";
    case CommDataType::kFp16:
      return "fp16";
    case CommDataType::kBf16:
      return "bf16";
    case CommDataType::kDefault:
      break;
  }
  return nullptr;
}

const char* SchedulerName(SchedulerType t) {
  switch (t) {
    case SchedulerType::kWarmupLR:
      return "WarmupLR";
    case SchedulerType::kWarmupDecayLR:
      return "WarmupDecayLR";
    case SchedulerType::kWarmupCosineLR:
      return "WarmupCosineLR";
    case SchedulerType::kOneCycle:
      return "OneCycle";
    case SchedulerType::kLRRangeTest:
      return "LRRangeTest";
    case SchedulerType::kNone:
      break;
  }
  return "";
}

SchedulerType SchedulerFromName(const std::string& name) {
  for (SchedulerType t : {SchedulerType::kWarmupLR, SchedulerType::kWarmupDecayLR, SchedulerType::kWarmupCosineLR,
                          SchedulerType::kOneCycle, SchedulerType::kLRRangeTest}) {
    if (name == SchedulerName(t)) return t;
  }
  return SchedulerType::kNone;  // a torch.optim.lr_scheduler class: listed as not implemented
}

using When = std::function<bool(const Config&)>;

struct Binding {
  std::string path;
  std::function<void(const Json&, Config*)> read;
  std::function<Json(const Config&)> write;
  When when;  // written only when this holds; null: always
};

template <typename Access>
Binding Field(std::string path, Access access, When when = nullptr) {
  Binding b;
  b.path = std::move(path);
  b.read = [access](const Json& j, Config* c) { From(j, &access(*c)); };
  b.write = [access](const Config& c) { return To(access(const_cast<Config&>(c))); };
  b.when = std::move(when);
  return b;
}

// A string DeepSpeed keeps as None when unset (nvme_path, output_file): "" <-> null.
template <typename Access>
Binding NoneIfEmpty(std::string path, Access access) {
  Binding b = Field(std::move(path), access);
  b.write = [access](const Config& c) {
    const std::string& s = access(const_cast<Config&>(c));
    return s.empty() ? Json(nullptr) : Json(s);
  };
  return b;
}

// clang-format off
#define ZT_FIELD(path, member) Field(path, [](Config& c) -> auto& { return c.member; })
#define ZT_FIELD_WHEN(path, member, when) Field(path, [](Config& c) -> auto& { return c.member; }, when)
#define ZT_NONE_IF_EMPTY(path, member) NoneIfEmpty(path, [](Config& c) -> auto& { return c.member; })
// clang-format on

bool IsAdam(const Config& c) { return c.optimizer.type != OptimizerType::kNone; }
When SchedulerIn(std::vector<SchedulerType> types) {
  return [types](const Config& c) { return std::find(types.begin(), types.end(), c.scheduler.type) != types.end(); };
}

void AddOffloadBindings(std::vector<Binding>* t) {
  auto& b = *t;
  const std::string p = "zero_optimization.offload_param.";
  b.push_back(ZT_FIELD(p + "device", zero_optimization.offload_param.device));
  b.push_back(ZT_NONE_IF_EMPTY(p + "nvme_path", zero_optimization.offload_param.nvme_path));
  b.push_back(ZT_FIELD(p + "buffer_count", zero_optimization.offload_param.buffer_count));
  b.push_back(ZT_FIELD(p + "buffer_size", zero_optimization.offload_param.buffer_size));
  b.push_back(ZT_FIELD(p + "max_in_cpu", zero_optimization.offload_param.max_in_cpu));
  b.push_back(ZT_FIELD(p + "pin_memory", zero_optimization.offload_param.pin_memory));
  const std::string o = "zero_optimization.offload_optimizer.";
  b.push_back(ZT_FIELD(o + "device", zero_optimization.offload_optimizer.device));
  b.push_back(ZT_NONE_IF_EMPTY(o + "nvme_path", zero_optimization.offload_optimizer.nvme_path));
  b.push_back(ZT_FIELD(o + "buffer_count", zero_optimization.offload_optimizer.buffer_count));
  b.push_back(ZT_FIELD(o + "pin_memory", zero_optimization.offload_optimizer.pin_memory));
  b.push_back(ZT_FIELD(o + "pipeline_read", zero_optimization.offload_optimizer.pipeline_read));
  b.push_back(ZT_FIELD(o + "pipeline_write", zero_optimization.offload_optimizer.pipeline_write));
  b.push_back(ZT_FIELD(o + "fast_init", zero_optimization.offload_optimizer.fast_init));
  b.push_back(ZT_FIELD(o + "ratio", zero_optimization.offload_optimizer.ratio));
  b.push_back(ZT_FIELD(o + "super_offload", zero_optimization.offload_optimizer.super_offload));
  b.push_back(ZT_FIELD(o + "cpuadam_cores_perc", zero_optimization.offload_optimizer.cpuadam_cores_perc));
}

void AddSchedulerBindings(std::vector<Binding>* t) {
  using S = SchedulerType;
  auto& b = *t;
  const When warmup = SchedulerIn({S::kWarmupLR, S::kWarmupDecayLR});
  const When any_warmup = SchedulerIn({S::kWarmupLR, S::kWarmupDecayLR, S::kWarmupCosineLR});
  const When with_total = SchedulerIn({S::kWarmupDecayLR, S::kWarmupCosineLR});
  const When cosine = SchedulerIn({S::kWarmupCosineLR});
  const When range = SchedulerIn({S::kLRRangeTest});
  const When cycle = SchedulerIn({S::kOneCycle});
  const When all = [](const Config& c) { return c.scheduler.type != S::kNone; };
  // total_num_steps and the optional defaults are written only when set: null would mean
  // something else to DeepSpeed (or nothing valid).
  auto set = [](When w, auto get) { return When([w, get](const Config& c) { return w(c) && get(c).has_value(); }); };
  const std::string p = "scheduler.params.";
  b.push_back(ZT_FIELD_WHEN(p + "total_num_steps", scheduler.total_num_steps,
                            set(with_total, [](const Config& c) { return c.scheduler.total_num_steps; })));
  b.push_back(ZT_FIELD_WHEN(p + "warmup_min_lr", scheduler.warmup_min_lr, warmup));
  b.push_back(ZT_FIELD_WHEN(p + "warmup_max_lr", scheduler.warmup_max_lr,
                            set(warmup, [](const Config& c) { return c.scheduler.warmup_max_lr; })));
  b.push_back(ZT_FIELD_WHEN(p + "warmup_min_ratio", scheduler.warmup_min_ratio, cosine));
  b.push_back(ZT_FIELD_WHEN(p + "warmup_num_steps", scheduler.warmup_num_steps, any_warmup));
  b.push_back(ZT_FIELD_WHEN(p + "cos_min_ratio", scheduler.cos_min_ratio, cosine));
  b.push_back(ZT_FIELD_WHEN(p + "warmup_type", scheduler.warmup_type, any_warmup));
  b.push_back(ZT_FIELD_WHEN(p + "lr_range_test_min_lr", scheduler.lr_range_test_min_lr, range));
  b.push_back(ZT_FIELD_WHEN(p + "lr_range_test_step_size", scheduler.lr_range_test_step_size, range));
  b.push_back(ZT_FIELD_WHEN(p + "lr_range_test_step_rate", scheduler.lr_range_test_step_rate, range));
  b.push_back(ZT_FIELD_WHEN(p + "lr_range_test_staircase", scheduler.lr_range_test_staircase, range));
  b.push_back(ZT_FIELD_WHEN(p + "cycle_min_lr", scheduler.cycle_min_lr, cycle));
  b.push_back(ZT_FIELD_WHEN(p + "cycle_max_lr", scheduler.cycle_max_lr, cycle));
  b.push_back(ZT_FIELD_WHEN(p + "decay_lr_rate", scheduler.decay_lr_rate, cycle));
  b.push_back(ZT_FIELD_WHEN(p + "cycle_first_step_size", scheduler.cycle_first_step_size, cycle));
  b.push_back(ZT_FIELD_WHEN(p + "cycle_second_step_size", scheduler.cycle_second_step_size,
                            set(cycle, [](const Config& c) { return c.scheduler.cycle_second_step_size; })));
  b.push_back(ZT_FIELD_WHEN(p + "cycle_first_stair_count", scheduler.cycle_first_stair_count, cycle));
  b.push_back(ZT_FIELD_WHEN(p + "cycle_second_stair_count", scheduler.cycle_second_stair_count,
                            set(cycle, [](const Config& c) { return c.scheduler.cycle_second_stair_count; })));
  b.push_back(ZT_FIELD_WHEN(p + "decay_step_size", scheduler.decay_step_size, cycle));
  b.push_back(ZT_FIELD_WHEN(p + "cycle_momentum", scheduler.cycle_momentum, cycle));
  b.push_back(ZT_FIELD_WHEN(p + "cycle_min_mom", scheduler.cycle_min_mom, cycle));
  b.push_back(ZT_FIELD_WHEN(p + "cycle_max_mom", scheduler.cycle_max_mom, cycle));
  b.push_back(ZT_FIELD_WHEN(p + "decay_mom_rate", scheduler.decay_mom_rate, cycle));
  b.push_back(ZT_FIELD_WHEN(p + "last_batch_iteration", scheduler.last_batch_iteration, all));
}

std::vector<Binding> BuildTable() {
  std::vector<Binding> b;
  b.push_back(ZT_FIELD("train_batch_size", train_batch_size));
  b.push_back(ZT_FIELD("train_micro_batch_size_per_gpu", train_micro_batch_size_per_gpu));
  b.push_back(ZT_FIELD("gradient_accumulation_steps", gradient_accumulation_steps));
  b.push_back(ZT_FIELD("gradient_clipping", gradient_clipping));
  b.push_back(ZT_FIELD("steps_per_print", steps_per_print));
  b.push_back(ZT_FIELD("wall_clock_breakdown", wall_clock_breakdown));
  b.push_back(ZT_FIELD("memory_breakdown", memory_breakdown));
  b.push_back(ZT_FIELD("prescale_gradients", prescale_gradients));
  b.push_back(ZT_FIELD("gradient_predivide_factor", gradient_predivide_factor));
  b.push_back(ZT_FIELD("gradient_allreduce_op", gradient_allreduce_op));
  b.push_back(ZT_FIELD("communication_data_type", communication_data_type));

  // optimizer: type and betas need their own conversions; adam_w_mode carries the resolved
  // decoupled_weight_decay, which reads back to itself for both Adam and AdamW.
  Binding type;
  type.path = "optimizer.type";
  type.read = [](const Json& j, Config* c) {
    const std::string t = absl::AsciiStrToLower(j.get<std::string>());
    c->optimizer.type = t == "adam"    ? OptimizerType::kAdam
                        : t == "adamw" ? OptimizerType::kAdamW
                                       : OptimizerType::kNone;
  };
  type.write = [](const Config& c) { return Json(c.optimizer.type == OptimizerType::kAdamW ? "AdamW" : "Adam"); };
  type.when = IsAdam;
  b.push_back(type);
  const std::string op = "optimizer.params.";
  b.push_back(ZT_FIELD_WHEN(op + "lr", optimizer.adam.lr, IsAdam));
  Binding betas;
  betas.path = op + "betas";
  betas.read = [](const Json& j, Config* c) {
    c->optimizer.adam.beta1 = j[0].get<double>();
    c->optimizer.adam.beta2 = j[1].get<double>();
  };
  betas.write = [](const Config& c) { return Json::array({c.optimizer.adam.beta1, c.optimizer.adam.beta2}); };
  betas.when = IsAdam;
  b.push_back(betas);
  b.push_back(ZT_FIELD_WHEN(op + "eps", optimizer.adam.eps, IsAdam));
  b.push_back(ZT_FIELD_WHEN(op + "weight_decay", optimizer.adam.weight_decay, IsAdam));
  // torch.optim.Adam(W) has no bias_correction argument (it always corrects).
  b.push_back(ZT_FIELD_WHEN(op + "bias_correction", optimizer.adam.bias_correction,
                            [](const Config& c) { return IsAdam(c) && !c.optimizer.adam.torch_adam; }));
  b.push_back(ZT_FIELD_WHEN(op + "adam_w_mode", optimizer.adam.decoupled_weight_decay, IsAdam));
  b.push_back(ZT_FIELD_WHEN(op + "torch_adam", optimizer.adam.torch_adam, IsAdam));

  Binding sched;
  sched.path = "scheduler.type";
  sched.read = [](const Json& j, Config* c) { c->scheduler.type = SchedulerFromName(j.get<std::string>()); };
  sched.write = [](const Config& c) { return Json(SchedulerName(c.scheduler.type)); };
  sched.when = [](const Config& c) { return c.scheduler.type != SchedulerType::kNone; };
  b.push_back(sched);
  AddSchedulerBindings(&b);

  b.push_back(ZT_FIELD("fp16.enabled", fp16.enabled));
  b.push_back(ZT_FIELD("fp16.auto_cast", fp16.auto_cast));
  b.push_back(ZT_FIELD("fp16.loss_scale", fp16.loss_scale));
  b.push_back(ZT_FIELD("fp16.initial_scale_power", fp16.initial_scale_power));
  b.push_back(ZT_FIELD("fp16.loss_scale_window", fp16.loss_scale_window));
  b.push_back(ZT_FIELD("fp16.hysteresis", fp16.hysteresis));
  b.push_back(ZT_FIELD("fp16.consecutive_hysteresis", fp16.consecutive_hysteresis));
  b.push_back(ZT_FIELD("fp16.min_loss_scale", fp16.min_loss_scale));
  b.push_back(ZT_FIELD("fp16.fp16_master_weights_and_grads", fp16.fp16_master_weights_and_grads));
  b.push_back(ZT_FIELD("bf16.enabled", bf16.enabled));
  b.push_back(ZT_FIELD("bf16.immediate_grad_update", bf16.immediate_grad_update));
  b.push_back(ZT_FIELD("bf16.check_grad_overflow", bf16.check_grad_overflow));
  b.push_back(ZT_FIELD("bf16.bf16_master_weights_and_grads", bf16.bf16_master_weights_and_grads));
  b.push_back(ZT_FIELD("bf16.bf16_optimizer_states", bf16.bf16_optimizer_states));

  const std::string z = "zero_optimization.";
  b.push_back(ZT_FIELD(z + "stage", zero_optimization.stage));
  b.push_back(ZT_FIELD(z + "contiguous_gradients", zero_optimization.contiguous_gradients));
  b.push_back(ZT_FIELD(z + "reduce_scatter", zero_optimization.reduce_scatter));
  b.push_back(ZT_FIELD(z + "reduce_bucket_size", zero_optimization.reduce_bucket_size));
  b.push_back(ZT_FIELD(z + "allgather_partitions", zero_optimization.allgather_partitions));
  b.push_back(ZT_FIELD(z + "allgather_bucket_size", zero_optimization.allgather_bucket_size));
  b.push_back(ZT_FIELD(z + "overlap_comm", zero_optimization.overlap_comm));
  b.push_back(ZT_FIELD(z + "load_from_fp32_weights", zero_optimization.load_from_fp32_weights));
  b.push_back(ZT_FIELD(z + "elastic_checkpoint", zero_optimization.elastic_checkpoint));
  AddOffloadBindings(&b);
  b.push_back(ZT_FIELD(z + "sub_group_size", zero_optimization.sub_group_size));
  b.push_back(ZT_FIELD(z + "stage3_prefetch_bucket_size", zero_optimization.prefetch_bucket_size));
  b.push_back(ZT_FIELD(z + "stage3_param_persistence_threshold", zero_optimization.param_persistence_threshold));
  b.push_back(ZT_FIELD(z + "stage3_model_persistence_threshold", zero_optimization.model_persistence_threshold));
  b.push_back(ZT_FIELD(z + "stage3_max_live_parameters", zero_optimization.max_live_parameters));
  b.push_back(ZT_FIELD(z + "stage3_max_reuse_distance", zero_optimization.max_reuse_distance));
  b.push_back(
      ZT_FIELD(z + "stage3_gather_16bit_weights_on_model_save", zero_optimization.gather_16bit_weights_on_model_save));
  b.push_back(ZT_FIELD(z + "ignore_unused_parameters", zero_optimization.ignore_unused_parameters));
  b.push_back(ZT_FIELD(z + "round_robin_gradients", zero_optimization.round_robin_gradients));

  b.push_back(ZT_FIELD("aio.block_size", aio.block_size));
  b.push_back(ZT_FIELD("aio.queue_depth", aio.queue_depth));
  b.push_back(ZT_FIELD("aio.intra_op_parallelism", aio.intra_op_parallelism));
  b.push_back(ZT_FIELD("aio.single_submit", aio.single_submit));
  b.push_back(ZT_FIELD("aio.overlap_events", aio.overlap_events));
  b.push_back(ZT_FIELD("aio.use_gds", aio.use_gds));

  const std::string ac = "activation_checkpointing.";
  b.push_back(ZT_FIELD(ac + "partition_activations", activation_checkpointing.partition_activations));
  b.push_back(ZT_FIELD(ac + "contiguous_memory_optimization", activation_checkpointing.contiguous_memory_optimization));
  b.push_back(ZT_FIELD(ac + "cpu_checkpointing", activation_checkpointing.cpu_checkpointing));
  b.push_back(ZT_FIELD(ac + "number_checkpoints", activation_checkpointing.number_checkpoints));
  b.push_back(
      ZT_FIELD(ac + "synchronize_checkpoint_boundary", activation_checkpointing.synchronize_checkpoint_boundary));
  b.push_back(ZT_FIELD(ac + "profile", activation_checkpointing.profile));

  b.push_back(ZT_FIELD("tensorboard.enabled", tensorboard.enabled));
  b.push_back(ZT_FIELD("tensorboard.output_path", tensorboard.output_path));
  b.push_back(ZT_FIELD("tensorboard.job_name", tensorboard.job_name));
  b.push_back(ZT_FIELD("csv_monitor.enabled", csv_monitor.enabled));
  b.push_back(ZT_FIELD("csv_monitor.output_path", csv_monitor.output_path));
  b.push_back(ZT_FIELD("csv_monitor.job_name", csv_monitor.job_name));

  b.push_back(ZT_FIELD("comms_logger.enabled", comms_logger.enabled));
  b.push_back(ZT_FIELD("comms_logger.prof_all", comms_logger.prof_all));
  b.push_back(ZT_FIELD("comms_logger.prof_ops", comms_logger.prof_ops));
  b.push_back(ZT_FIELD("comms_logger.verbose", comms_logger.verbose));
  b.push_back(ZT_FIELD("comms_logger.debug", comms_logger.debug));

  b.push_back(ZT_FIELD("flops_profiler.enabled", flops_profiler.enabled));
  b.push_back(ZT_FIELD("flops_profiler.recompute_fwd_factor", flops_profiler.recompute_fwd_factor));
  b.push_back(ZT_FIELD("flops_profiler.profile_step", flops_profiler.profile_step));
  b.push_back(ZT_FIELD("flops_profiler.module_depth", flops_profiler.module_depth));
  b.push_back(ZT_FIELD("flops_profiler.top_modules", flops_profiler.top_modules));
  b.push_back(ZT_FIELD("flops_profiler.detailed", flops_profiler.detailed));
  b.push_back(ZT_NONE_IF_EMPTY("flops_profiler.output_file", flops_profiler.output_file));

  b.push_back(ZT_FIELD("checkpoint.tag_validation", checkpoint.tag_validation));
  b.push_back(ZT_FIELD("checkpoint.load_universal", checkpoint.load_universal));
  b.push_back(ZT_FIELD("checkpoint.use_node_local_storage", checkpoint.use_node_local_storage));
  b.push_back(ZT_FIELD("checkpoint.parallel_write.pipeline_stage", checkpoint.parallel_write_pipeline_stage));
  return b;
}

#undef ZT_FIELD
#undef ZT_FIELD_WHEN
#undef ZT_NONE_IF_EMPTY

const std::vector<Binding>& Table() {
  static const auto* table = new std::vector<Binding>(BuildTable());
  return *table;
}

}  // namespace

void ReadRecord(const Json& doc, Config* c) {
  // Defaults that differ between the two offload blocks (offload_config.py).
  c->zero_optimization.offload_param.buffer_count = 5;
  c->zero_optimization.offload_optimizer.buffer_count = 4;

  // The table lists each type before its params, so the checks above see the type.
  for (const Binding& b : Table()) {
    // Another optimizer's or a torch scheduler's params belong to no record field.
    if (absl::StartsWith(b.path, "optimizer.params.") && c->optimizer.type == OptimizerType::kNone) continue;
    if (absl::StartsWith(b.path, "scheduler.params.") && c->scheduler.type == SchedulerType::kNone) continue;
    const Json* v = Lookup(doc, b.path);
    if (v != nullptr) b.read(*v, c);
  }

  ZeroConfig& zero = c->zero_optimization;
  if (Lookup(doc, "zero_optimization.overlap_comm") == nullptr) zero.overlap_comm = zero.stage == 3;

  if (c->optimizer.type != OptimizerType::kNone) {
    AdamConfig& adam = c->optimizer.adam;
    const Json* mode = Lookup(doc, "optimizer.params.adam_w_mode");
    const bool adam_w_mode = mode == nullptr || mode->get<bool>();
    // engine.py: "AdamW" is always decoupled; "Adam" is decoupled unless adam_w_mode is false.
    adam.decoupled_weight_decay = c->optimizer.type == OptimizerType::kAdamW || adam_w_mode;
    if (adam.torch_adam) {
      adam.bias_correction = true;
      // torch.optim.AdamW's own default weight decay is 0.01 (Adam's is 0).
      if (Lookup(doc, "optimizer.params.weight_decay") == nullptr && adam.decoupled_weight_decay) {
        adam.weight_decay = 0.01;
      }
    }
  }
  SchedulerConfig& s = c->scheduler;
  if (s.type == SchedulerType::kWarmupDecayLR && !s.warmup_max_lr) s.warmup_max_lr = 0.001;
}

Json WriteRecord(const Config& c) {
  Json doc = Json::object();
  // "auto" only under a block that is printed: another optimizer's params have no record fields.
  auto printable = [&c](const std::string& path) {
    if (absl::StartsWith(path, "optimizer.")) return c.optimizer.type != OptimizerType::kNone;
    if (absl::StartsWith(path, "scheduler.")) return c.scheduler.type != SchedulerType::kNone;
    return true;
  };
  std::vector<std::string> pending = c.unresolved_auto;
  for (const Binding& b : Table()) {
    const auto unresolved = std::find(pending.begin(), pending.end(), b.path);
    if (unresolved != pending.end()) {
      pending.erase(unresolved);
      if (printable(b.path)) SetAt(&doc, b.path, "auto");  // in its place, even where unset
      continue;
    }
    if (b.when && !b.when(c)) continue;
    SetAt(&doc, b.path, b.write(c));
  }
  for (const std::string& path : pending) {
    if (printable(path)) SetAt(&doc, path, "auto");
  }
  return doc;
}

}  // namespace config_internal
}  // namespace zt
