// "auto" values (HF transformers' rules), batch-size inference (DeepSpeed's rules) and
// ParseUnresolved.
#include <string>
#include <vector>

#include "core/config/config.h"
#include "core/config/config_test_util.h"
#include "core/util/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Optional;

constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;

using testing_util::Testdata;

// What run_translation.py's defaults give a t5-small run on one GPU (HF TrainingArguments).
AutoValues T5Job() {
  AutoValues job;
  job.lr = 5e-5;
  job.betas = {0.9, 0.999};
  job.eps = 1e-8;
  job.weight_decay = 0.0;
  job.micro_batch = 4;
  job.gradient_accumulation_steps = 1;
  job.max_grad_norm = 1.0;
  job.warmup_steps = 0;
  job.total_steps = 125;  // 500 samples / 4 per step, one epoch
  job.fp16 = false;
  job.bf16 = false;
  job.hidden_size = 512;  // t5-small d_model (HF maps hidden_size to it)
  job.world_size = 1;
  return job;
}

TEST(ConfigAuto, SeedZero2ParsesUnchangedWithT5AutoValues) {
  auto c = Config::FromJson(Testdata("ds_config_zero2.json"), "ds_config_zero2.json", T5Job());
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->train_batch_size, 4);
  EXPECT_EQ(c->train_micro_batch_size_per_gpu, 4);
  EXPECT_EQ(c->gradient_accumulation_steps, 1);
  EXPECT_EQ(c->gradient_clipping, 1.0);
  EXPECT_EQ(c->steps_per_print, 20);
  EXPECT_EQ(c->precision(), Precision::kFp32);
  EXPECT_EQ(c->optimizer.type, OptimizerType::kAdamW);
  EXPECT_EQ(c->optimizer.adam.lr, 5e-5);
  EXPECT_EQ(c->optimizer.adam.beta1, 0.9);
  EXPECT_EQ(c->optimizer.adam.beta2, 0.999);
  EXPECT_EQ(c->optimizer.adam.eps, 1e-8);
  EXPECT_EQ(c->optimizer.adam.weight_decay, 0.0);
  EXPECT_TRUE(c->optimizer.adam.decoupled_weight_decay);
  EXPECT_EQ(c->scheduler.type, SchedulerType::kWarmupLR);
  EXPECT_EQ(c->scheduler.warmup_min_lr, 0.0);
  EXPECT_THAT(c->scheduler.warmup_max_lr, Optional(5e-5));
  EXPECT_EQ(c->scheduler.warmup_num_steps, 1);  // max(1, warmup_steps)
  const ZeroConfig& z = c->zero_optimization;
  EXPECT_EQ(z.stage, 2);
  EXPECT_EQ(z.offload_optimizer.device, OffloadDevice::kCpu);
  EXPECT_TRUE(z.offload_optimizer.pin_memory);
  EXPECT_EQ(z.allgather_bucket_size, 200000000);
  EXPECT_EQ(z.reduce_bucket_size, 200000000);  // explicit 2e8: hidden_size only fills "auto"
  EXPECT_TRUE(z.overlap_comm);
  EXPECT_THAT(c->unresolved_auto, IsEmpty());
  EXPECT_THAT(c->warnings, IsEmpty());
  EXPECT_THAT(c->not_implemented, IsEmpty());  // offload to CPU is implemented
  EXPECT_THAT(c->RequireImplemented(), IsOk());

  auto again = Config::FromJson(c->ToJson(), "printed");
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->ToJson(), c->ToJson());
}

TEST(ConfigAuto, JobFillsBatchSizesWithTheWorldSize) {
  AutoValues job = T5Job();
  job.world_size = 4;
  job.micro_batch = 2;
  job.gradient_accumulation_steps = 3;
  auto c = Config::FromJson(Testdata("ds_config_zero2.json"), "z2.json", job);
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->train_batch_size, 24);
  EXPECT_EQ(c->train_micro_batch_size_per_gpu, 2);
  EXPECT_EQ(c->gradient_accumulation_steps, 3);
}

