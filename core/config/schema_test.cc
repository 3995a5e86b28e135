#include "core/config/schema.h"

#include <memory>
#include <string>

#include "core/config/deepspeed_schema.h"
#include "core/util/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt {
namespace config_internal {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// A small schema with one key of each kind.
const ObjectSchema& Toy() {
  static const ObjectSchema* schema = [] {
    auto inner = std::make_shared<ObjectSchema>();
    inner->keys = {Int("stage", 0).OneOf({0, 1, 2, 3}), Int("reduce_bucket_size", 500000000).Min(0, true).JobAuto(),
                   Bool("contiguous_gradients", true),
                   Int("stage3_max_live_parameters", 1000000000).Alias("max_live_parameters"),
                   Removed("mics_shard_size", "MiCS is gone.")};
    inner->auto_drops = true;
    auto open = std::make_shared<ObjectSchema>();
    open->open = true;
    auto* root = new ObjectSchema();
    root->keys = {Object("zero_optimization", inner),
                  Int("train_batch_size").Nullable().JobAuto(),
                  StrictInt("warmup_num_steps", 1000).Min(0, true),
                  Number("gradient_clipping", 1.0).Min(0),
                  Enum("device", {"none", "cpu", "nvme"}, "none"),
                  Enum("tag_validation", {"WARN", "IGNORE", "FAIL"}, "WARN", true),
                  Number("ratio", 1.0).Min(0).Max(1),
                  NumberPair("betas"),
                  StringList("prof_ops"),
                  Object("free_form", open),
                  String("type").Required()};
    return root;
  }();
  return *schema;
}

absl::StatusOr<Json> WalkText(const std::string& text) {
  auto doc = ParseStrictJson(text, "t.json");
  if (!doc.ok()) return doc.status();
  return Walk(Toy(), *doc, "t.json");
}

TEST(Walk, UnknownKeySuggestsTheClosestKeyOfItsObject) {
  EXPECT_THAT(WalkText(R"({"type": "x", "zero_optimization": {"reduce_bucket_sise": 1}})"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("t.json: unknown key \"zero_optimization.reduce_bucket_sise\"; did you mean "
                                 "\"reduce_bucket_size\"?")));
}

TEST(Walk, UnknownKeySuggestsAnAlias) {
  EXPECT_THAT(WalkText(R"({"type": "x", "zero_optimization": {"max_live_parameter": 1}})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("did you mean \"max_live_parameters\"?")));
}

TEST(Walk, UnknownKeyWithNothingCloseHasNoSuggestion) {
  EXPECT_THAT(WalkText(R"({"type": "x", "foo": 1})"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("unknown key \"foo\""), Not(HasSubstr("did you mean")))));
}

TEST(Walk, KeyAtTheWrongLevelSaysWhereItBelongs) {
  EXPECT_THAT(WalkText(R"({"type": "x", "contiguous_gradients": true})"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"contiguous_gradients\" is a key of \"zero_optimization\"")));
}

TEST(Walk, IntegralFloatBecomesAnInteger) {
  auto out = WalkText(R"({"type": "x", "zero_optimization": {"reduce_bucket_size": 2e8}})");
  ASSERT_THAT(out, IsOk());
  const Json& v = (*out)["zero_optimization"]["reduce_bucket_size"];
  EXPECT_TRUE(v.is_number_integer());
  EXPECT_EQ(v.get<std::int64_t>(), 200000000);
}

TEST(Walk, IntegerRefusesAFraction) {
  EXPECT_THAT(WalkText(R"({"type": "x", "zero_optimization": {"reduce_bucket_size": 0.5}})"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"zero_optimization.reduce_bucket_size\" must be an integer, got 0.5")));
}

TEST(Walk, IntegerRefusesAString) {
  EXPECT_THAT(WalkText(R"({"type": "x", "zero_optimization": {"stage": "two"}})"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"zero_optimization.stage\" must be an integer, got \"two\"")));
}

TEST(Walk, IntegerChoicesAreListed) {
  EXPECT_THAT(WalkText(R"({"type": "x", "zero_optimization": {"stage": 4}})"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"zero_optimization.stage\" must be one of 0, 1, 2, 3, got 4")));
}

TEST(Walk, StrictIntegerRefusesAFloatSpelling) {
  EXPECT_THAT(WalkText(R"({"type": "x", "warmup_num_steps": 1000.0})"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"warmup_num_steps\" must be an integer written without a decimal point")));
  EXPECT_THAT(WalkText(R"({"type": "x", "warmup_num_steps": 1000})"), IsOk());
}

