#include "core/precision/loss_scaler.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace zt {
namespace {

using ::testing::HasSubstr;

// testdata/loss_scaler.json: DeepSpeed 0.19.8's DynamicLossScaler over random overflow
// sequences (testdata/make_loss_scaler_fixtures.py).
TEST(LossScaler, ReplaysDeepSpeedsDynamicLossScaler) {
  const std::string path =
      std::string(std::getenv("TEST_SRCDIR")) + "/zerotrain/core/precision/testdata/loss_scaler.json";
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << path;
  nlohmann::json fx = nlohmann::json::parse(in);
  ASSERT_GE(fx["cases"].size(), 10u);
  int raised = 0;
  for (const auto& c : fx["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const auto& a = c["args"];
    Fp16Config f;
    f.enabled = true;
    f.initial_scale_power = static_cast<int>(std::log2(a["init_scale"].get<double>()));
    f.loss_scale_window = a["scale_window"];
    f.min_loss_scale = a["min_scale"];
    f.hysteresis = a["delayed_shift"];
    f.consecutive_hysteresis = a["consecutive_hysteresis"];
    LossScaler s = LossScaler::Create(f, /*zero_stage=*/2);
    const auto& overflows = c["overflows"];
    for (std::size_t i = 0; i < overflows.size(); ++i) {
      absl::Status st = s.Update(overflows[i].get<bool>());
      if (!c["raised_at"].is_null() && i == c["raised_at"].get<std::size_t>()) {
        EXPECT_EQ(st.code(), absl::StatusCode::kAborted);
        EXPECT_THAT(std::string(st.message()), HasSubstr("min_loss_scale"));
        ++raised;
        break;
      }
      ASSERT_TRUE(st.ok()) << "update " << i << ": " << st;
      EXPECT_EQ(s.scale(), c["scales"][i].get<double>()) << "update " << i;
      EXPECT_EQ(s.hysteresis_left(), c["hysteresis"][i].get<int>()) << "update " << i;
    }
  }
  EXPECT_GE(raised, 3);
}

TEST(LossScaler, DoublesAfterWindowPlusOneGoodSteps) {
  Fp16Config f;
  f.enabled = true;
  f.initial_scale_power = 10;
  f.loss_scale_window = 4;
  LossScaler s = LossScaler::Create(f, 1);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(s.Update(false).ok());
  EXPECT_EQ(s.scale(), 1024.0);
  ASSERT_TRUE(s.Update(false).ok());  // the 5th good step
  EXPECT_EQ(s.scale(), 2048.0);
}

TEST(LossScaler, HysteresisAbsorbsOverflowsBeforeHalving) {
  Fp16Config f;
  f.enabled = true;
  f.initial_scale_power = 10;
  f.hysteresis = 2;
  LossScaler s = LossScaler::Create(f, 2);
  ASSERT_TRUE(s.Update(true).ok());
  EXPECT_EQ(s.scale(), 1024.0);  // absorbed
  EXPECT_EQ(s.hysteresis_left(), 1);
  ASSERT_TRUE(s.Update(true).ok());
  EXPECT_EQ(s.scale(), 512.0);
}

TEST(LossScaler, StageZeroUsesFp16OptimizerRules) {
  Fp16Config f;
  f.enabled = true;
  f.initial_scale_power = 1;  // 2
  f.hysteresis = 2;           // ignored at stage 0
  f.min_loss_scale = 1;
  LossScaler s = LossScaler::Create(f, 0);
  ASSERT_TRUE(s.Update(true).ok());
  EXPECT_EQ(s.scale(), 1.0);
  ASSERT_TRUE(s.Update(true).ok());  // at the minimum: no failure
  EXPECT_EQ(s.scale(), 1.0);
}

TEST(LossScaler, StaticScaleNeverChangesAndDisabledIsOne) {
  Fp16Config f;
  f.enabled = true;
  f.loss_scale = 128;
  LossScaler s = LossScaler::Create(f, 2);
  ASSERT_TRUE(s.Update(true).ok());
  ASSERT_TRUE(s.Update(false).ok());
  EXPECT_EQ(s.scale(), 128.0);
  EXPECT_FALSE(s.dynamic());
  LossScaler off = LossScaler::Create(Fp16Config{}, 2);
  EXPECT_EQ(off.scale(), 1.0);
}

}  // namespace
}  // namespace zt
