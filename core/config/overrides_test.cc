#include "core/config/overrides.h"

#include <string>

#include "core/util/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt {
namespace {

using ::testing::HasSubstr;

TEST(ApplyConfigOverrides, SetsJsonValuesAndCreatesBlocks) {
  auto text = ApplyConfigOverrides(R"({"optimizer": {"type": "AdamW", "params": {"lr": "auto"}}})", "t.json",
                                   {"optimizer.params.lr=1e-4", "train_micro_batch_size_per_gpu=4",
                                    "zero_optimization.stage=2", "optimizer.params.betas=[0.9, 0.99]"});
  ASSERT_THAT(text, IsOk());
  EXPECT_THAT(*text, HasSubstr("\"lr\": 0.0001"));
  EXPECT_THAT(*text, HasSubstr("\"train_micro_batch_size_per_gpu\": 4"));
  EXPECT_THAT(*text, HasSubstr("\"zero_optimization\": {\n    \"stage\": 2\n  }"));
  EXPECT_THAT(*text, HasSubstr("0.99"));
}

TEST(ApplyConfigOverrides, NonJsonValuesAreStrings) {
  auto text = ApplyConfigOverrides("{}", "t.json", {"scheduler.type=WarmupLR", "fp16.enabled=auto"});
  ASSERT_THAT(text, IsOk());
  EXPECT_THAT(*text, HasSubstr("\"type\": \"WarmupLR\""));
  EXPECT_THAT(*text, HasSubstr("\"enabled\": \"auto\""));
}

TEST(ApplyConfigOverrides, UnknownPathIsAnError) {
  EXPECT_THAT(ApplyConfigOverrides("{}", "t.json", {"zero_optimization.stag=3"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--set zero_optimization.stag=3: unknown key \"zero_optimization.stag\"; did you "
                                 "mean \"stage\"?")));
  EXPECT_THAT(ApplyConfigOverrides(R"({"optimizer": {"type": "Adam"}})", "t.json", {"optimizer.params.lrr=1"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("did you mean \"lr\"?")));
  EXPECT_THAT(ApplyConfigOverrides("{}", "t.json", {"amp.enabled=true"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"amp\" is no longer accepted")));
}

TEST(ApplyConfigOverrides, MalformedAssignmentsAreErrors) {
  EXPECT_THAT(ApplyConfigOverrides("{}", "t.json", {"zero_optimization.stage"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expected key.path=value")));
  EXPECT_THAT(ApplyConfigOverrides("{}", "t.json", {"steps_per_print.x=1"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"steps_per_print\" is not an object")));
  EXPECT_THAT(ApplyConfigOverrides(R"({"zero_optimization": true})", "t.json", {"zero_optimization.stage=2"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"zero_optimization\" is true in t.json")));
  EXPECT_THAT(ApplyConfigOverrides("{\"a\": 1, \"a\": 2}", "t.json", {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("duplicate key \"a\"")));
}

}  // namespace
}  // namespace zt