TEST(Walk, BoolsAreTrueOrFalseOnly) {
  EXPECT_THAT(WalkText(R"({"type": "x", "zero_optimization": {"contiguous_gradients": 1}})"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"zero_optimization.contiguous_gradients\" must be true or false, got 1")));
  EXPECT_THAT(WalkText(R"({"type": "x", "zero_optimization": {"contiguous_gradients": "true"}})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be true or false")));
}

TEST(Walk, RangesAreChecked) {
  EXPECT_THAT(WalkText(R"({"type": "x", "zero_optimization": {"reduce_bucket_size": 0}})"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"zero_optimization.reduce_bucket_size\" must be > 0, got 0")));
  EXPECT_THAT(WalkText(R"({"type": "x", "ratio": 1.5})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"ratio\" must be between 0 and 1, got 1.5")));
  EXPECT_THAT(WalkText(R"({"type": "x", "gradient_clipping": -1})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"gradient_clipping\" must be >= 0, got -1")));
}

TEST(Walk, EnumErrorListsTheChoicesAndSuggests) {
  EXPECT_THAT(WalkText(R"({"type": "x", "device": "cpuu"})"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"device\" must be one of \"none\", \"cpu\", \"nvme\", got \"cpuu\"; did you mean "
                                 "\"cpu\"?")));
}

TEST(Walk, EnumIsCaseSensitiveUnlessMarked) {
  EXPECT_THAT(WalkText(R"({"type": "x", "device": "CPU"})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be one of")));
  auto out = WalkText(R"({"type": "x", "tag_validation": "Warn"})");
  ASSERT_THAT(out, IsOk());
  EXPECT_EQ((*out)["tag_validation"], "WARN");
}

TEST(Walk, AliasIsRenamedToTheKeyName) {
  auto out = WalkText(R"({"type": "x", "zero_optimization": {"max_live_parameters": 5}})");
  ASSERT_THAT(out, IsOk());
  EXPECT_EQ((*out)["zero_optimization"].dump(), R"({"stage3_max_live_parameters":5})");
}

TEST(Walk, AliasAndNameTogetherAreRefused) {
  EXPECT_THAT(WalkText(R"({"type": "x", "zero_optimization": {"max_live_parameters": 5,
                                                               "stage3_max_live_parameters": 6}})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("are the same setting")));
}

TEST(Walk, NullMeansUnsetOnlyWhereDeepSpeedAllowsNone) {
  auto out = WalkText(R"({"type": "x", "train_batch_size": null})");
  ASSERT_THAT(out, IsOk());
  EXPECT_FALSE(out->contains("train_batch_size"));
  EXPECT_THAT(
      WalkText(R"({"type": "x", "gradient_clipping": null})"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"gradient_clipping\" must be a number, got null")));
}

TEST(Walk, AutoIsKeptForTheJobToFill) {
  auto out =
      WalkText(R"({"type": "x", "train_batch_size": "auto", "zero_optimization": {"reduce_bucket_size": "auto"}})");
  ASSERT_THAT(out, IsOk());
  EXPECT_EQ((*out)["train_batch_size"], "auto");
  EXPECT_EQ((*out)["zero_optimization"]["reduce_bucket_size"], "auto");
}

TEST(Walk, AutoMeansTheDefaultInPydanticBlocks) {
  auto out = WalkText(R"({"type": "x", "zero_optimization": {"contiguous_gradients": "auto"}})");
  ASSERT_THAT(out, IsOk());
  EXPECT_FALSE((*out)["zero_optimization"].contains("contiguous_gradients"));
}

TEST(Walk, AutoElsewhereIsATypeError) {
  EXPECT_THAT(WalkText(R"({"type": "x", "gradient_clipping": "auto2"})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be a number, got \"auto2\"")));
  EXPECT_THAT(WalkText(R"({"type": "x", "device": "auto"})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"device\" must be one of")));
}

TEST(Walk, RemovedKeyGivesTheReason) {
  EXPECT_THAT(WalkText(R"({"type": "x", "zero_optimization": {"mics_shard_size": 8}})"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"zero_optimization.mics_shard_size\" is no longer accepted: MiCS is gone.")));
}

TEST(Walk, RequiredKeyMustBePresent) {
  EXPECT_THAT(WalkText(R"({})"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"type\" is required")));
}

