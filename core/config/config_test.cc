// Parsing, defaults, validation and not-implemented features of DeepSpeed configs.  "auto" values
// and batch sizes are in config_auto_test.cc, optimizer and scheduler in config_optimizer_test.cc.
#include "core/config/config.h"

#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/config/config_test_util.h"
#include "core/util/logging.h"
#include "core/util/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;

using testing_util::Parse;
using testing_util::Testdata;

// ---- the files users have --------------------------------------------------------------------

TEST(Config, DefaultsAreDeepSpeed0198s) {
  auto c = Config::FromJson(R"({"train_batch_size": 8})", "t.json");
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->train_batch_size, 8);
  EXPECT_EQ(c->train_micro_batch_size_per_gpu, 8);
  EXPECT_EQ(c->gradient_accumulation_steps, 1);
  EXPECT_EQ(c->gradient_clipping, 1.0);
  EXPECT_EQ(c->steps_per_print, std::nullopt);
  EXPECT_FALSE(c->wall_clock_breakdown);
  EXPECT_FALSE(c->memory_breakdown);
  EXPECT_FALSE(c->prescale_gradients);
  EXPECT_EQ(c->gradient_predivide_factor, 1.0);
  EXPECT_EQ(c->gradient_allreduce_op, AllReduceOp::kMean);
  EXPECT_EQ(c->communication_data_type, CommDataType::kDefault);
  EXPECT_EQ(c->precision(), Precision::kFp32);

  EXPECT_FALSE(c->fp16.enabled);
  EXPECT_FALSE(c->fp16.auto_cast);
  EXPECT_EQ(c->fp16.loss_scale, 0);
  EXPECT_EQ(c->fp16.initial_scale_power, 16);
  EXPECT_EQ(c->fp16.loss_scale_window, 1000);
  EXPECT_EQ(c->fp16.hysteresis, 2);
  EXPECT_FALSE(c->fp16.consecutive_hysteresis);
  EXPECT_EQ(c->fp16.min_loss_scale, 1);
  EXPECT_FALSE(c->bf16.enabled);
  EXPECT_FALSE(c->bf16.immediate_grad_update);
  EXPECT_TRUE(c->bf16.check_grad_overflow);

  EXPECT_EQ(c->optimizer.type, OptimizerType::kNone);
  EXPECT_EQ(c->scheduler.type, SchedulerType::kNone);

  const ZeroConfig& z = c->zero_optimization;
  EXPECT_EQ(z.stage, 0);
  EXPECT_TRUE(z.contiguous_gradients);
  EXPECT_TRUE(z.reduce_scatter);
  EXPECT_EQ(z.reduce_bucket_size, 500000000);
  EXPECT_TRUE(z.allgather_partitions);
  EXPECT_EQ(z.allgather_bucket_size, 500000000);
  EXPECT_FALSE(z.overlap_comm);
  EXPECT_TRUE(z.load_from_fp32_weights);
  EXPECT_FALSE(z.elastic_checkpoint);
  EXPECT_EQ(z.offload_param.device, OffloadDevice::kNone);
  EXPECT_EQ(z.offload_param.buffer_count, 5);
  EXPECT_EQ(z.offload_param.buffer_size, 100000000);
  EXPECT_EQ(z.offload_param.max_in_cpu, 1000000000);
  EXPECT_TRUE(z.offload_param.pin_memory);
  EXPECT_EQ(z.offload_optimizer.device, OffloadDevice::kNone);
  EXPECT_EQ(z.offload_optimizer.buffer_count, 4);
  EXPECT_TRUE(z.offload_optimizer.pin_memory);
  EXPECT_EQ(z.offload_optimizer.ratio, 1.0);
  EXPECT_EQ(z.offload_optimizer.cpuadam_cores_perc, 0.8);
  EXPECT_EQ(z.sub_group_size, 1000000000);
  EXPECT_EQ(z.prefetch_bucket_size, 50000000);
  EXPECT_EQ(z.param_persistence_threshold, 100000);
  EXPECT_EQ(z.model_persistence_threshold, std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(z.max_live_parameters, 1000000000);
  EXPECT_EQ(z.max_reuse_distance, 1000000000);
  EXPECT_FALSE(z.gather_16bit_weights_on_model_save);
  EXPECT_TRUE(z.ignore_unused_parameters);
  EXPECT_FALSE(z.round_robin_gradients);

  EXPECT_EQ(c->aio.block_size, 1048576);
  EXPECT_EQ(c->aio.queue_depth, 8);
  EXPECT_EQ(c->aio.intra_op_parallelism, 1);
  EXPECT_FALSE(c->aio.single_submit);
  EXPECT_TRUE(c->aio.overlap_events);
  EXPECT_FALSE(c->aio.use_gds);
  EXPECT_EQ(c->activation_checkpointing.number_checkpoints, std::nullopt);
  EXPECT_EQ(c->tensorboard.output_path, "");
  EXPECT_EQ(c->tensorboard.job_name, "DeepSpeedJobName");
  EXPECT_TRUE(c->comms_logger.prof_all);
  EXPECT_EQ(c->flops_profiler.module_depth, -1);
  EXPECT_EQ(c->checkpoint.tag_validation, "WARN");

  EXPECT_THAT(c->not_implemented, IsEmpty());
  EXPECT_THAT(c->warnings, IsEmpty());
  EXPECT_THAT(c->unresolved_auto, IsEmpty());
  EXPECT_THAT(c->RequireImplemented(), IsOk());
}