TEST(ConfigAuto, HiddenSizeFillsReduceBucketForAnyStage) {
  AutoValues job;
  job.hidden_size = 512;
  auto c = Config::FromJson(R"({"train_batch_size": 8, "zero_optimization": {"stage": 2,
      "reduce_bucket_size": "auto", "stage3_prefetch_bucket_size": "auto",
      "stage3_param_persistence_threshold": "auto"}})",
                            "t.json", job);
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->zero_optimization.reduce_bucket_size, 512 * 512);
  // HF leaves the stage-3 keys "auto" below stage 3; DeepSpeed then uses its defaults, quietly.
  EXPECT_EQ(c->zero_optimization.prefetch_bucket_size, 50000000);
  EXPECT_EQ(c->zero_optimization.param_persistence_threshold, 100000);
  EXPECT_THAT(c->warnings, IsEmpty());
}

TEST(ConfigAuto, HiddenSizeFillsStage3Thresholds) {
  AutoValues job;
  job.hidden_size = 512;
  job.micro_batch = 1;
  job.gradient_accumulation_steps = 1;
  job.max_grad_norm = 0.5;
  auto c = Config::FromJson(Testdata("ds_config_zero3.json"), "z3.json", job);
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->zero_optimization.reduce_bucket_size, 262144);
  EXPECT_EQ(c->zero_optimization.prefetch_bucket_size, 235929);  // int(0.9 * 512 * 512) = int(235929.6)
  EXPECT_EQ(c->zero_optimization.param_persistence_threshold, 5120);
  EXPECT_EQ(c->gradient_clipping, 0.5);
}

TEST(ConfigAuto, ExplicitValuesThatContradictTheJobAreAllListed) {
  AutoValues job = T5Job();
  auto c = Config::FromJson(R"({
    "train_micro_batch_size_per_gpu": 8,
    "gradient_clipping": 1,
    "optimizer": {"type": "AdamW", "params": {"lr": 0.001, "betas": [0.9, 0.999], "weight_decay": 0.01}},
    "scheduler": {"type": "WarmupDecayLR", "params": {"warmup_min_lr": 0.5, "total_num_steps": 125,
                                                      "warmup_num_steps": 1000}},
    "fp16": {"enabled": true},
    "zero_optimization": {"stage": 2, "reduce_bucket_size": 5e8}
  })",
                            "t.json", job);
  EXPECT_THAT(c, StatusIs(kInvalid, HasSubstr("t.json: DeepSpeed config values contradict the job's values (set "
                                              "them to \"auto\" to take the job's):\n"
                                              "- ds train_micro_batch_size_per_gpu=8 vs job micro_batch=4\n"
                                              "- ds optimizer.params.lr=0.001 vs job lr=5e-05\n"
                                              "- ds optimizer.params.weight_decay=0.01 vs job weight_decay=0.0\n"
                                              "- ds fp16.enabled=true vs job fp16=false\n"
                                              "- ds scheduler.params.warmup_num_steps=1000 vs job max(1, "
                                              "warmup_steps)=1")));
  // Not compared (HF's fill_only): warmup_min_lr, reduce_bucket_size.  Equal numbers are equal
  // whatever their JSON spelling (gradient_clipping 1 and max_grad_norm 1.0).
  EXPECT_THAT(c, StatusIs(kInvalid, AllOf(Not(HasSubstr("warmup_min_lr")), Not(HasSubstr("reduce_bucket_size")),
                                          Not(HasSubstr("gradient_clipping")))));
}

TEST(ConfigAuto, TrainBatchSizeIsComparedWithTheJobsProduct) {
  AutoValues job;
  job.micro_batch = 4;
  job.gradient_accumulation_steps = 2;
  job.world_size = 2;
  EXPECT_THAT(
      Config::FromJson(R"({"train_batch_size": 32, "train_micro_batch_size_per_gpu": "auto"})", "t.json", job),
      StatusIs(kInvalid,
               HasSubstr("- ds train_batch_size=32 vs job world_size*micro_batch*gradient_accumulation_steps=16")));
  auto ok = Config::FromJson(R"({"train_batch_size": 16, "train_micro_batch_size_per_gpu": "auto"})", "t.json", job);
  ASSERT_THAT(ok, IsOk());
  EXPECT_EQ(ok->gradient_accumulation_steps, 2);  // inferred: (16 // 4) // 2
}

