// Replays DeepSpeed's own schedulers (testdata/lr_schedules.json, made by
// testdata/make_lr_fixtures.py with DeepSpeed 0.19.8) step by step.
#include "core/optim/lr_schedule.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace zt {
namespace {

using ::testing::HasSubstr;

nlohmann::json Fixtures() {
  const std::string path = std::string(std::getenv("TEST_SRCDIR")) + "/zerotrain/core/optim/testdata/lr_schedules.json";
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return nlohmann::json::parse(in);
}

// The scheduler block as a job would have it, through the real config parser.
Config ParseCase(const nlohmann::json& c) {
  nlohmann::json doc = {{"train_batch_size", 1},
                        {"optimizer", {{"type", "AdamW"}, {"params", {{"lr", c["optimizer_lr"]}}}}},
                        {"scheduler", {{"type", c["type"]}, {"params", c["params"]}}}};
  auto config = Config::FromJson(doc.dump(), c["name"].get<std::string>());
  EXPECT_TRUE(config.ok()) << config.status();
  return *config;
}

TEST(LrSchedule, MatchesDeepSpeedStepByStep) {
  nlohmann::json fx = Fixtures();
  ASSERT_GE(fx["cases"].size(), 10u);
  for (const auto& c : fx["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    Config config = ParseCase(c);
    auto sched = LrSchedule::Create(config.scheduler, config.optimizer.adam.lr);
    ASSERT_TRUE(sched.ok()) << sched.status();
    const auto& lrs = c["lrs"];
    const auto& betas = c["betas"];
    for (std::size_t step = 0; step < lrs.size(); ++step) {
      if (step > 0) sched->Step();
      const double want = lrs[step].get<double>();
      // Same operations in the same order as DeepSpeed's Python: equal up to libm's last bit.
      EXPECT_NEAR(sched->lr(), want, 1e-15 + 4e-16 * std::fabs(want)) << "step " << step;
      if (config.scheduler.type == SchedulerType::kOneCycle && config.scheduler.cycle_momentum) {
        ASSERT_TRUE(sched->betas().has_value());
        EXPECT_NEAR(sched->betas()->first, betas[step][0].get<double>(), 1e-15) << "step " << step;
        EXPECT_EQ(sched->betas()->second, betas[step][1].get<double>());
      } else {
        EXPECT_FALSE(sched->betas().has_value());
      }
    }
  }
}

TEST(LrSchedule, NoSchedulerKeepsTheOptimizerLr) {
  SchedulerConfig none;
  auto s = LrSchedule::Create(none, 3e-4);
  ASSERT_TRUE(s.ok());
  s->Step();
  s->Step();
  EXPECT_EQ(s->lr(), 3e-4);
}

TEST(LrSchedule, ResumeWithStepToContinuesTheCurve) {
  SchedulerConfig c;
  c.type = SchedulerType::kWarmupDecayLR;
  c.total_num_steps = 50;
  c.warmup_num_steps = 10;
  auto a = LrSchedule::Create(c, 1e-3);
  auto b = LrSchedule::Create(c, 1e-3);
  ASSERT_TRUE(a.ok() && b.ok());
  for (int i = 0; i < 17; ++i) a->Step();
  b->StepTo(a->last_batch_iteration());
  EXPECT_EQ(a->lr(), b->lr());
}

TEST(LrSchedule, RejectsParametersDeepSpeedRejects) {
  SchedulerConfig c;
  c.type = SchedulerType::kWarmupCosineLR;
  EXPECT_THAT(std::string(LrSchedule::Create(c, 1e-3).status().message()), HasSubstr("total_num_steps is required"));
  c.type = SchedulerType::kLRRangeTest;
  c.lr_range_test_step_size = 0;
  EXPECT_EQ(LrSchedule::Create(c, 1e-3).status().code(), absl::StatusCode::kInvalidArgument);
  c.type = SchedulerType::kOneCycle;
  c.cycle_first_step_size = 0;
  EXPECT_THAT(std::string(LrSchedule::Create(c, 1e-3).status().message()), HasSubstr("cycle_first_step_size"));
}

}  // namespace
}  // namespace zt