TEST(Config, OverlapCommDefaultsToTrueOnlyForStage3) {
  for (int stage : {0, 1, 2, 3}) {
    auto c = Parse(absl::StrCat(R"({"zero_optimization": {"stage": )", stage, "}}"));
    ASSERT_THAT(c, IsOk());
    EXPECT_EQ(c->zero_optimization.overlap_comm, stage == 3) << stage;
  }
  auto explicit_false = Parse(R"({"zero_optimization": {"stage": 3, "overlap_comm": false}})");
  ASSERT_THAT(explicit_false, IsOk());
  EXPECT_FALSE(explicit_false->zero_optimization.overlap_comm);
}

TEST(Config, SeedZero3IsImplementedWithBothCpuOffloads) {
  AutoValues job;
  job.micro_batch = 4;
  job.gradient_accumulation_steps = 1;
  job.max_grad_norm = 1.0;
  job.hidden_size = 1024;  // t5-large d_model
  auto c = Config::FromJson(Testdata("ds_config_zero3.json"), "ds_config_zero3.json", job);
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->zero_optimization.stage, 3);
  EXPECT_EQ(c->zero_optimization.reduce_bucket_size, 1024 * 1024);
  EXPECT_EQ(c->zero_optimization.prefetch_bucket_size, 943718);  // int(0.9 * 1024 * 1024)
  EXPECT_EQ(c->zero_optimization.param_persistence_threshold, 10240);
  EXPECT_EQ(c->zero_optimization.max_live_parameters, 1000000000);
  EXPECT_TRUE(c->zero_optimization.gather_16bit_weights_on_model_save);
  EXPECT_EQ(c->zero_optimization.offload_optimizer.device, OffloadDevice::kCpu);
  EXPECT_EQ(c->zero_optimization.offload_param.device, OffloadDevice::kCpu);
  EXPECT_THAT(c->not_implemented, IsEmpty());
  EXPECT_THAT(c->RequireImplemented(), IsOk());
}

TEST(Config, OffloadBeyondWhatTheStageAllows) {
  EXPECT_THAT(Parse(R"({"zero_optimization": {"stage": 0, "offload_optimizer": {"device": "cpu"}}})"),
              StatusIs(kInvalid, HasSubstr("t.json: \"zero_optimization.offload_optimizer.device\" is \"cpu\", but "
                                           "optimizer offload needs ZeRO stage 1, 2 or 3 (stage is 0)")));
  EXPECT_THAT(Parse(R"({"zero_optimization": {"stage": 2, "offload_param": {"device": "cpu"}}})"),
              StatusIs(kInvalid, HasSubstr("parameter offload needs ZeRO stage 3 (stage is 2")));
  auto nvme = Parse(R"({"zero_optimization": {"stage": 3, "offload_optimizer": {"device": "nvme", "nvme_path": "/x"},
                        "offload_param": {"device": "nvme", "nvme_path": "/x"}}})");
  ASSERT_THAT(nvme, IsOk());
  EXPECT_THAT(nvme->not_implemented, IsEmpty());
  auto gds = Parse(R"({"aio": {"use_gds": true}})");
  ASSERT_THAT(gds, IsOk());
  EXPECT_THAT(gds->not_implemented,
              ElementsAre("aio.use_gds=true (GPUDirect Storage: swap files move through host buffers)"));
  auto params_only =
      Parse(R"({"zero_optimization": {"stage": 3, "offload_param": {"device": "nvme", "nvme_path": "/x"}}})");
  ASSERT_THAT(params_only, IsOk());
  EXPECT_THAT(params_only->not_implemented,
              ElementsAre(HasSubstr("zero_optimization.offload_param.device=nvme (ZeRO-Infinity: parameters on NVMe "
                                    "need the whole optimizer state offloaded too")));
}