TEST(ConfigAuto, AbsentKeysAreNotAdded) {
  AutoValues job = T5Job();
  auto c = Config::FromJson(R"({"train_micro_batch_size_per_gpu": 4, "optimizer": {"type": "Adam"}})", "t.json", job);
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->optimizer.adam.lr, 1e-3);  // HF fills "auto", never absent keys
  EXPECT_EQ(c->fp16.enabled, false);
}

TEST(ConfigAuto, WarnsWhenAnAbsentKeyLeavesTheJobsBatchUnused) {
  AutoValues job;
  job.micro_batch = 2;
  job.gradient_accumulation_steps = 4;
  auto c = Config::FromJson(R"({"train_micro_batch_size_per_gpu": "auto"})", "t.json", job);
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->gradient_accumulation_steps, 1);  // DeepSpeed's inference: only the micro batch is known
  EXPECT_THAT(c->warnings, ElementsAre("the job's gradient_accumulation_steps is 4 but the config gives 1; the "
                                       "config's value is used"));
}

TEST(ConfigAuto, LegacyBfloat16BlockIsFilledToo) {
  AutoValues job;
  job.bf16 = true;
  auto c = Config::FromJson(R"({"train_batch_size": 8, "bfloat16": {"enabled": "auto"}})", "t.json", job);
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->precision(), Precision::kBf16);
}

TEST(ConfigAuto, UnfilledAutoTakesDeepSpeedsDefault) {
  auto c = Config::FromJson(R"({
    "train_micro_batch_size_per_gpu": 2,
    "gradient_clipping": "auto",
    "optimizer": {"type": "AdamW", "params": {"lr": "auto", "betas": "auto", "eps": "auto", "weight_decay": "auto"}},
    "scheduler": {"type": "WarmupLR", "params": {"warmup_min_lr": "auto", "warmup_max_lr": "auto",
                                                 "warmup_num_steps": "auto"}},
    "fp16": {"enabled": "auto", "loss_scale": "auto"},
    "bf16": {"enabled": "auto"},
    "zero_optimization": {"stage": 3, "reduce_bucket_size": "auto", "stage3_prefetch_bucket_size": "auto",
                          "stage3_param_persistence_threshold": "auto", "contiguous_gradients": "auto",
                          "stage3_gather_16bit_weights_on_model_save": "auto"}
  })",
                            "t.json");
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->gradient_clipping, 1.0);
  EXPECT_EQ(c->optimizer.adam.lr, 1e-3);
  EXPECT_EQ(c->optimizer.adam.beta2, 0.999);
  EXPECT_EQ(c->scheduler.warmup_min_lr, 0.0);
  EXPECT_EQ(c->scheduler.warmup_max_lr, std::nullopt);
  EXPECT_EQ(c->scheduler.warmup_num_steps, 1000);
  EXPECT_FALSE(c->fp16.enabled);
  EXPECT_EQ(c->fp16.loss_scale, 0);
  EXPECT_FALSE(c->bf16.enabled);
  EXPECT_EQ(c->zero_optimization.reduce_bucket_size, 500000000);
  EXPECT_EQ(c->zero_optimization.prefetch_bucket_size, 50000000);
  EXPECT_EQ(c->zero_optimization.param_persistence_threshold, 100000);
  EXPECT_TRUE(c->zero_optimization.contiguous_gradients);
  EXPECT_FALSE(c->zero_optimization.gather_16bit_weights_on_model_save);
  EXPECT_THAT(c->unresolved_auto, IsEmpty());
  EXPECT_THAT(c->warnings, ElementsAre(AllOf(HasSubstr("\"auto\" values the job did not fill take DeepSpeed's "
                                                       "defaults: gradient_clipping, optimizer.params.lr"),
                                             HasSubstr("zero_optimization.stage3_param_persistence_threshold"),
                                             Not(HasSubstr("warmup_min_lr")))));
}

