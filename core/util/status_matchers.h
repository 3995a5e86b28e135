// gMock matchers for absl::Status and absl::StatusOr<T> in tests (Abseil 20220623
// ships none):
//
//   EXPECT_THAT(Config::FromJson(text, "t.json"),
//               StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown key")));
//   EXPECT_THAT(config.RequireImplemented(), IsOk());
//   ASSERT_OK(engine->Step());
//   ASSERT_OK_AND_ASSIGN(at::Tensor loss, engine->Forward(batch));
#ifndef ZEROTRAIN_CORE_UTIL_STATUS_MATCHERS_H_
#define ZEROTRAIN_CORE_UTIL_STATUS_MATCHERS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"

namespace zt {
namespace testing_internal {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

}  // namespace testing_internal

MATCHER_P2(StatusIs, code, message_matcher,
           "has code " + absl::StatusCodeToString(code) + " and a message that " +
               ::testing::DescribeMatcher<std::string>(message_matcher, negation)) {
  const absl::Status& status = ::zt::testing_internal::GetStatus(arg);
  *result_listener << "whose status is " << status;
  return status.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string(status.message()), result_listener);
}

MATCHER(IsOk, "is OK") {
  const absl::Status& status = ::zt::testing_internal::GetStatus(arg);
  *result_listener << "whose status is " << status;
  return status.ok();
}

}  // namespace zt

#define ASSERT_OK(expr) ASSERT_THAT((expr), ::zt::IsOk())
#define EXPECT_OK(expr) EXPECT_THAT((expr), ::zt::IsOk())
// Declares (or assigns) `lhs` from a StatusOr, failing the test (and returning) if it is not OK.
#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  ZT_ASSERT_OK_AND_ASSIGN_IMPL(ZT_MATCHERS_CONCAT(zt_status_or_, __LINE__), lhs, expr)
#define ZT_MATCHERS_CONCAT_INNER(a, b) a##b
#define ZT_MATCHERS_CONCAT(a, b) ZT_MATCHERS_CONCAT_INNER(a, b)
#define ZT_ASSERT_OK_AND_ASSIGN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  ASSERT_THAT(tmp.status(), ::zt::IsOk());           \
  lhs = *std::move(tmp)

#endif  // ZEROTRAIN_CORE_UTIL_STATUS_MATCHERS_H_
