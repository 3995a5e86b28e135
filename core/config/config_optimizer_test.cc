// The optimizer and scheduler blocks: Adam/AdamW params, the other optimizers, each scheduler's
// params and defaults.
#include <string>

#include "absl/strings/str_cat.h"
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
using ::testing::Optional;
using testing_util::Parse;

constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;

TEST(Config, AdamWeightDecayModeFollowsDeepSpeed) {
  auto adam = Parse(R"({"optimizer": {"type": "Adam", "params": {"weight_decay": 0.1}}})");
  ASSERT_THAT(adam, IsOk());
  EXPECT_TRUE(adam->optimizer.adam.decoupled_weight_decay);
  auto l2 = Parse(R"({"optimizer": {"type": "Adam", "params": {"adam_w_mode": false}}})");
  ASSERT_THAT(l2, IsOk());
  EXPECT_FALSE(l2->optimizer.adam.decoupled_weight_decay);
  auto adamw = Parse(R"({"optimizer": {"type": "AdamW", "params": {"adam_w_mode": false}}})");
  ASSERT_THAT(adamw, IsOk());
  EXPECT_TRUE(adamw->optimizer.adam.decoupled_weight_decay);
}

TEST(Config, TorchAdamWDefaultsWeightDecayToTorchs) {
  auto c = Parse(R"({"optimizer": {"type": "Adam", "params": {"torch_adam": true}}})");
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->optimizer.adam.weight_decay, 0.01);
  auto l2 = Parse(R"({"optimizer": {"type": "Adam", "params": {"torch_adam": true, "adam_w_mode": false}}})");
  ASSERT_THAT(l2, IsOk());
  EXPECT_EQ(l2->optimizer.adam.weight_decay, 0.0);
  EXPECT_THAT(Parse(R"({"optimizer": {"type": "Adam", "params": {"torch_adam": true, "bias_correction": false}}})"),
              StatusIs(kInvalid, HasSubstr("\"optimizer.params.bias_correction\" is not an argument of "
                                           "torch.optim.Adam/AdamW")));
}

TEST(Config, OptimizerParamErrors) {
  EXPECT_THAT(Parse(R"({"optimizer": {"type": "AdamW", "params": {"lr": 1e-3, "momentum": 0.9}}})"),
              StatusIs(kInvalid, AllOf(HasSubstr("unknown key \"optimizer.params.momentum\""),
                                       HasSubstr("(Adam/AdamW takes lr, betas, eps, weight_decay"))));
  EXPECT_THAT(Parse(R"({"optimizer": {"type": "AdamW", "params": {"max_grad_norm": 1.0}}})"),
              StatusIs(kInvalid, HasSubstr("DeepSpeed refuses max_grad_norm as an optimizer parameter; set the "
                                           "top-level \"gradient_clipping\" instead")));
  EXPECT_THAT(Parse(R"({"optimizer": {"type": "Lamb", "params": {"max_grad_norm": 1.0}}})"),
              StatusIs(kInvalid, HasSubstr("\"gradient_clipping\" instead")));
  EXPECT_THAT(Parse(R"({"optimizer": {"type": "AdamW", "params": {"amsgrad": true}}})"),
              StatusIs(kInvalid, HasSubstr("do not implement AMSGrad")));
  EXPECT_THAT(Parse(R"({"optimizer": {"type": "AdamW", "params": {"betas": [0.9, 1.5]}}})"),
              StatusIs(kInvalid, HasSubstr("\"optimizer.params.betas\" must be two numbers in [0, 1)")));
  EXPECT_THAT(Parse(R"({"optimizer": {"params": {"lr": 1e-3}}})"),
              StatusIs(kInvalid, HasSubstr("\"optimizer.type\" is required")));
}

TEST(Config, OtherOptimizersAreValidButNotImplemented) {
  for (const char* type : {"Lamb", "lion", "Adagrad", "SGD", "RMSprop", "Muon"}) {
    auto c = Parse(absl::StrCat(R"({"optimizer": {"type": ")", type, R"(", "params": {"lr": 0.1, "momentum": 0.9}}})"));
    ASSERT_THAT(c, IsOk()) << type;
    EXPECT_EQ(c->optimizer.type, OptimizerType::kNone);
    EXPECT_THAT(c->not_implemented,
                ElementsAre(absl::StrCat("optimizer.type=", type, " (only Adam and AdamW are implemented)")));
    EXPECT_THAT(c->RequireImplemented(),
                StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("is not supported yet by zerotrain")));
  }
  auto amsgrad = Parse(R"({"optimizer": {"type": "AdamW", "params": {"amsgrad": true, "torch_adam": true}}})");
  ASSERT_THAT(amsgrad, IsOk());
  EXPECT_THAT(amsgrad->not_implemented, ElementsAre("optimizer.params.amsgrad=true (AMSGrad)"));
}