// Every strict-JSON example of DeepSpeed's config-json.md and ZeRO tutorial parses, with the
// features this build lacks listed.
TEST(Config, DocsExamplesParse) {
  struct Case {
    const char* file;
    std::vector<std::string> not_implemented_contains;
  };
  const std::vector<Case> cases = {
      {"docs_optimizer_adam.json", {}},
      {"docs_optimizer_muon.json", {"optimizer.type=Muon (only Adam and AdamW are implemented)"}},
      {"docs_scheduler_warmuplr.json", {}},
      {"docs_fp16.json", {}},
      {"docs_torch_autocast.json", {"torch_autocast.enabled=true (torch autocast)"}},
      {"docs_aio.json", {}},
      {"docs_tensor_parallel.json", {"tensor_parallel.autotp_size=4 (tensor parallelism)"}},
      {"docs_hybrid_engine.json", {"hybrid_engine.enabled=true (hybrid engine)"}},
      {"docs_expert_parallel.json", {"expert_parallel.enabled=true (expert parallelism)"}},
      {"docs_expert_parallel_custom_model.json", {"expert_parallel.enabled=true (expert parallelism)"}},
      {"docs_expert_parallel_preset_override.json", {"expert_parallel.enabled=true (expert parallelism)"}},
      {"docs_autotuning.json", {"autotuning.overwrite=false (autotuning)"}},
      {"docs_activation_checkpointing.json", {}},
      {"docs_data_efficiency.json", {"data_efficiency.enabled=true (data efficiency)"}},
      {"docs_tensorboard.json", {}},
      {"docs_wandb.json", {"wandb.enabled=true (Weights & Biases monitor)"}},
      {"docs_csv_monitor.json", {}},
      {"docs_comms_logger.json", {}},
      {"docs_comms_logger_prof_ops.json", {}},
      {"zero_tutorial_stage1.json", {}},
      {"zero_tutorial_stage2.json", {}},
      {"zero_tutorial_stage3_offload.json", {}},
      {"zero_tutorial_stage3_elastic.json", {}},
      {"zero_tutorial_gather_16bit.json", {}},
  };
  for (const Case& tc : cases) {
    auto c = Parse(Testdata(tc.file));
    ASSERT_THAT(c, IsOk()) << tc.file;
    if (tc.not_implemented_contains.empty()) {
      EXPECT_THAT(c->not_implemented, IsEmpty()) << tc.file;
    }
    for (const std::string& item : tc.not_implemented_contains) {
      EXPECT_THAT(c->not_implemented, Contains(item)) << tc.file;
    }
  }
}

TEST(Config, DocsExampleValuesAreRead) {
  auto adam = Parse(Testdata("docs_optimizer_adam.json"));
  ASSERT_THAT(adam, IsOk());
  EXPECT_EQ(adam->optimizer.type, OptimizerType::kAdam);
  EXPECT_EQ(adam->optimizer.adam.beta1, 0.8);
  EXPECT_EQ(adam->optimizer.adam.weight_decay, 3e-7);
  EXPECT_TRUE(adam->optimizer.adam.decoupled_weight_decay);  // DeepSpeed's "Adam" is AdamW by default

  auto stage3 = Parse(Testdata("zero_tutorial_stage3_offload.json"));
  ASSERT_THAT(stage3, IsOk());
  EXPECT_EQ(stage3->zero_optimization.prefetch_bucket_size, 10000000);
  EXPECT_EQ(stage3->zero_optimization.reduce_bucket_size, 10000000);
  EXPECT_EQ(stage3->zero_optimization.offload_param.device, OffloadDevice::kCpu);

  auto elastic = Parse(Testdata("zero_tutorial_stage3_elastic.json"));
  ASSERT_THAT(elastic, IsOk());
  EXPECT_THAT(elastic->warnings, Contains(HasSubstr("elastic_checkpoint is ignored with ZeRO stage 3")));
}

TEST(Config, DocsBf16MasterWeightsExampleNeedsAZeroStage) {
  EXPECT_THAT(Parse(Testdata("docs_bf16_master_weights.json")),
              StatusIs(kInvalid, HasSubstr("\"bf16.bf16_master_weights_and_grads\" needs ZeRO stage 1, 2 or 3")));
}

TEST(Config, DocsTrailingCommaExampleIsRefusedWithAHint) {
  EXPECT_THAT(Config::FromJson(Testdata("docs_flops_profiler_trailing_comma.json"), "flops.json"),
              StatusIs(kInvalid, AllOf(HasSubstr("flops.json: invalid JSON at line 9, column 5"),
                                       HasSubstr("no trailing commas"))));
}

