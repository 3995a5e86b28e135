// gMock matchers for absl::Status and absl::StatusOr<T> in tests (Abseil 20220623
// ships none):
//
//   EXPECT_THAT(Config::FromJson(text, "t.json"),
//               StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown key")));
//   EXPECT_THAT(config.RequireImplemented(), IsOk());
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

#endif  // ZEROTRAIN_CORE_UTIL_STATUS_MATCHERS_H_