TEST(Config, SchedulerParamsArePerType) {
  EXPECT_THAT(Parse(R"({"scheduler": {"type": "WarmupLR", "params": {"total_num_steps": 100}}})"),
              StatusIs(kInvalid, AllOf(HasSubstr("unknown key \"scheduler.params.total_num_steps\""),
                                       HasSubstr("(WarmupLR takes warmup_min_lr, warmup_max_lr, warmup_num_steps, "
                                                 "warmup_type, last_batch_iteration)"))));
  EXPECT_THAT(Parse(R"({"scheduler": {"type": "WarmupCosineLR", "params": {"total_num_steps": 10,
                                                                          "warmup_max_lr": 0.1}}})"),
              StatusIs(kInvalid, HasSubstr("(WarmupCosineLR takes total_num_steps, warmup_min_ratio")));
  EXPECT_THAT(Parse(R"({"scheduler": {"type": "WarmupDecayLR", "params": {"warmup_num_steps": 10}}})"),
              StatusIs(kInvalid, HasSubstr("\"scheduler.params.total_num_steps\" is required by WarmupDecayLR")));
  EXPECT_THAT(Parse(R"({"scheduler": {"type": "WarmupDecayLR"}})"),
              StatusIs(kInvalid, HasSubstr("\"scheduler.params.total_num_steps\" is required by WarmupDecayLR")));
  EXPECT_THAT(Parse(R"({"scheduler": {"type": "OneCycle", "params": {"cycle_max_lr": 0.1}}})"),
              StatusIs(kInvalid, HasSubstr("\"scheduler.params.cycle_min_lr\" is required by OneCycle")));
  EXPECT_THAT(Parse(R"({"scheduler": {"type": "WarmupLR", "params": {"warmup_num_steps": 1000.0}}})"),
              StatusIs(kInvalid, HasSubstr("\"scheduler.params.warmup_num_steps\" must be an integer written without "
                                           "a decimal point or exponent (DeepSpeed refuses e.g. 1000.0 here), got "
                                           "1000.0")));
  EXPECT_THAT(Parse(R"({"scheduler": {"type": "WarmupLR", "params": {"warmup_num_steps": 0}}})"),
              StatusIs(kInvalid, HasSubstr("\"scheduler.params.warmup_num_steps\" must be > 0, got 0")));
  EXPECT_THAT(Parse(R"({"scheduler": {"type": "LRRangeTest", "params": {"lr_range_test_step_size": 2e3}}})"),
              StatusIs(kInvalid, HasSubstr("must be an integer written without a decimal point")));
}

TEST(Config, SchedulerValuesAndDefaults) {
  auto warmup = Parse(R"({"scheduler": {"type": "WarmupLR", "params": {"warmup_type": "linear"}}})");
  ASSERT_THAT(warmup, IsOk());
  EXPECT_EQ(warmup->scheduler.type, SchedulerType::kWarmupLR);
  EXPECT_EQ(warmup->scheduler.warmup_max_lr, std::nullopt);  // the optimizer's lr
  EXPECT_EQ(warmup->scheduler.warmup_num_steps, 1000);
  EXPECT_EQ(warmup->scheduler.warmup_type, WarmupType::kLinear);

  auto decay = Parse(R"({"scheduler": {"type": "WarmupDecayLR", "params": {"total_num_steps": 500}}})");
  ASSERT_THAT(decay, IsOk());
  EXPECT_THAT(decay->scheduler.warmup_max_lr, Optional(0.001));
  EXPECT_THAT(decay->scheduler.total_num_steps, Optional(500));
  EXPECT_THAT(decay->warnings, ElementsAre("scheduler.params.total_num_steps 500 is less than warmup_num_steps 1000"));

  auto cycle = Parse(R"({"scheduler": {"type": "OneCycle", "params": {"cycle_min_lr": 1e-4, "cycle_max_lr": 1e-3,
                                                                      "cycle_first_step_size": 100}}})");
  ASSERT_THAT(cycle, IsOk());
  EXPECT_EQ(cycle->scheduler.cycle_first_step_size, 100);
  EXPECT_EQ(cycle->scheduler.cycle_second_step_size, std::nullopt);
  EXPECT_TRUE(cycle->scheduler.cycle_momentum);
  EXPECT_EQ(cycle->scheduler.cycle_min_mom, 0.8);

  auto range = Parse(R"({"scheduler": {"type": "LRRangeTest", "params": {"lr_range_test_staircase": true}}})");
  ASSERT_THAT(range, IsOk());
  EXPECT_EQ(range->scheduler.lr_range_test_step_size, 2000);
  EXPECT_TRUE(range->scheduler.lr_range_test_staircase);

  auto torch_sched = Parse(R"({"scheduler": {"type": "StepLR", "params": {"step_size": 10}}})");
  ASSERT_THAT(torch_sched, IsOk());
  EXPECT_EQ(torch_sched->scheduler.type, SchedulerType::kNone);
  EXPECT_THAT(torch_sched->not_implemented, ElementsAre("scheduler.type=StepLR (torch.optim.lr_scheduler schedulers)"));
}

}  // namespace
}  // namespace zt