TEST(ConfigAuto, TotalNumStepsHasNoDefault) {
  EXPECT_THAT(Config::FromJson(R"({"train_batch_size": 8, "scheduler": {"type": "WarmupDecayLR",
                                   "params": {"total_num_steps": "auto"}}})",
                               "t.json"),
              StatusIs(kInvalid, HasSubstr("\"scheduler.params.total_num_steps\" is \"auto\" and the job gave no "
                                           "total_steps to fill it; WarmupDecayLR has no default for it")));
  AutoValues job;
  job.total_steps = 300;
  auto c = Config::FromJson(R"({"train_batch_size": 8, "scheduler": {"type": "WarmupCosineLR",
                                "params": {"total_num_steps": "auto", "warmup_num_steps": 10}}})",
                            "t.json", job);
  ASSERT_THAT(c, IsOk());
  EXPECT_THAT(c->scheduler.total_num_steps, Optional(300));
}

TEST(ConfigAuto, AutoIsOnlyForKeysThatTakeIt) {
  EXPECT_THAT(Config::FromJson(R"({"train_batch_size": 8, "steps_per_print": "auto"})", "t.json"),
              StatusIs(kInvalid, HasSubstr("\"steps_per_print\" must be an integer, got \"auto\"")));
  EXPECT_THAT(Config::FromJson(R"({"train_batch_size": 8, "zero_optimization": {"stage": 2,
                                   "offload_optimizer": {"device": "auto"}}})",
                               "t.json"),
              StatusIs(kInvalid, HasSubstr("\"zero_optimization.offload_optimizer.device\" must be one of")));
}

TEST(ConfigAuto, JobValuesAreChecked) {
  AutoValues job;
  job.micro_batch = 0;
  job.world_size = 0;
  EXPECT_THAT(Config::FromJson(R"({"train_batch_size": 8})", "t.json", job),
              StatusIs(kInvalid, HasSubstr("t.json: job values for \"auto\": world_size must be >= 1, got 0; "
                                           "micro_batch must be > 0, got 0")));
}

// ---- batch sizes (DeepSpeed runtime/config.py) ----------------------------------------------

struct BatchCase {
  const char* json;
  int world_size;
  std::int64_t train_batch_size, micro_batch, accumulation;
};

class BatchInference : public ::testing::TestWithParam<BatchCase> {};

TEST_P(BatchInference, InfersTheMissingValues) {
  const BatchCase& tc = GetParam();
  AutoValues job;
  job.world_size = tc.world_size;
  auto c = Config::FromJson(tc.json, "t.json", job);
  ASSERT_THAT(c, IsOk()) << tc.json;
  EXPECT_EQ(c->train_batch_size, tc.train_batch_size) << tc.json;
  EXPECT_EQ(c->train_micro_batch_size_per_gpu, tc.micro_batch) << tc.json;
  EXPECT_EQ(c->gradient_accumulation_steps, tc.accumulation) << tc.json;
}

INSTANTIATE_TEST_SUITE_P(
    Spec21, BatchInference,
    ::testing::Values(
        BatchCase{R"({"train_batch_size": 16, "train_micro_batch_size_per_gpu": 4,
                      "gradient_accumulation_steps": 2})",
                  2, 16, 4, 2},                                                                                // 1. all
        BatchCase{R"({"train_batch_size": 32, "train_micro_batch_size_per_gpu": 4})", 2, 32, 4, 4},            // 2.
        BatchCase{R"({"train_batch_size": 32, "gradient_accumulation_steps": 2})", 2, 32, 8, 2},               // 3.
        BatchCase{R"({"train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 3})", 2, 24, 4, 3},  // 4.
        BatchCase{R"({"train_batch_size": 16})", 4, 16, 4, 1},                                                 // 5.
        BatchCase{R"({"train_micro_batch_size_per_gpu": 4})", 3, 12, 4, 1},                                    // 6.
        BatchCase{R"({"train_batch_size": null, "train_micro_batch_size_per_gpu": 4})", 1, 4, 4, 1},  // null = absent
        BatchCase{R"({"train_batch_size": 2e1, "train_micro_batch_size_per_gpu": 5.0})", 1, 20, 5, 4}));

