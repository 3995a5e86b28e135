// Rules across keys (DeepSpeed's _do_error_check and model validators, plus a few of our own where
// DeepSpeed would silently ignore a setting), its warnings, and the list of valid DeepSpeed
// features this build does not run yet.
#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/config/config.h"
#include "core/config/config_internal.h"
#include "core/config/deepspeed_schema.h"
#include "core/config/schema.h"
#include "core/util/status_macros.h"

namespace zt {
namespace config_internal {
namespace {

absl::Status Invalid(const Config& c, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(c.source, ": ", message));
}

bool IsTrue(const Json& doc, absl::string_view path) {
  const Json* v = Lookup(doc, path);
  return v != nullptr && v->is_boolean() && v->get<bool>();
}

bool Has(const Json& doc, absl::string_view path) { return Lookup(doc, path) != nullptr; }

const char* DeviceName(OffloadDevice d) {
  return d == OffloadDevice::kCpu ? "cpu" : d == OffloadDevice::kNvme ? "nvme" : "none";
}

// A value as a not_implemented line shows it: strings without quotes.
std::string Show(const Json& v) { return v.is_string() ? v.get<std::string>() : ShortJson(v); }

}  // namespace

absl::Status CheckCrossKeys(const Json& doc, const Config& c) {
  const ZeroConfig& z = c.zero_optimization;
  if (c.fp16.enabled && c.bf16.enabled) return Invalid(c, "fp16 and bf16 cannot both be enabled");
  if (IsTrue(doc, "zero_optimization.legacy_stage1")) {
    return Invalid(c,
                   "\"zero_optimization.legacy_stage1\" is true, but DeepSpeed no longer has the old ZeRO stage 1 "
                   "implementation; remove the key");
  }
  if (z.offload_param.enabled() && z.stage != 3) {
    return Invalid(c,
                   absl::StrCat("\"zero_optimization.offload_param.device\" is \"", DeviceName(z.offload_param.device),
                                "\", but parameter offload needs ZeRO stage 3 (stage is ", z.stage,
                                "; DeepSpeed would silently ignore it)"));
  }
  if (z.offload_optimizer.enabled() && z.stage == 0) {
    return Invalid(
        c, absl::StrCat("\"zero_optimization.offload_optimizer.device\" is \"", DeviceName(z.offload_optimizer.device),
                        "\", but optimizer offload needs ZeRO stage 1, 2 or 3 (stage is 0)"));
  }
  if (z.offload_optimizer.device == OffloadDevice::kNvme && z.stage != 3) {
    return Invalid(c, absl::StrCat("\"zero_optimization.offload_optimizer.device\" is \"nvme\", but NVMe offload of "
                                   "optimizer state needs ZeRO stage 3; with stage ",
                                   z.stage,
                                   " DeepSpeed would keep the state in CPU memory instead (write \"cpu\" "
                                   "for that)"));
  }
  for (const auto& [name, offload] : {std::pair<const char*, const OffloadConfig*>{"offload_param", &z.offload_param},
                                      {"offload_optimizer", &z.offload_optimizer}}) {
    if (offload->device == OffloadDevice::kNvme && offload->nvme_path.empty()) {
      return Invalid(c, absl::StrCat("\"zero_optimization.", name, ".device\" is \"nvme\" but \"zero_optimization.",
                                     name, ".nvme_path\" is not set"));
    }
  }
  if (z.offload_optimizer.ratio < 1.0 && z.stage != 3) {
    return Invalid(c, absl::StrCat("\"zero_optimization.offload_optimizer.ratio\" is ", z.offload_optimizer.ratio,
                                   ": partial offload needs ZeRO stage 3 (stage is ", z.stage, ")"));
  }
  if (!IsTrue(doc, "zero_optimization.compute_grad_norm") && Has(doc, "zero_optimization.compute_grad_norm")) {
    if (z.stage != 1 && z.stage != 2) {
      return Invalid(c, "\"zero_optimization.compute_grad_norm\" false is supported only with ZeRO stage 1 or 2");
    }
    if (z.offload_optimizer.enabled()) {
      return Invalid(c, "\"zero_optimization.compute_grad_norm\" false is not supported with optimizer offload");
    }
  }
  auto needs_zero = [&](bool set, const char* key) -> absl::Status {
    if (set && z.stage == 0) return Invalid(c, absl::StrCat("\"", key, "\" needs ZeRO stage 1, 2 or 3 (stage is 0)"));
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(needs_zero(c.fp16.fp16_master_weights_and_grads, "fp16.fp16_master_weights_and_grads"));
  RETURN_IF_ERROR(needs_zero(c.bf16.bf16_master_weights_and_grads, "bf16.bf16_master_weights_and_grads"));
  RETURN_IF_ERROR(needs_zero(c.bf16.bf16_optimizer_states, "bf16.bf16_optimizer_states"));
  if (c.bf16.bf16_optimizer_states && !c.bf16.bf16_master_weights_and_grads) {
    return Invalid(c, "\"bf16.bf16_optimizer_states\" needs \"bf16.bf16_master_weights_and_grads\" true");
  }
  if (c.fp16.enabled && c.fp16.loss_scale == 0) {
    if (c.fp16.loss_scale_window <= 0) {
      return Invalid(c, absl::StrCat("\"fp16.loss_scale_window\" must be > 0 with dynamic loss scaling (loss_scale 0), "
                                     "got ",
                                     c.fp16.loss_scale_window));
    }
    if (c.fp16.min_loss_scale <= 0) {
      return Invalid(c, absl::StrCat("\"fp16.min_loss_scale\" must be > 0 with dynamic loss scaling (loss_scale 0), "
                                     "got ",
                                     c.fp16.min_loss_scale));
    }
  }
  if (c.gradient_allreduce_op == AllReduceOp::kSum) {
    if (z.stage == 3) return Invalid(c, "\"gradient_allreduce_op\" \"sum\" is not supported with ZeRO stage 3");
    if (Has(doc, "zero_optimization.zenflow")) {
      return Invalid(c, "\"gradient_allreduce_op\" \"sum\" is not supported with ZenFlow");
    }
    if (IsTrue(doc, "compile.deepcompile")) {
      return Invalid(c, "\"gradient_allreduce_op\" \"sum\" is not supported with DeepCompile");
    }
  }
  if (c.optimizer.type != OptimizerType::kNone) {
    const bool torch_adam = c.optimizer.adam.torch_adam;
    if (IsTrue(doc, "optimizer.params.amsgrad") && !torch_adam) {
      return Invalid(c,
                     "\"optimizer.params.amsgrad\" is true, but DeepSpeed's fused and CPU Adam do not implement "
                     "AMSGrad");
    }
    for (const char* key : {"bias_correction", "set_grad_none"}) {
      if (torch_adam && Has(doc, absl::StrCat("optimizer.params.", key))) {
        return Invalid(c, absl::StrCat("\"optimizer.params.", key,
                                       "\" is not an argument of torch.optim.Adam/AdamW, "
                                       "which \"torch_adam\": true selects"));
      }
    }
    if (!torch_adam && Has(doc, "optimizer.params.foreach")) {
      return Invalid(c, "\"optimizer.params.foreach\" applies only with \"torch_adam\": true");
    }
  }
  return absl::OkStatus();
}

void AddWarnings(const Json& doc, const Config& c, std::vector<std::string>* warnings) {
  const Json* vocab = Lookup(doc, "vocabulary_size");
  if (vocab != nullptr && vocab->get<std::int64_t>() % 8 != 0) {
    warnings->push_back(absl::StrCat("vocabulary_size ", vocab->get<std::int64_t>(),
                                     " is not a multiple of 8, which may lower tensor-core utilization"));
  }
  const SchedulerConfig& s = c.scheduler;
  if ((s.type == SchedulerType::kWarmupDecayLR || s.type == SchedulerType::kWarmupCosineLR) && s.total_num_steps &&
      *s.total_num_steps < std::max<std::int64_t>(2, s.warmup_num_steps)) {
    warnings->push_back(absl::StrCat("scheduler.params.total_num_steps ", *s.total_num_steps,
                                     " is less than warmup_num_steps ", s.warmup_num_steps));
  }
  if (c.zero_optimization.stage == 3 && c.zero_optimization.elastic_checkpoint) {
    warnings->push_back(
        "zero_optimization.elastic_checkpoint is ignored with ZeRO stage 3 (DeepSpeed no longer "
        "supports it there; use universal checkpoints)");
  }
}

std::vector<std::string> ListNotImplemented(const Json& doc, const Config& c) {
  std::vector<std::string> out;
  auto add = [&out](absl::string_view path, const Json& value, absl::string_view what) {
    out.push_back(absl::StrCat(path, "=", Show(value), " (", what, ")"));
  };
  auto add_if_true = [&](absl::string_view path, absl::string_view what) {
    if (IsTrue(doc, path)) add(path, true, what);
  };
  const ZeroConfig& z = c.zero_optimization;
  // Offload to CPU is implemented (core/optim/host_adam.h, Stage3Options::offload_param),
  // optimizer state on NVMe (HostAdamOptions::swap) and parameters on NVMe beside an offloaded
  // optimizer (Stage3Options::nvme).
  if (z.offload_param.device == OffloadDevice::kNvme &&
      (z.offload_optimizer.device == OffloadDevice::kNone || z.offload_optimizer.ratio < 1.0)) {
    add("zero_optimization.offload_param.device", "nvme",
        "ZeRO-Infinity: parameters on NVMe need the whole optimizer state offloaded too (offload_optimizer device "
        "cpu or nvme, ratio 1)");
  }
  add_if_true("aio.use_gds", "GPUDirect Storage: swap files move through host buffers");
  if (const Json* zenflow = Lookup(doc, "zero_optimization.zenflow")) {
    add("zero_optimization.zenflow", *zenflow, "ZenFlow");
  }
  for (const char* key :
       {"zero_quantized_weights", "zero_quantized_nontrainable_weights", "zero_quantized_gradients"}) {
    add_if_true(absl::StrCat("zero_optimization.", key), "ZeRO++ quantization");
  }
  if (const Json* hpz = Lookup(doc, "zero_optimization.zero_hpz_partition_size"); hpz && *hpz > 1) {
    add("zero_optimization.zero_hpz_partition_size", *hpz, "ZeRO++ hierarchical partitioning");
  }
  if (const Json* norm = Lookup(doc, "zero_optimization.compute_grad_norm"); norm && *norm == false) {
    add("zero_optimization.compute_grad_norm", false, "skipping the gradient norm");
  }

  if (const Json* type = Lookup(doc, "optimizer.type"); type && c.optimizer.type == OptimizerType::kNone) {
    add("optimizer.type", *type, "only Adam and AdamW are implemented");
  }
  if (c.optimizer.type != OptimizerType::kNone) add_if_true("optimizer.params.amsgrad", "AMSGrad");
  if (const Json* type = Lookup(doc, "scheduler.type"); type && c.scheduler.type == SchedulerType::kNone) {
    add("scheduler.type", *type, "torch.optim.lr_scheduler schedulers");
  }

  add_if_true("fp16.fp16_master_weights_and_grads", "fp16 master weights");
  add_if_true("bf16.immediate_grad_update", "bf16 immediate gradient update");
  add_if_true("bf16.bf16_master_weights_and_grads", "bf16 master weights");
  add_if_true("bf16.bf16_optimizer_states", "bf16 optimizer states");
  add_if_true("torch_autocast.enabled", "torch autocast");
  if (const Json* dtype = Lookup(doc, "data_types.grad_accum_dtype")) {
    const std::string d = dtype->get<std::string>();
    if (d != "fp32" && d != "float32" && d != "float" && d != "torch.float32") {
      add("data_types.grad_accum_dtype", *dtype, "gradient accumulation in another dtype than fp32");
    }
  }
  for (const char* key : {"data_types.param_dtype", "data_types.buffer_dtype"}) {
    if (const Json* v = Lookup(doc, key)) add(key, *v, "dtype override");
  }
  if (const Json* keep = Lookup(doc, "data_types.keep_in_fp32_modules"); keep && *keep != "auto") {
    add("data_types.keep_in_fp32_modules", *keep, "modules kept in fp32");
  }

  const ActivationCheckpointingConfig& ac = c.activation_checkpointing;
  for (const char* key : {"partition_activations", "contiguous_memory_optimization", "cpu_checkpointing",
                          "synchronize_checkpoint_boundary", "profile"}) {
    add_if_true(absl::StrCat("activation_checkpointing.", key), "activation checkpointing");
  }
  if (ac.number_checkpoints) {
    add("activation_checkpointing.number_checkpoints", *ac.number_checkpoints, "activation checkpointing");
  }

  add_if_true("wandb.enabled", "Weights & Biases monitor");
  add_if_true("comet.enabled", "Comet monitor");
  add_if_true("memory_breakdown", "memory breakdown");
  add_if_true("dump_state", "dumping engine state");
  add_if_true("disable_allgather", "disabling the allgather");
  if (const Json* managed = Lookup(doc, "managed_gradient_accumulation"); managed && *managed == false) {
    add("managed_gradient_accumulation", false, "gradient accumulation owned by the caller");
  }
  if (const Json* sp = Lookup(doc, "sequence_parallel_size"); sp && *sp > 1) {
    add("sequence_parallel_size", *sp, "sequence parallelism");
  }
  if (const Json* wq = Lookup(doc, "weight_quantization")) add("weight_quantization", *wq, "weight quantization");
  if (const Json* ds = Lookup(doc, "datastates_ckpt"); ds && *ds != false) {
    add("datastates_ckpt", *ds, "DataStates checkpointing");
  }

  // Whole blocks: any key away from its default means the feature is in use.
  for (const auto& [block, what] :
       std::vector<std::pair<const char*, const char*>>{{"checkpoint", "checkpoint option"},
                                                        {"pipeline", "pipeline parallelism"},
                                                        {"tensor_parallel", "tensor parallelism"},
                                                        {"hybrid_engine", "hybrid engine"},
                                                        {"compile", "DeepCompile"},
                                                        {"expert_parallel", "expert parallelism"},
                                                        {"autotuning", "autotuning"},
                                                        {"data_efficiency", "data efficiency"}}) {
    const Json* found = Lookup(doc, block);
    const ObjectSchema* schema = BlockSchema(block);
    if (found == nullptr || schema == nullptr) continue;
    Json value = *found;
    if (std::string(block) == "checkpoint") {
      // A writer block turns DeepSpeed's fast writer on, even with default values.
      if (value.contains("writer")) {
        add("checkpoint.writer", value["writer"], what);
        value.erase("writer");
      }
      // Met as they are: every rank saves under the one global step (the tag), and every
      // checkpoint loads at any world size and stage (Engine::LoadCheckpoint).
      value.erase("tag_validation");
      value.erase("load_universal");
    }
    for (const std::string& line : NonDefaultKeys(*schema, value, block))
      out.push_back(absl::StrCat(line, " (", what, ")"));
  }
  return out;
}

}  // namespace config_internal
}  // namespace zt