TEST(Config, FromFileNamesTheFile) {
  auto c = Config::FromFile("core/config/testdata/ds_config_zero2.json");
  EXPECT_THAT(c, StatusIs(kInvalid, HasSubstr("core/config/testdata/ds_config_zero2.json: cannot work out the batch "
                                              "size")));
  EXPECT_THAT(Config::FromFile("core/config/testdata/missing.json"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing.json: cannot open")));
  EXPECT_THAT(Config::FromFile("core/config/testdata"), StatusIs(kInvalid, HasSubstr("is a directory")));
}

// ---- strictness --------------------------------------------------------------------------

TEST(Config, MalformedJsonNamesLineAndColumn) {
  EXPECT_THAT(Config::FromJson("{\n  \"train_batch_size\": 8\n  \"fp16\": {}\n}", "cfg.json"),
              StatusIs(kInvalid, HasSubstr("cfg.json: invalid JSON at line 3, column 8: syntax error")));
}

TEST(Config, DuplicateKeysAreRefused) {
  EXPECT_THAT(Config::FromJson(R"({"train_batch_size": 8, "zero_optimization": {"stage": 1, "stage": 2}})", "t.json"),
              StatusIs(kInvalid, HasSubstr("duplicate key \"zero_optimization.stage\"")));
}

TEST(Config, UnknownKeysAreRefusedAtEveryLevel) {
  EXPECT_THAT(Parse(R"({"zero_optimization": {"reduce_bucket_sise": 5e8}})"),
              StatusIs(kInvalid, HasSubstr("t.json: unknown key \"zero_optimization.reduce_bucket_sise\"; did you "
                                           "mean \"reduce_bucket_size\"?")));
  EXPECT_THAT(Parse(R"({"gradient_cliping": 1.0})"),
              StatusIs(kInvalid, HasSubstr("unknown key \"gradient_cliping\"; did you mean \"gradient_clipping\"?")));
  EXPECT_THAT(Parse(R"({"zero_optimization": {"offload_optimizer": {"device": "cpu", "pin_memroy": true}}})"),
              StatusIs(kInvalid, HasSubstr("\"zero_optimization.offload_optimizer.pin_memroy\"; did you mean "
                                           "\"pin_memory\"?")));
  EXPECT_THAT(Parse(R"({"my_own_key": 1})"), StatusIs(kInvalid, HasSubstr("unknown key \"my_own_key\"")));
}

TEST(Config, WrongTypesNameThePathTheTypeAndTheValue) {
  EXPECT_THAT(Parse(R"({"zero_optimization": {"stage": "two"}})"),
              StatusIs(kInvalid, HasSubstr("t.json: \"zero_optimization.stage\" must be an integer, got \"two\"")));
  EXPECT_THAT(Parse(R"({"fp16": {"enabled": "yes"}})"),
              StatusIs(kInvalid, HasSubstr("\"fp16.enabled\" must be true or false, got \"yes\"")));
  EXPECT_THAT(Parse(R"({"fp16": {"enabled": 1}})"),
              StatusIs(kInvalid, HasSubstr("\"fp16.enabled\" must be true or false, got 1")));
  EXPECT_THAT(Parse(R"({"optimizer": {"type": "Adam", "params": {"lr": "1e-3"}}})"),
              StatusIs(kInvalid, HasSubstr("\"optimizer.params.lr\" must be a number, got \"1e-3\"")));
  EXPECT_THAT(Parse(R"({"zero_optimization": []})"),
              StatusIs(kInvalid, HasSubstr("\"zero_optimization\" must be an object, got []")));
}

TEST(Config, IntegersAcceptIntegralFloatsLike2e8) {
  auto c = Parse(R"({"zero_optimization": {"stage": 2.0, "reduce_bucket_size": 2e8, "allgather_bucket_size": 2E8,
                                           "stage3_max_live_parameters": 1e9}})");
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->zero_optimization.stage, 2);
  EXPECT_EQ(c->zero_optimization.reduce_bucket_size, 200000000);
  EXPECT_EQ(c->zero_optimization.allgather_bucket_size, 200000000);
  EXPECT_EQ(c->zero_optimization.max_live_parameters, 1000000000);
  EXPECT_THAT(Parse(R"({"zero_optimization": {"reduce_bucket_size": 0.5}})"),
              StatusIs(kInvalid, HasSubstr("\"zero_optimization.reduce_bucket_size\" must be an integer, got 0.5")));
  EXPECT_THAT(Parse(R"({"fp16": {"min_loss_scale": 0.5}})"),
              StatusIs(kInvalid, HasSubstr("\"fp16.min_loss_scale\" must be an integer, got 0.5")));
}

TEST(Config, EnumsListTheirValues) {
  EXPECT_THAT(Parse(R"({"zero_optimization": {"stage": 3, "offload_param": {"device": "gpu"}}})"),
              StatusIs(kInvalid, HasSubstr("\"zero_optimization.offload_param.device\" must be one of \"none\", "
                                           "\"cpu\", \"nvme\", got \"gpu\"")));
  EXPECT_THAT(Parse(R"({"communication_data_type": "fp8"})"),
              StatusIs(kInvalid, HasSubstr("must be one of \"fp32\", \"fp16\", \"bf16\" (any case), got \"fp8\"")));
  EXPECT_THAT(Parse(R"({"gradient_allreduce_op": "max"})"),
              StatusIs(kInvalid, HasSubstr("\"gradient_allreduce_op\" must be one of \"mean\", \"sum\" (any case)")));
  EXPECT_THAT(Parse(R"({"checkpoint": {"tag_validation": "Strict"}})"),
              StatusIs(kInvalid, HasSubstr("must be one of \"WARN\", \"IGNORE\", \"FAIL\" (any case)")));
  EXPECT_THAT(Parse(R"({"optimizer": {"type": "Adamm"}})"),
              StatusIs(kInvalid, HasSubstr("\"optimizer.type\" must be Adam, AdamW, Adagrad, Lamb")));
  EXPECT_THAT(Parse(R"({"scheduler": {"type": "warmuplr"}})"),
              StatusIs(kInvalid, HasSubstr("\"scheduler.type\" must be one of \"WarmupLR\"")));
  // Unknown warmup_type: DeepSpeed warns and uses "log"; a typo here would change a whole run.
  EXPECT_THAT(Parse(R"({"scheduler": {"type": "WarmupLR", "params": {"warmup_type": "liner"}}})"),
              StatusIs(kInvalid, HasSubstr("\"scheduler.params.warmup_type\" must be one of \"log\", \"linear\", got "
                                           "\"liner\"; did you mean \"linear\"?")));
}

