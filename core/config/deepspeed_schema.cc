// The key tables follow DeepSpeed 0.19.8's code (deepspeed/runtime/config.py, zero/config.py,
// zero/offload_config.py, precision_config.py, monitor/config.py, lr_schedules.py, ...), not its
// docs where the two disagree: e.g. stage3_prefetch_bucket_size defaults to 5e7, offload devices
// to "none", steps_per_print to None.
#include "core/config/deepspeed_schema.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/config/deepspeed_schema_parts.h"

namespace zt {
namespace config_internal {
namespace {

constexpr std::int64_t kIntMax = std::numeric_limits<std::int32_t>::max();
constexpr std::int64_t kIntMin = std::numeric_limits<std::int32_t>::min();
constexpr std::int64_t kSysMaxSize = std::numeric_limits<std::int64_t>::max();

// An int the engine keeps in a C++ int.
KeySpec Int32(std::string name, Json default_value) {
  return Int(std::move(name), std::move(default_value))
      .Min(static_cast<double>(kIntMin))
      .Max(static_cast<double>(kIntMax));
}

// A DeepSpeed dtype name (runtime/config.py DtypeEnum).
const std::vector<std::string>& DtypeNames() {
  static const auto* names = new std::vector<std::string>{
      "fp16",          "float16", "half",     "torch.float16",  "fp32", "float32",   "float",
      "torch.float32", "bf16",    "bfloat16", "torch.bfloat16", "int8", "torch.int8"};
  return *names;
}

std::string StringOrStringList(const Json& v) {
  if (v.is_string()) return "";
  if (v.is_array() && std::all_of(v.begin(), v.end(), [](const Json& e) { return e.is_string(); })) return "";
  return "a string or a list of strings";
}

// Removed in DeepSpeed 0.19 (runtime/config.py _REMOVED_*_CONFIG_KEYS): present at all is an error.
std::vector<KeySpec> RemovedTopLevelKeys() {
  const std::string gone = "DeepSpeed 0.19 removed this feature";
  return {
      Removed("nebula", gone + " (Nebula checkpointing); a leftover block would only fall back to plain "
                               "checkpoints. Delete it."),
      Removed("compression_training",
              gone + " (its compression library); the model would silently train unquantized. Delete it."),
      Removed("amp", gone + " (the NVIDIA Apex AMP integration). Use the \"fp16\" or \"bf16\" block instead."),
      Removed("quantize_training", gone + " (Mixture-of-Quantization). Delete the block."),
      Removed("sparse_gradients", gone + " (sparse reduction of dense embedding gradients); the flag would do "
                                         "nothing. Delete it."),
      Removed("eigenvalue", gone + " (eigenvalue-based Mixture-of-Quantization). Delete the block."),
      Removed("sparse_attention", gone + " (Sparse Attention). Delete the block."),
      Removed("elasticity", gone + " (elastic training). Set train_batch_size, train_micro_batch_size_per_gpu "
                                   "and gradient_accumulation_steps directly."),
      Removed("graph_harvesting", gone + " (graph harvesting). Delete the key."),
      Removed("curriculum_learning",
              "DeepSpeed 0.19 removed the top-level block; curriculum learning is "
              "configured under data_efficiency.data_sampling.curriculum_learning."),
      Removed("progressive_layer_drop", gone + " (Progressive Layer Dropping). Delete the block."),
  };
}

Schema OffloadParamSchema() {
  return Obj({
      Enum("device", {"none", "cpu", "nvme"}, "none"),
      String("nvme_path").Nullable(),
      Int("buffer_count", 5).Min(0),
      Int("buffer_size", 100000000).Min(0),
      Int("max_in_cpu", 1000000000).Min(0),
      Bool("pin_memory", true),
  });
}

Schema OffloadOptimizerSchema() {
  return Obj({
      Enum("device", {"none", "cpu", "nvme"}, "none"),
      String("nvme_path").Nullable(),
      Int("buffer_count", 4).Min(0),
      Bool("pin_memory", true),
      Bool("pipeline_read", false),
      Bool("pipeline_write", false),
      Bool("fast_init", false),
      Number("ratio", 1.0).Min(0).Max(1),
      Bool("super_offload", false),
      Number("cpuadam_cores_perc", 0.8).Min(0).Max(1),
  });
}

Schema ZenflowSchema() {
  auto auto_or_int = [](std::int64_t min) {
    return [min](const Json& v) -> std::string {
      if (v.is_string() && v.get<std::string>() == "auto") return "";
      if (v.is_number_integer() && v.get<std::int64_t>() >= min) return "";
      return min > 0 ? absl::StrCat("\"auto\" or an integer >= ", min) : "\"auto\" or an integer";
    };
  };
  return Obj({
      Number("topk_ratio", 0.1).Min(0, true).Max(1, true),
      Enum("select_strategy", {"auto", "step", "epoch"}, "auto"),
      Any("select_interval", "auto").Check(auto_or_int(std::numeric_limits<std::int64_t>::min())),
      Any("update_interval", "auto").Check(auto_or_int(1)),
      Bool("overlap_step", false),
      Bool("offload", false),
      Number("auto_ratio", 0.99).Min(0).Max(1),
      Int("full_warm_up_rounds", 0),
      Number("pt_reserved_cores_perc", 0.5).Min(0).Max(1),
      Int("steps_per_epoch").Nullable(),
  });
}

Schema ZeroSchema() {
  const std::string mics = "DeepSpeed 0.19 removed MiCS sharding. Delete the key.";
  return PydanticObj({
      Int("stage", 0).OneOf({0, 1, 2, 3}),
      Bool("contiguous_gradients", true),
      Bool("reduce_scatter", true),
      Int("reduce_bucket_size", 500000000).Min(0, true).JobAuto(),
      Bool("use_multi_rank_bucket_allreduce", true),
      Bool("allgather_partitions", true),
      Int("allgather_bucket_size", 500000000).Min(0),
      Bool("overlap_comm", false).Nullable(),  // None: resolved to stage == 3
      Bool("compute_grad_norm", true),
      Bool("load_from_fp32_weights", true),
      Bool("elastic_checkpoint", false),
      Object("offload_param", OffloadParamSchema()).Nullable(),
      Object("offload_optimizer", OffloadOptimizerSchema()).Nullable(),
      Object("zenflow", ZenflowSchema()).Nullable(),
      Int("sub_group_size", 1000000000).Min(0),
      Bool("cpu_offload_param", false).Nullable().Deprecated("offload_param"),
      Bool("cpu_offload_use_pin_memory", false).Nullable().Deprecated("offload_param/offload_optimizer pin_memory"),
      Bool("cpu_offload", false).Nullable().Deprecated("offload_optimizer"),
      Int("stage3_prefetch_bucket_size", 50000000).Min(0).Alias("prefetch_bucket_size").JobAuto(),
      Int("stage3_param_persistence_threshold", 100000).Min(0).Alias("param_persistence_threshold").JobAuto(),
      Int("stage3_model_persistence_threshold", kSysMaxSize).Min(0).Alias("model_persistence_threshold"),
      Int("stage3_max_live_parameters", 1000000000).Min(0).Alias("max_live_parameters"),
      Int("stage3_max_reuse_distance", 1000000000).Min(0).Alias("max_reuse_distance"),
      Bool("stage3_gather_16bit_weights_on_model_save", false).Alias("gather_16bit_weights_on_model_save"),
      Int("stage3_module_granularity_threshold", 0).Alias("module_granularity_threshold"),
      Bool("stage3_use_all_reduce_for_fetch_params", false).Alias("use_all_reduce_for_fetch_params"),
      Bool("stage3_allgather_sequential", false).Alias("allgather_sequential"),
      Bool("stage3_gather_fp16_weights_on_model_save", false).Deprecated("stage3_gather_16bit_weights_on_model_save"),
      Bool("ignore_unused_parameters", true),
      Bool("legacy_stage1", false),
      Bool("round_robin_gradients", false),
      Bool("parameter_alignment", false),
      Int("zero_hpz_partition_size", 1).Min(0),
      Bool("zero_quantized_weights", false),
      Bool("zero_quantized_nontrainable_weights", false),
      Bool("zero_quantized_gradients", false),
      Bool("memory_efficient_linear", true),
      Bool("pipeline_loading_checkpoint", false),
      Bool("override_module_apply", true),
      Bool("log_trace_cache_warnings", false),
      Bool("enable_sanity_checks", false),
      Bool("save_muon_momentum_buffer_in_memory", false),
      Object("leaf_module", Obj({
                                Any("classes").Check(StringOrStringList),
                                Any("names", Json::array()).Check(StringOrStringList),
                                Any("name_suffixes", Json::array()).Check(StringOrStringList),
                            })),
      Removed("mics_shard_size", mics),
      Removed("mics_hierarchical_params_gather", mics),
      Removed("zeropp_loco_param",
              "DeepSpeed 0.19 removed LoCo-ZeRO++. Delete the key (ZeRO++ quantized gradients stay available)."),
  });
}

Schema Fp16Schema() {
  return PydanticObj({
      Bool("enabled", false).JobAuto(),
      Bool("auto_cast", false),
      Number("loss_scale", 0).Min(0),
      Int32("initial_scale_power", 16),
      Int32("loss_scale_window", 1000),
      Int32("hysteresis", 2),
      Bool("consecutive_hysteresis", false),
      Int32("min_loss_scale", 1),
      Bool("fp16_master_weights_and_grads", false),
  });
}

Schema Bf16Schema() {
  return PydanticObj({
      Bool("enabled", false).JobAuto(),
      Bool("immediate_grad_update", false),
      Bool("check_grad_overflow", true),
      Bool("bf16_master_weights_and_grads", false),
      Bool("bf16_optimizer_states", false),
      Removed("check_overflow", "the bf16 key is \"check_grad_overflow\" (DeepSpeed's own format string is wrong)"),
  });
}

// ---- the other blocks -----------------------------------------------------------------------

Schema MonitorSchema() {  // tensorboard, csv_monitor
  return Obj({Bool("enabled", false), String("output_path", ""), String("job_name", "DeepSpeedJobName")});
}

Schema CheckpointSchema() {
  return Obj({
      Enum("tag_validation", {"WARN", "IGNORE", "FAIL"}, "WARN", /*case_insensitive=*/true),
      Bool("load_universal", false),
      Bool("use_node_local_storage", false),
      Object("parallel_write", Obj({Bool("pipeline_stage", false)})),
      Bool("checkpoint_serialization", true),
      Object("writer", Obj({
                           Enum("type", {"MOCK", "PYTHON", "FAST"}, "FAST", true),
                           Int("io_buffer_size", 64 * 1024 * 1024),
                           Bool("io_buffer_double", true),
                           Bool("show_statistics", false),
                           Enum("data_parallel", {"REPLICA", "SOCKET", "MACHINE"}, nullptr, true).Nullable(),
                           Bool("decoupled", false),
                           Int("io_multiplier", 1),
                       }))
          .Nullable(),
  });
}

Schema DataEfficiencySchema() {
  Schema open = Obj({});
  open->open = true;
  return Obj({
      Bool("enabled", false),
      Int("seed", 1234),
      Object("data_sampling", Obj({
                                  Bool("enabled", false),
                                  Int("num_epochs", 1000),
                                  Int("num_workers", 0),
                                  Bool("pin_memory", false),
                                  Object("curriculum_learning", open),
                                  Object("dynamic_batching", open),
                              })),
      Object("data_routing", Obj({Bool("enabled", false), Object("random_ltd", open)})),
  });
}

Schema AutotuningSchema() {
  Schema open = Obj({});
  open->open = true;
  return Obj({
      Bool("enabled", false),
      Bool("fast", true),
      String("results_dir", "autotuning_results"),
      String("exps_dir", "autotuning_exps"),
      Bool("overwrite", true),
      Int("start_profile_step", 3),
      Int("end_profile_step", 5),
      Enum("metric", {"latency", "throughput", "flops", "forward", "step"}, "throughput"),
      String("metric_path").Nullable(),
      Enum("tuner_type", {"gridsearch", "random", "model_based"}, "gridsearch"),
      Int("tuner_early_stopping", 5),
      Int("tuner_num_trials", 50),
      Object("arg_mappings", open).Nullable(),
      Object("model_info", Obj({Bool("profile", false), Int("num_params").Nullable(), Int("hidden_size").Nullable(),
                                Int("num_layers").Nullable()}))
          .Nullable(),
      String("model_info_path").Nullable(),
      Int("mp_size", 1),
      Int("max_train_batch_size").Nullable(),
      Int("min_train_batch_size", 1),
      Int("max_train_micro_batch_size_per_gpu", 1024),
      Int("min_train_micro_batch_size_per_gpu", 1),
      Int("num_tuning_micro_batch_sizes", 3),
  });
}

Schema CompileSchema() {
  return PydanticObj({
      Bool("deepcompile", false),
      Bool("autoep_non_moe", false),
      Bool("free_activation", false),
      Int("free_activation_threshold", 10 * 1024 * 1024),
      Bool("offload_activation", false),
      Bool("offload_activation_pin_memory", true),
      Bool("offload_opt_states", false),
      Bool("double_buffer", true),
      Bool("symmetric_memory", false),
      Bool("debug_log", false),
      Bool("offload_parameters", false),
      Bool("sync_before_reduce", false),
      Bool("sync_after_reduce", false),
      Bool("sync_before_allgather", false),
      Bool("sync_after_allgather", false),
      Bool("keep_int_input_tensors", true),
      Bool("keep_all_input_tensors", false),
      Any("passes").Nullable().Check([](const Json& v) -> std::string {
        const std::vector<std::string> ok = {"z1", "z3", "autosp", "autotp"};
        if (v.is_array() && std::all_of(v.begin(), v.end(), [&](const Json& e) {
              return e.is_string() && Contains(ok, e.get<std::string>());
            })) {
          return "";
        }
        return "a list of \"z1\", \"z3\", \"autosp\", \"autotp\"";
      }),
  });
}

Schema TensorParallelSchema() {
  Schema open = Obj({});
  open->open = true;
  return PydanticObj({
      Any("dtype"),
      Int("autotp_size", 0),
      Bool("tp_overlap_comm", false),
      Bool("vocab_parallel_lm_head", false).Nullable(),
      Enum("vocab_parallel_ce_backend", {"torch", "liger"}, "torch"),
      Object("tensor_parallel", PydanticObj({Int("tp_size", 1), Int("tp_grain_size", 1), Any("mpu"), Any("tp_group")}))
          .Alias("tp"),
      Any("injection_policy_tuple"),
      Object("partition_config", open).Nullable(),
      String("preset_model").Nullable(),
      Bool("keep_module_on_host", false),
      Bool("replace_with_kernel_inject", false).Alias("kernel_inject"),
  });
}

Schema ExpertParallelSchema() {  // module_inject/auto_ep_config.py: read with dict.get, no types
  return Obj({
      Bool("enabled", false),
      Int("autoep_size", 1),
      Int("expert_tensor_parallel_size", 1),
      Bool("validate_folding_routing", false),
      Bool("async_split_plan", false),
      Any("preset_model"),
      Any("moe_layer_pattern"),
      Any("expert_pattern"),
      Any("router_pattern"),
      Bool("use_grouped_mm", true),
      Bool("disable_triton_grouped_mm", false),
      Any("route_norm"),
      Any("route_scale", 1.0),
      Any("score_apply", "auto"),
      Any("combine_impl", "auto"),
      Any("row_weighting_impl", "auto"),
      Any("gate_up_impl", "separate"),
      Any("comm_backend", "comm"),
      Any("comm_num_sm", 12),
      Any("comm_qp_margin", 4),
      Any("comm_max_tokens_per_rank", 0),
      Any("num_expert_groups"),
      Any("num_limited_groups"),
      Any("score_func", "auto"),
      Any("top_k", "auto"),
      Any("load_balance_coeff").Check([](const Json& v) -> std::string {
        return v.is_null() ? "" : "null (DeepSpeed does not support a load-balance coefficient)";
      }),
      Any("routed_scaling_factor", "auto"),
      Any("expert_w1"),
      Any("expert_w2"),
      Any("expert_w3"),
      Any("num_experts_attr"),
      Any("top_k_attr"),
      Any("has_shared_experts"),
      Any("shared_experts_pattern"),
      Any("shared_experts_gate_pattern"),
      Any("expert_activation"),
  });
}

Schema WeightQuantizationSchema() {
  Schema open = Obj({});
  open->open = true;
  return PydanticObj({
      Bool("enabled", true),
      Int("num_bits", 8),
      Enum("q_type", {"symmetric", "asymmetric"}, "symmetric"),
      Int("q_groups", 1),
      Object("quantized_initialization", open),
      Object("post_init_quant", open),
  });
}

Schema RootSchema() {
  std::vector<KeySpec> keys = {
      // Batch sizes: None (absent or null) means "infer" (runtime/config.py _set_batch_related_parameters).
      Int("train_batch_size").Nullable().JobAuto(),
      Int("train_micro_batch_size_per_gpu").Nullable().JobAuto(),
      Int("gradient_accumulation_steps").Nullable().JobAuto(),
      Bool("managed_gradient_accumulation", true),
      Int("steps_per_print").Nullable().Min(0, true),
      Bool("wall_clock_breakdown", false),
      Bool("memory_breakdown", false),
      Bool("dump_state", false),
      Bool("disable_python_gc", false),
      Bool("disable_allgather", false),
      Bool("prescale_gradients", false),
      Number("gradient_predivide_factor", 1.0).Min(0, true),
      Enum("gradient_allreduce_op", {"mean", "sum"}, "mean", true),
      Number("gradient_clipping", 1.0).Min(0).JobAuto(),
      Enum("communication_data_type", {"fp32", "fp16", "bf16"}, nullptr, true).Nullable(),
      Enum("seq_parallel_communication_data_type", {"fp32", "fp16", "bf16"}, "fp32", true).Nullable(),
      Bool("zero_allow_untested_optimizer", false),
      Bool("zero_force_ds_cpu_optimizer", true),
      Bool("dataloader_drop_last", false),
      Any("log_level"),
      Bool("use_data_before_expert_parallelism", false),
      Int("vocabulary_size").Nullable(),
      Int("sequence_parallel_size", 1).Min(1),
      Int("data_parallel_size").Min(1),
      Int("allgather_size", 500000000).Min(0),  // read only with the legacy boolean zero_optimization
      Object("optimizer", OptimizerSchema()),
      Object("scheduler", SchedulerSchema()),
      Object("fp16", Fp16Schema()),
      Object("bf16", Bf16Schema()).Nullable(),
      Object("bfloat16", Bf16Schema()).Nullable().Deprecated("bf16"),
      Object("torch_autocast", Obj({Bool("enabled", false), Enum("dtype", DtypeNames()).Nullable(),
                                    StringList("lower_precision_safe_modules").Nullable()})),
      Object("zero_optimization", ZeroSchema()),
      Object("aio", Obj({
                        Int("block_size", 1048576).Min(0, true),
                        Int32("queue_depth", 8).Min(0, true),
                        Int32("intra_op_parallelism", 1).Min(0, true),
                        Int32("thread_count", 1).Min(0, true).Deprecated("intra_op_parallelism"),
                        Bool("single_submit", false),
                        Bool("overlap_events", true),
                        Bool("use_gds", false),
                    }))
          .Nullable(),
      Object("activation_checkpointing", Obj({
                                             Bool("partition_activations", false),
                                             Bool("contiguous_memory_optimization", false),
                                             Bool("cpu_checkpointing", false),
                                             Int("number_checkpoints").Nullable(),
                                             Bool("synchronize_checkpoint_boundary", false),
                                             Bool("profile", false),
                                         })),
      Object("tensorboard", MonitorSchema()),
      Object("csv_monitor", MonitorSchema()),
      Object("wandb", Obj({Bool("enabled", false), String("group").Nullable(), String("team").Nullable(),
                           String("project", "deepspeed")})),
      Object("comet",
             Obj({Bool("enabled", false), Int("samples_log_interval", 100), String("project").Nullable(),
                  String("workspace").Nullable(), String("api_key").Nullable(), String("experiment_name").Nullable(),
                  String("experiment_key").Nullable(), Bool("online", true).Nullable(), String("mode").Nullable()})),
      Object("comms_logger",
             PydanticObj({Bool("enabled", false), Bool("prof_all", true), StringList("prof_ops", Json::array()),
                          Bool("verbose", false), Bool("debug", false)})),
      Object("flops_profiler", Obj({
                                   Bool("enabled", false),
                                   Number("recompute_fwd_factor", 0.0),
                                   Int("profile_step", 1),
                                   Int("module_depth", -1),
                                   Int("top_modules", 1),
                                   Bool("detailed", true),
                                   String("output_file").Nullable(),
                               })),
      Object("checkpoint", CheckpointSchema()),
      Object("data_types", Obj({
                               Enum("grad_accum_dtype", DtypeNames()).Nullable(),
                               Enum("param_dtype", DtypeNames()).Nullable(),
                               Enum("buffer_dtype", DtypeNames()).Nullable(),
                               Any("keep_in_fp32_modules", "auto").Check([](const Json& v) -> std::string {
                                 if (v == "auto" || (v.is_array() && std::all_of(v.begin(), v.end(), [](const Json& e) {
                                                       return e.is_string();
                                                     }))) {
                                   return "";
                                 }
                                 return "\"auto\" or a list of name patterns";
                               }),
                           })),
      Object("data_efficiency", DataEfficiencySchema()),
      Object("pipeline", Obj({
                             Any("stages", "auto").Check([](const Json& v) -> std::string {
                               return v == "auto" || v.is_number_integer() ? "" : "\"auto\" or an integer";
                             }),
                             String("partition", "best"),
                             Bool("seed_layers", false),
                             Int("activation_checkpoint_interval", 0),
                             Bool("pipe_partitioned", true),
                             Bool("grad_partitioned", true),
                             Bool("use_reentrant", true).Nullable(),
                         })),
      Object("hybrid_engine", PydanticObj({
                                  Bool("enabled", false),
                                  Int("max_out_tokens", 512).Min(0, true),
                                  Int("inference_tp_size", 1),
                                  Bool("release_inference_cache", false),
                                  Bool("pin_parameters", true),
                                  Int("tp_gather_partition_size", 8),
                                  Bool("enable_cuda_graph", false),
                              })),
      Object("autotuning", AutotuningSchema()),
      Object("compile", CompileSchema()),
      Object("timers", Obj({Object("throughput", PydanticObj({Bool("enabled", true), Bool("synchronized", true)}))})),
      Object("tensor_parallel", TensorParallelSchema()),
      Object("expert_parallel", ExpertParallelSchema()),
      Object("weight_quantization", WeightQuantizationSchema()),
      Any("datastates_ckpt"),  // enabled when present and not false; its content goes to DataStates as is
  };
  for (KeySpec& k : RemovedTopLevelKeys()) keys.push_back(std::move(k));
  return Obj(std::move(keys));
}

}  // namespace

const ObjectSchema& DeepSpeedSchema() {
  static const ObjectSchema* schema = new ObjectSchema(*RootSchema());
  return *schema;
}

const ObjectSchema* BlockSchema(absl::string_view key) {
  const KeySpec* k = DeepSpeedSchema().Find(key);
  return k != nullptr && k->object ? k->object.get() : nullptr;
}

}  // namespace config_internal
}  // namespace zt