TEST(BatchSizes, NeedsTrainBatchSizeOrMicroBatch) {
  for (const char* json : {R"({})", R"({"gradient_accumulation_steps": 4})"}) {
    EXPECT_THAT(Config::FromJson(json, "t.json"),
                StatusIs(kInvalid, HasSubstr("t.json: cannot work out the batch size: train_batch_size is not set; "
                                             "train_micro_batch_size_per_gpu is not set")));
  }
}

TEST(BatchSizes, MismatchShowsAllFourNumbers) {  // spec 2.2, first example
  AutoValues job;
  job.world_size = 2;
  EXPECT_THAT(Config::FromJson(R"({"train_batch_size": 32, "train_micro_batch_size_per_gpu": 3})", "t.json", job),
              StatusIs(kInvalid, HasSubstr("train_batch_size 32 != train_micro_batch_size_per_gpu 3 x "
                                           "gradient_accumulation_steps 5 x world size 2 (gradient_accumulation_steps "
                                           "inferred as (train_batch_size 32 // train_micro_batch_size_per_gpu 3) // "
                                           "world size 2)")));
  EXPECT_THAT(Config::FromJson(R"({"train_batch_size": 30, "train_micro_batch_size_per_gpu": 3,
                                   "gradient_accumulation_steps": 4})",
                               "t.json", job),
              StatusIs(kInvalid, HasSubstr("train_batch_size 30 != train_micro_batch_size_per_gpu 3 x "
                                           "gradient_accumulation_steps 4 x world size 2")));
}

TEST(BatchSizes, InferredZeroAccumulationIsRefused) {  // spec 2.2, second example
  EXPECT_THAT(
      Config::FromJson(R"({"train_batch_size": 4, "train_micro_batch_size_per_gpu": 8})", "t.json"),
      StatusIs(kInvalid, HasSubstr("gradient_accumulation_steps must be > 0, got 0 (gradient_accumulation_steps "
                                   "inferred as (train_batch_size 4 // train_micro_batch_size_per_gpu 8) // "
                                   "world size 1)")));
}

TEST(BatchSizes, GivenValuesMustBePositive) {
  EXPECT_THAT(Config::FromJson(R"({"train_micro_batch_size_per_gpu": 0})", "t.json"),
              StatusIs(kInvalid, HasSubstr("train_micro_batch_size_per_gpu must be > 0, got 0")));
  EXPECT_THAT(Config::FromJson(R"({"train_batch_size": -8})", "t.json"),
              StatusIs(kInvalid, HasSubstr("train_batch_size must be > 0, got -8")));
  EXPECT_THAT(Config::FromJson(R"({"train_batch_size": 2.5})", "t.json"),
              StatusIs(kInvalid, HasSubstr("\"train_batch_size\" must be an integer, got 2.5")));
}

TEST(BatchSizes, UnfilledAutoBatchKeysAreInferredFromTheOthers) {
  auto c = Config::FromJson(R"({"train_batch_size": "auto", "train_micro_batch_size_per_gpu": 4,
                                "gradient_accumulation_steps": "auto"})",
                            "t.json");
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->train_batch_size, 4);
  EXPECT_EQ(c->gradient_accumulation_steps, 1);
  EXPECT_THAT(Config::FromJson(Testdata("ds_config_zero2.json"), "z2.json"),
              StatusIs(kInvalid, HasSubstr("z2.json: cannot work out the batch size: train_batch_size is \"auto\" and "
                                           "the job gave no micro_batch and gradient_accumulation_steps to fill it; "
                                           "train_micro_batch_size_per_gpu is \"auto\" and the job gave no "
                                           "micro_batch to fill it")));
}

// ---- ParseUnresolved (ds_config check) -------------------------------------------------------