TEST(Config, CaseInsensitiveEnumsAreRead) {
  auto c = Parse(R"({"communication_data_type": "BF16", "gradient_allreduce_op": "SUM",
                     "checkpoint": {"tag_validation": "fail"}, "optimizer": {"type": "ADAMW"}})");
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->communication_data_type, CommDataType::kBf16);
  EXPECT_EQ(c->gradient_allreduce_op, AllReduceOp::kSum);
  EXPECT_EQ(c->checkpoint.tag_validation, "FAIL");
  EXPECT_EQ(c->optimizer.type, OptimizerType::kAdamW);
  EXPECT_THAT(c->not_implemented, ::testing::IsEmpty());
}

// Every checkpoint is universal and every rank saves under one tag: load_universal and
// tag_validation are met; node-local storage is not there.
TEST(Config, CheckpointOptions) {
  auto c = Parse(R"({"checkpoint": {"load_universal": true, "tag_validation": "IGNORE",
                     "use_node_local_storage": true}})");
  ASSERT_THAT(c, IsOk());
  EXPECT_TRUE(c->checkpoint.load_universal);
  EXPECT_THAT(c->not_implemented, ElementsAre("checkpoint.use_node_local_storage=true (checkpoint option)"));
}

TEST(Config, RemovedKeysAreRefusedWithTheReason) {
  EXPECT_THAT(Parse(R"({"amp": {"enabled": false}})"),
              StatusIs(kInvalid, HasSubstr("\"amp\" is no longer accepted: DeepSpeed 0.19 removed this feature (the "
                                           "NVIDIA Apex AMP integration). Use the \"fp16\" or \"bf16\" block")));
  EXPECT_THAT(Parse(R"({"sparse_gradients": false})"),
              StatusIs(kInvalid, HasSubstr("\"sparse_gradients\" is no longer accepted")));
  EXPECT_THAT(Parse(R"({"elasticity": {"enabled": false}})"),
              StatusIs(kInvalid, HasSubstr("Set train_batch_size, train_micro_batch_size_per_gpu and "
                                           "gradient_accumulation_steps directly")));
  for (const char* key : {"nebula", "compression_training", "quantize_training", "eigenvalue", "sparse_attention",
                          "graph_harvesting", "curriculum_learning", "progressive_layer_drop"}) {
    EXPECT_THAT(Parse(absl::StrCat(R"({")", key, R"(": {}})")),
                StatusIs(kInvalid, HasSubstr(absl::StrCat("\"", key, "\" is no longer accepted"))));
  }
  EXPECT_THAT(Parse(R"({"zero_optimization": {"stage": 3, "mics_shard_size": 8}})"),
              StatusIs(kInvalid, HasSubstr("\"zero_optimization.mics_shard_size\" is no longer accepted: DeepSpeed "
                                           "0.19 removed MiCS")));
  EXPECT_THAT(Parse(R"({"zero_optimization": {"zeropp_loco_param": {}}})"),
              StatusIs(kInvalid, HasSubstr("LoCo-ZeRO++")));
  EXPECT_THAT(Parse(R"({"bf16": {"check_overflow": true}})"),
              StatusIs(kInvalid, HasSubstr("the bf16 key is \"check_grad_overflow\"")));
}

// ---- deprecated names -----------------------------------------------------------------------

TEST(Config, DeprecatedNamesWorkWithOneWarningEach) {
  auto c = Parse(R"({"bfloat16": {"enabled": true},
                     "zero_optimization": {"stage": 2, "cpu_offload": true, "cpu_offload_use_pin_memory": true,
                                           "stage3_gather_fp16_weights_on_model_save": true},
                     "aio": {"thread_count": 4}})");
  ASSERT_THAT(c, IsOk());
  EXPECT_TRUE(c->bf16.enabled);
  EXPECT_EQ(c->zero_optimization.offload_optimizer.device, OffloadDevice::kCpu);
  EXPECT_TRUE(c->zero_optimization.gather_16bit_weights_on_model_save);
  EXPECT_EQ(c->aio.intra_op_parallelism, 4);
  EXPECT_THAT(
      c->warnings,
      ElementsAre("\"bfloat16\" is deprecated; use \"bf16\" instead",
                  "\"zero_optimization.cpu_offload\" is deprecated; use \"zero_optimization.offload_optimizer\" "
                  "instead",
                  "\"zero_optimization.stage3_gather_fp16_weights_on_model_save\" is deprecated; use "
                  "\"zero_optimization.stage3_gather_16bit_weights_on_model_save\" instead",
                  HasSubstr("\"zero_optimization.cpu_offload_use_pin_memory\" is deprecated and ignored"),
                  "\"aio.thread_count\" is deprecated; use \"aio.intra_op_parallelism\" instead"));
}

