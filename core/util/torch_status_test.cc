#include "core/util/torch_status.h"

#include <ATen/ATen.h>

#include <new>
#include <stdexcept>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(CallTorch, ReturnsTheValue) {
  absl::StatusOr<at::Tensor> t = CallTorch("make", [] { return at::ones({2, 3}); });
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->numel(), 6);
}

TEST(CallTorch, FailedTorchCheckBecomesInternalWithoutBacktrace) {
  at::Tensor t = at::ones({2, 3});
  absl::StatusOr<at::Tensor> v = CallTorch("reshape activations", [&] { return t.view({4}); });
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInternal);
  const std::string msg(v.status().message());
  EXPECT_THAT(msg, ::testing::StartsWith("reshape activations: "));
  EXPECT_THAT(msg, HasSubstr("shape '[4]' is invalid for input of size 6"));
  EXPECT_THAT(msg, Not(HasSubstr("Exception raised from")));  // no C++ backtrace
  EXPECT_THAT(msg, Not(::testing::EndsWith("\n")));
}

TEST(CallTorch, IndexErrorBecomesOutOfRange) {
  at::Tensor t = at::zeros({3});
  absl::Status s = CallTorch("pick", [&] { (void)t.select(0, 7); });
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);
}

TEST(CallTorch, VoidCallsReturnOk) {
  at::Tensor dst = at::zeros({4});
  absl::Status s = CallTorch("copy", [&] { dst.copy_(at::ones({4})); });
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(dst.sum().item<float>(), 4.0f);
}

TEST(StatusFromException, GivesBackACarriedStatus) {
  absl::Status s = CallTorch("forward", [] { throw StatusException(absl::DeadlineExceededError("gather timed out")); });
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(s.message(), "forward: gather timed out");
}

TEST(StatusFromException, MapsStandardExceptions) {
  EXPECT_EQ(StatusFromException(std::bad_alloc(), "alloc").code(), absl::StatusCode::kResourceExhausted);
  absl::Status s = StatusFromException(std::runtime_error("boom\n"), "");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(s.message(), "boom");
}

}  // namespace
}  // namespace zt