TEST(ParseUnresolved, KeepsTheJobsAutoValues) {
  auto c = ParseUnresolved(Testdata("ds_config_zero3.json"), "z3.json", AutoValues{});
  ASSERT_THAT(c, IsOk());
  EXPECT_THAT(c->unresolved_auto,
              ElementsAre("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps",
                          "gradient_clipping", "zero_optimization.reduce_bucket_size",
                          "zero_optimization.stage3_prefetch_bucket_size",
                          "zero_optimization.stage3_param_persistence_threshold"));
  EXPECT_EQ(c->train_batch_size, 0);  // the arithmetic waits for the job
  EXPECT_THAT(c->warnings, IsEmpty());
  const std::string json = c->ToJson();
  EXPECT_THAT(json, HasSubstr("\"train_batch_size\": \"auto\""));
  EXPECT_THAT(json, HasSubstr("\"stage3_prefetch_bucket_size\": \"auto\""));
  EXPECT_THAT(json, HasSubstr("\"stage3_max_live_parameters\": 1000000000"));
  EXPECT_THAT(c->RequireImplemented(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("\"auto\" values are still unresolved")));

  auto again = ParseUnresolved(json, "printed", AutoValues{});
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->ToJson(), json);
  EXPECT_EQ(again->unresolved_auto, c->unresolved_auto);
  EXPECT_EQ(again->not_implemented, c->not_implemented);
}

TEST(ParseUnresolved, Zero2SeedListsEveryJobValue) {
  auto c = ParseUnresolved(Testdata("ds_config_zero2.json"), "z2.json", AutoValues{});
  ASSERT_THAT(c, IsOk());
  EXPECT_THAT(c->unresolved_auto,
              ElementsAre("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps",
                          "gradient_clipping", "optimizer.params.lr", "optimizer.params.betas", "optimizer.params.eps",
                          "optimizer.params.weight_decay", "scheduler.params.warmup_max_lr",
                          "scheduler.params.warmup_num_steps", "fp16.enabled", "bf16.enabled"));
  EXPECT_EQ(c->scheduler.warmup_min_lr, 0.0);  // HF always fills 0 here
  auto again = ParseUnresolved(c->ToJson(), "printed", AutoValues{});
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->ToJson(), c->ToJson());
}

TEST(ParseUnresolved, ChecksTheBatchOnlyWhenAllIsKnown) {
  auto partial = ParseUnresolved(R"({"train_batch_size": "auto", "train_micro_batch_size_per_gpu": 3,
                                     "gradient_accumulation_steps": "auto"})",
                                 "t.json", AutoValues{});
  ASSERT_THAT(partial, IsOk());
  EXPECT_EQ(partial->train_micro_batch_size_per_gpu, 3);
  EXPECT_EQ(partial->train_batch_size, 0);
  EXPECT_THAT(partial->ToJson(), HasSubstr("\"train_micro_batch_size_per_gpu\": 3"));

  AutoValues world2;
  world2.world_size = 2;
  EXPECT_THAT(ParseUnresolved(R"({"train_batch_size": 32, "train_micro_batch_size_per_gpu": 3})", "t.json", world2),
              StatusIs(kInvalid, HasSubstr("train_batch_size 32 != train_micro_batch_size_per_gpu 3 x "
                                           "gradient_accumulation_steps 5 x world size 2")));
  EXPECT_THAT(
      ParseUnresolved(R"({"train_batch_size": "auto", "train_micro_batch_size_per_gpu": 0})", "t.json", AutoValues{}),
      StatusIs(kInvalid, HasSubstr("train_micro_batch_size_per_gpu must be > 0, got 0")));
}

TEST(ParseUnresolved, FillsWhatTheJobGives) {
  AutoValues job;
  job.micro_batch = 4;
  job.gradient_accumulation_steps = 2;
  job.world_size = 8;
  auto c = ParseUnresolved(Testdata("ds_config_zero3.json"), "z3.json", job);
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->train_batch_size, 64);
  EXPECT_THAT(c->unresolved_auto, ElementsAre("gradient_clipping", "zero_optimization.reduce_bucket_size",
                                              "zero_optimization.stage3_prefetch_bucket_size",
                                              "zero_optimization.stage3_param_persistence_threshold"));
}

}  // namespace
}  // namespace zt