TEST(Config, CpuOffloadParamBecomesOffloadParamOnCpu) {
  auto c = Parse(R"({"zero_optimization": {"stage": 3, "cpu_offload_param": true, "cpu_offload": false}})");
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->zero_optimization.offload_param.device, OffloadDevice::kCpu);
  EXPECT_EQ(c->zero_optimization.offload_optimizer.device, OffloadDevice::kNone);
  EXPECT_THAT(c->warnings, SizeIs(2));
}

TEST(Config, Stage3AliasesNeedNoWarning) {
  auto c = Parse(R"({"zero_optimization": {"stage": 3, "prefetch_bucket_size": 123, "max_live_parameters": 7,
                                           "gather_16bit_weights_on_model_save": true}})");
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->zero_optimization.prefetch_bucket_size, 123);
  EXPECT_EQ(c->zero_optimization.max_live_parameters, 7);
  EXPECT_TRUE(c->zero_optimization.gather_16bit_weights_on_model_save);
  EXPECT_THAT(c->warnings, IsEmpty());
}

TEST(Config, DeprecatedAndNewNameTogetherAreRefused) {
  EXPECT_THAT(
      Parse(R"({"zero_optimization": {"stage": 2, "cpu_offload": true, "offload_optimizer": {"device": "cpu"}}})"),
      StatusIs(kInvalid, HasSubstr("\"zero_optimization.cpu_offload\" is the deprecated name of "
                                   "\"zero_optimization.offload_optimizer\"; both are set")));
  EXPECT_THAT(Parse(R"({"zero_optimization": {"stage3_gather_fp16_weights_on_model_save": true,
                                              "gather_16bit_weights_on_model_save": false}})"),
              StatusIs(kInvalid, HasSubstr("both are set")));
  EXPECT_THAT(Parse(R"({"bf16": {"enabled": true}, "bfloat16": {"enabled": true}})"),
              StatusIs(kInvalid, HasSubstr("\"bfloat16\" is the deprecated name of \"bf16\"; both are set")));
  EXPECT_THAT(Parse(R"({"aio": {"thread_count": 2, "intra_op_parallelism": 2}})"),
              StatusIs(kInvalid, HasSubstr("\"aio.thread_count\" is the deprecated name")));
  EXPECT_THAT(Parse(R"({"zero_optimization": {"prefetch_bucket_size": 1, "stage3_prefetch_bucket_size": 2}})"),
              StatusIs(kInvalid, HasSubstr("are the same setting")));
}

TEST(Config, LegacyBooleanZeroOptimization) {
  auto c = Parse(R"({"zero_optimization": true, "allgather_size": 3e8})");
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->zero_optimization.stage, 1);
  EXPECT_EQ(c->zero_optimization.allgather_bucket_size, 300000000);
  EXPECT_THAT(c->warnings, ElementsAre(HasSubstr("\"zero_optimization\": true is DeepSpeed's deprecated form")));
}

TEST(Config, WarningsAreLoggedOncePerProcess) {
  struct Capture : LogSink {
    void Write(LogSeverity, const std::string& line) override { lines.push_back(line); }
    std::vector<std::string> lines;
  } capture;
  LogSink* previous = SetLogSink(&capture);
  const std::string text = R"({"train_batch_size": 8, "vocabulary_size": 12345})";
  for (int i = 0; i < 3; ++i) ASSERT_THAT(Config::FromJson(text, "v.json"), IsOk());
  SetLogSink(previous);
  int count = 0;
  for (const std::string& line : capture.lines) count += line.find("vocabulary_size 12345") != std::string::npos;
  EXPECT_EQ(count, 1);
}

// ---- rules across keys ------------------------------------------------------------------