TEST(Walk, ListsAndPairsAreChecked) {
  EXPECT_THAT(WalkText(R"({"type": "x", "betas": [0.9]})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"betas\" must be a list of two numbers")));
  EXPECT_THAT(WalkText(R"({"type": "x", "prof_ops": ["all_reduce", 3]})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"prof_ops\" must be a list of strings")));
}

TEST(Walk, OpenObjectsKeepUnknownKeys) {
  auto out = WalkText(R"({"type": "x", "free_form": {"anything": [1, {"goes": true}]}})");
  ASSERT_THAT(out, IsOk());
  EXPECT_EQ((*out)["free_form"]["anything"][1]["goes"], true);
}

TEST(Walk, TopLevelMustBeAnObject) {
  EXPECT_THAT(WalkText("[1, 2]"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("a DeepSpeed config must be a JSON object")));
}

TEST(CheckPath, AcceptsKnownPathsAndSuggestsForTypos) {
  const Json doc = Json::object();
  EXPECT_THAT(CheckPath(Toy(), doc, "zero_optimization.stage", "--set"), IsOk());
  EXPECT_THAT(CheckPath(Toy(), doc, "zero_optimization.max_live_parameters", "--set"), IsOk());
  EXPECT_THAT(CheckPath(Toy(), doc, "zero_optimization.stag", "--set"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--set: unknown key \"zero_optimization.stag\"; did you mean \"stage\"?")));
  EXPECT_THAT(CheckPath(Toy(), doc, "ratio.x", "--set"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"ratio\" is not an object")));
  EXPECT_THAT(CheckPath(Toy(), doc, "free_form.a.b.c", "--set"), IsOk());
}

TEST(CheckPath, OptimizerParamsDependOnTheOptimizerType) {
  const ObjectSchema& ds = DeepSpeedSchema();
  const Json adam = Json::parse(R"({"optimizer": {"type": "AdamW"}})");
  EXPECT_THAT(CheckPath(ds, adam, "optimizer.params.lr", "--set"), IsOk());
  EXPECT_THAT(CheckPath(ds, adam, "optimizer.params.momentum", "--set"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown key \"optimizer.params.momentum\"")));
  const Json sgd = Json::parse(R"({"optimizer": {"type": "SGD"}})");
  EXPECT_THAT(CheckPath(ds, sgd, "optimizer.params.momentum", "--set"), IsOk());
}

TEST(NonDefaultKeys, ListsOnlyChangedKeys) {
  const Json doc = Json::parse(R"({"zero_optimization": {"stage": 0, "contiguous_gradients": false},
                                   "free_form": {"x": 1}, "device": "none"})");
  EXPECT_THAT(NonDefaultKeys(Toy(), doc, ""),
              ElementsAre("zero_optimization.contiguous_gradients=false", "free_form.x=1"));
}

// The keys HF's integration fills must be the keys whose "auto" the schema keeps.
TEST(DeepSpeedSchema, HfAutoKeysKeepAuto) {
  const ObjectSchema& ds = DeepSpeedSchema();
  for (const char* key :
       {"train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "gradient_clipping"}) {
    ASSERT_NE(ds.Find(key), nullptr) << key;
    EXPECT_EQ(ds.Find(key)->auto_mode, AutoMode::kJob) << key;
  }
  const ObjectSchema* zero = BlockSchema("zero_optimization");
  ASSERT_NE(zero, nullptr);
  for (const char* key : {"reduce_bucket_size", "stage3_prefetch_bucket_size", "stage3_param_persistence_threshold"}) {
    EXPECT_EQ(zero->Find(key)->auto_mode, AutoMode::kJob) << key;
  }
  EXPECT_EQ(BlockSchema("fp16")->Find("enabled")->auto_mode, AutoMode::kJob);
  EXPECT_EQ(BlockSchema("bf16")->Find("enabled")->auto_mode, AutoMode::kJob);
}

TEST(DeepSpeedSchema, NamesOptimizersAndSchedulersLikeDeepSpeed) {
  EXPECT_TRUE(IsDeepSpeedOptimizer("ADAM"));
  EXPECT_TRUE(IsDeepSpeedOptimizer("lamb"));
  EXPECT_TRUE(IsTorchOptimizer("SGD"));
  EXPECT_FALSE(IsTorchOptimizer("sgd"));
  EXPECT_TRUE(IsDeepSpeedScheduler("WarmupDecayLR"));
  EXPECT_FALSE(IsDeepSpeedScheduler("warmupdecaylr"));
  EXPECT_TRUE(IsTorchScheduler("StepLR"));
}

}  // namespace
}  // namespace config_internal
}  // namespace zt
