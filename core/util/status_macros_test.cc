#include "core/util/status_macros.h"

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError(absl::StrCat(x, " is odd"));
  return x / 2;
}

absl::Status CheckEven(int x) { return Half(x).status(); }

absl::Status ReturnIfError(int x, int* calls) {
  RETURN_IF_ERROR(CheckEven(x));
  ++*calls;
  return absl::OkStatus();
}

absl::StatusOr<int> Quarter(int x) {
  ASSIGN_OR_RETURN(int half, Half(x));
  ASSIGN_OR_RETURN(auto quarter, Half(half), _.WithPrefix("second halving"));
  return quarter;
}

absl::StatusOr<std::unique_ptr<int>> MoveOnly(int x) {
  std::unique_ptr<int> p;
  ASSIGN_OR_RETURN(p, absl::StatusOr<std::unique_ptr<int>>(std::make_unique<int>(x)));
  return p;
}

absl::Status WithContext(int x) {
  RETURN_IF_ERROR(CheckEven(x), _.WithPrefix("config.json").WithSuffix("use an even number"));
  return absl::OkStatus();
}

TEST(StatusMacros, ReturnIfErrorPassesOkThrough) {
  int calls = 0;
  EXPECT_TRUE(ReturnIfError(4, &calls).ok());
  EXPECT_EQ(calls, 1);
}

TEST(StatusMacros, ReturnIfErrorReturnsTheFailure) {
  int calls = 0;
  absl::Status s = ReturnIfError(3, &calls);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "3 is odd");
  EXPECT_EQ(calls, 0);
}

TEST(StatusMacros, AssignOrReturnUnwrapsValues) {
  absl::StatusOr<int> q = Quarter(12);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(*q, 3);
}

TEST(StatusMacros, AssignOrReturnKeepsCodeAndAddsContext) {
  absl::StatusOr<int> first = Quarter(5);
  EXPECT_EQ(first.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(first.status().message(), "5 is odd");
  absl::StatusOr<int> second = Quarter(6);  // 6 -> 3, then 3 is odd
  EXPECT_EQ(second.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(second.status().message(), "second halving: 3 is odd");
}

TEST(StatusMacros, AssignOrReturnMovesIntoExistingVariable) {
  auto p = MoveOnly(7);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(**p, 7);
}

TEST(StatusMacros, ContextChainsPrefixAndSuffix) {
  absl::Status s = WithContext(1);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), ::testing::StrEq("config.json: 1 is odd; use an even number"));
  EXPECT_THAT(std::string(WithContext(9).message()), HasSubstr("9 is odd"));
}

}  // namespace
}  // namespace zt