TEST(Config, CrossKeyRules) {
  struct Case {
    const char* json;
    const char* message;
  };
  const std::vector<Case> cases = {
      {R"({"fp16": {"enabled": true}, "bf16": {"enabled": true}})", "fp16 and bf16 cannot both be enabled"},
      {R"({"zero_optimization": {"stage": 2, "offload_param": {"device": "cpu"}}})",
       "\"zero_optimization.offload_param.device\" is \"cpu\", but parameter offload needs ZeRO stage 3 (stage is 2"},
      {R"({"zero_optimization": {"stage": 0, "offload_optimizer": {"device": "cpu"}}})",
       "optimizer offload needs ZeRO stage 1, 2 or 3 (stage is 0)"},
      {R"({"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "nvme", "nvme_path": "/nvme"}}})",
       "NVMe offload of optimizer state needs ZeRO stage 3; with stage 2 DeepSpeed would keep the state in CPU memory"},
      {R"({"zero_optimization": {"stage": 3, "offload_param": {"device": "nvme"}}})",
       "\"zero_optimization.offload_param.device\" is \"nvme\" but \"zero_optimization.offload_param.nvme_path\" is "
       "not set"},
      {R"({"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu", "ratio": 0.3}}})",
       "\"zero_optimization.offload_optimizer.ratio\" is 0.3: partial offload needs ZeRO stage 3"},
      {R"({"fp16": {"enabled": true, "fp16_master_weights_and_grads": true}})",
       "\"fp16.fp16_master_weights_and_grads\" needs ZeRO stage 1, 2 or 3 (stage is 0)"},
      {R"({"zero_optimization": {"stage": 1}, "bf16": {"enabled": true, "bf16_optimizer_states": true}})",
       "\"bf16.bf16_optimizer_states\" needs \"bf16.bf16_master_weights_and_grads\" true"},
      {R"({"fp16": {"enabled": true, "loss_scale_window": 0}})",
       "\"fp16.loss_scale_window\" must be > 0 with dynamic loss scaling (loss_scale 0), got 0"},
      {R"({"fp16": {"enabled": true, "min_loss_scale": 0}})", "\"fp16.min_loss_scale\" must be > 0"},
      {R"({"zero_optimization": {"stage": 3}, "gradient_allreduce_op": "sum"})",
       "\"gradient_allreduce_op\" \"sum\" is not supported with ZeRO stage 3"},
      {R"({"zero_optimization": {"legacy_stage1": true}})", "\"zero_optimization.legacy_stage1\" is true"},
      {R"({"zero_optimization": {"stage": 0, "compute_grad_norm": false}})",
       "compute_grad_norm\" false is supported only with ZeRO stage 1 or 2"},
      {R"({"fp16": {"loss_scale": -1}})", "\"fp16.loss_scale\" must be >= 0, got -1"},
      {R"({"steps_per_print": 0})", "\"steps_per_print\" must be > 0, got 0"},
      {R"({"zero_optimization": {"stage": 2, "zenflow": {}}, "gradient_allreduce_op": "sum"})",
       "\"gradient_allreduce_op\" \"sum\" is not supported with ZenFlow"},
      {R"({"compile": {"deepcompile": true}, "gradient_allreduce_op": "sum"})",
       "\"gradient_allreduce_op\" \"sum\" is not supported with DeepCompile"},
      {R"({"zero_optimization": {"stage": 2, "compute_grad_norm": false, "offload_optimizer": {"device": "cpu"}}})",
       "\"zero_optimization.compute_grad_norm\" false is not supported with optimizer offload"},
      {R"({"zero_optimization": {"stage": 3, "offload_optimizer": {"device": "nvme"}}})",
       "\"zero_optimization.offload_optimizer.nvme_path\" is not set"},
      {R"({"optimizer": {"type": "AdamW", "params": {"foreach": true}}})",
       "\"optimizer.params.foreach\" applies only with \"torch_adam\": true"},
      {R"({"zero_optimization": {"stage": 2, "zenflow": {"topk_ratio": 1.5}}})",
       "\"zero_optimization.zenflow.topk_ratio\" must be > 0 and < 1, got 1.5"},
      {R"({"zero_optimization": {"stage": 2, "zenflow": {"update_interval": 0}}})",
       "\"zero_optimization.zenflow.update_interval\" must be \"auto\" or an integer >= 1, got 0"},
      {R"({"zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu", "cpuadam_cores_perc": 2}}})",
       "\"zero_optimization.offload_optimizer.cpuadam_cores_perc\" must be between 0 and 1, got 2"},
  };
  for (const Case& tc : cases) EXPECT_THAT(Parse(tc.json), StatusIs(kInvalid, HasSubstr(tc.message))) << tc.json;
}

TEST(Config, StaticLossScaleNeedsNoWindow) {
  auto c = Parse(R"({"fp16": {"enabled": true, "loss_scale": 128, "loss_scale_window": 0}})");
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->fp16.loss_scale, 128);
  EXPECT_EQ(c->precision(), Precision::kFp16);
}

// ---- not implemented yet ---------------------------------------------------------------

TEST(Config, NotImplementedFeaturesAreListedOneLineEach) {
  absl::StatusOr<Config> c = Parse(R"({
    "zero_optimization": {"stage": 2, "zero_quantized_weights": true, "zero_hpz_partition_size": 8,
                          "zenflow": {"topk_ratio": 0.05}},
    "bf16": {"enabled": true, "immediate_grad_update": true},
    "activation_checkpointing": {"partition_activations": true, "number_checkpoints": 4},
    "comms_logger": {"enabled": true},
    "flops_profiler": {"enabled": true},
    "memory_breakdown": true,
    "dump_state": true,
    "disable_allgather": true,
    "data_types": {"grad_accum_dtype": "bf16"},
    "checkpoint": {"use_node_local_storage": true},
    "pipeline": {"stages": 2},
    "compile": {"deepcompile": true}
  })");
  ASSERT_THAT(c, IsOk());
  EXPECT_THAT(c->not_implemented,
              ElementsAre("zero_optimization.zenflow={\"topk_ratio\":0.05} (ZenFlow)",
                          "zero_optimization.zero_quantized_weights=true (ZeRO++ quantization)",
                          "zero_optimization.zero_hpz_partition_size=8 (ZeRO++ hierarchical partitioning)",
                          "bf16.immediate_grad_update=true (bf16 immediate gradient update)",
                          "data_types.grad_accum_dtype=bf16 (gradient accumulation in another dtype than fp32)",
                          "activation_checkpointing.partition_activations=true (activation checkpointing)",
                          "activation_checkpointing.number_checkpoints=4 (activation checkpointing)",
                          "memory_breakdown=true (memory breakdown)",
                          "dump_state=true (dumping engine state)", "disable_allgather=true (disabling the allgather)",
                          "checkpoint.use_node_local_storage=true (checkpoint option)",
                          "pipeline.stages=2 (pipeline parallelism)", "compile.deepcompile=true (DeepCompile)"));
}

