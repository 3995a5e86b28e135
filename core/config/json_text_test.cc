#include "core/config/json_text.h"

#include <string>

#include "core/util/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt {
namespace config_internal {
namespace {

using ::testing::HasSubstr;

TEST(ParseStrictJson, KeepsKeysInFileOrder) {
  auto doc = ParseStrictJson(R"({"b": 1, "a": {"z": 2, "y": 3}})", "t.json");
  ASSERT_TRUE(doc.ok()) << doc.status();
  EXPECT_EQ(doc->dump(), R"({"b":1,"a":{"z":2,"y":3}})");
}

TEST(ParseStrictJson, DuplicateKeyNamesItsPath) {
  EXPECT_THAT(
      ParseStrictJson(R"({"zero_optimization": {"stage": 1, "stage": 2}})", "t.json"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("t.json: duplicate key \"zero_optimization.stage\"")));
}

TEST(ParseStrictJson, DuplicateTopLevelKey) {
  EXPECT_THAT(ParseStrictJson(R"({"fp16": {}, "bf16": {}, "fp16": {}})", "t.json"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("duplicate key \"fp16\"")));
}

TEST(ParseStrictJson, DuplicateKeyInsideAnArrayNamesTheElement) {
  EXPECT_THAT(ParseStrictJson(R"({"a": [{"x": 1}, {"y": 1, "y": 2}]})", "t.json"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("duplicate key \"a[1].y\"")));
}

TEST(ParseStrictJson, SameKeyInSiblingObjectsIsFine) {
  EXPECT_THAT(ParseStrictJson(R"({"a": {"enabled": true}, "b": {"enabled": false}})", "t.json"), IsOk());
}

TEST(ParseStrictJson, SyntaxErrorNamesLineAndColumn) {
  EXPECT_THAT(ParseStrictJson("{\n  \"a\": 1,\n  \"b\" 2\n}", "cfg.json"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("cfg.json: invalid JSON at line 3, column 7: syntax error")));
}

TEST(ParseStrictJson, TrailingCommaGetsAStrictJsonHint) {
  EXPECT_THAT(ParseStrictJson("{\n  \"a\": 1,\n}", "cfg.json"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("line 3, column 1"), HasSubstr("no comments, no trailing commas"))));
}

TEST(ParseStrictJson, CommentsAreRefused) {
  EXPECT_THAT(ParseStrictJson("{\n  // stage 2\n  \"a\": 1\n}", "cfg.json"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 2, column 3")));
}

TEST(ParseStrictJson, EmptyTextIsAnError) {
  EXPECT_THAT(ParseStrictJson("", "empty.json"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty.json: invalid JSON at line 1")));
}

TEST(LineColumn, AgreesWithNlohmannsOwnPosition) {
  for (const std::string text : {"{\"a\": tru}", "{\n\n   \"a\": [1,,2]}", "[1,\n 2,\n 3\n", "{\"a\": 1 \"b\": 2}"}) {
    try {
      const Json parsed = Json::parse(text);
      (void)parsed;
      FAIL() << "parsed: " << text;
    } catch (const Json::parse_error& e) {
      EXPECT_THAT(std::string(e.what()), HasSubstr(LineColumn(text, e.byte))) << text;
    }
  }
}

TEST(ShortJson, TruncatesLongValues) {
  Json long_array = Json::array();
  for (int i = 0; i < 100; ++i) long_array.push_back(i);
  const std::string s = ShortJson(long_array);
  EXPECT_EQ(s.size(), 80u);
  EXPECT_THAT(s, ::testing::EndsWith("..."));
  EXPECT_EQ(ShortJson("two"), "\"two\"");
}

}  // namespace
}  // namespace config_internal
}  // namespace zt