TEST(Config, DefaultValuedBlocksAreNotFeatures) {
  auto c = Parse(R"({"checkpoint": {"tag_validation": "Warn", "load_universal": false},
                     "pipeline": {"stages": "auto", "partition": "best"},
                     "hybrid_engine": {"enabled": false}, "data_types": {"grad_accum_dtype": "fp32"},
                     "tensorboard": {"enabled": false, "output_path": "logs"}})");
  ASSERT_THAT(c, IsOk());
  EXPECT_THAT(c->not_implemented, IsEmpty());
}

// ---- ToJson --------------------------------------------------------------------------------

void ExpectRoundTrip(const Config& c) {
  const std::string printed = c.ToJson();
  auto again = Config::FromJson(printed, "printed");
  ASSERT_THAT(again, IsOk()) << printed;
  EXPECT_EQ(again->ToJson(), printed);
  EXPECT_EQ(again->not_implemented, c.not_implemented);
  EXPECT_EQ(again->train_batch_size, c.train_batch_size);
  EXPECT_EQ(again->optimizer.adam.decoupled_weight_decay, c.optimizer.adam.decoupled_weight_decay);
  EXPECT_EQ(again->zero_optimization.overlap_comm, c.zero_optimization.overlap_comm);
}

TEST(Config, ToJsonRoundTrips) {
  const std::vector<std::string> texts = {
      R"({"train_batch_size": 8})",
      R"({"train_batch_size": 32, "gradient_accumulation_steps": 2, "steps_per_print": 10,
          "optimizer": {"type": "Adam", "params": {"lr": 3e-4, "betas": [0.8, 0.99], "adam_w_mode": false}},
          "scheduler": {"type": "WarmupDecayLR", "params": {"total_num_steps": 5000, "warmup_num_steps": 100}},
          "fp16": {"enabled": true, "loss_scale_window": 500}, "communication_data_type": "fp32",
          "zero_optimization": {"stage": 2, "reduce_bucket_size": 2e8, "overlap_comm": true}})",
      R"({"train_micro_batch_size_per_gpu": 2, "optimizer": {"type": "AdamW", "params": {"torch_adam": true}},
          "scheduler": {"type": "OneCycle", "params": {"cycle_min_lr": 0.001, "cycle_max_lr": 0.01,
                                                      "cycle_second_stair_count": 3}},
          "bf16": {"enabled": true}, "zero_optimization": {"stage": 1}})",
      R"({"train_batch_size": 8, "scheduler": {"type": "WarmupLR", "params": {"warmup_max_lr": 0.1}},
          "aio": {"thread_count": 2}, "checkpoint": {"tag_validation": "ignore"}})",
  };
  for (const std::string& text : texts) {
    auto c = Config::FromJson(text, "t.json");
    ASSERT_THAT(c, IsOk()) << text;
    ExpectRoundTrip(*c);
  }
  auto stage3 = Parse(Testdata("zero_tutorial_stage3_offload.json"));
  ASSERT_THAT(stage3, IsOk());
  ExpectRoundTrip(*stage3);
}

TEST(Config, ToJsonPrintsEveryKeyWithItsValue) {
  auto c = Config::FromJson(R"({"train_batch_size": 8, "optimizer": {"type": "adamw"}})", "t.json");
  ASSERT_THAT(c, IsOk());
  const std::string json = c->ToJson();
  EXPECT_THAT(json, HasSubstr("\"train_micro_batch_size_per_gpu\": 8"));
  EXPECT_THAT(json, HasSubstr("\"type\": \"AdamW\""));
  EXPECT_THAT(json, HasSubstr("\"stage3_prefetch_bucket_size\": 50000000"));
  EXPECT_THAT(json, HasSubstr("\"steps_per_print\": null"));
  EXPECT_THAT(json, HasSubstr("\"overlap_comm\": false"));
  EXPECT_THAT(json, Not(HasSubstr("\"scheduler\"")));
  EXPECT_THAT(c->ToJson(-1), Not(HasSubstr("\n")));
}

}  // namespace
}  // namespace zt
