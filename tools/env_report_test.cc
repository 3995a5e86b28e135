#include "tools/env_report.h"

#include <map>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt::tools {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(EnvReport, NamesLibTorchCpuAndIoUring) {
  std::map<std::string, std::string> r;
  for (const auto& [k, v] : EnvReport()) r[k] = v;
  EXPECT_THAT(r["LibTorch"], StartsWith("2."));
  EXPECT_THAT(r["CPU"], HasSubstr(" threads"));
  EXPECT_FALSE(r["CPU SIMD"].empty());
  EXPECT_THAT(r["io_uring"], AnyOf(StartsWith("available"), StartsWith("unavailable (io_uring_queue_init: ")));
  EXPECT_THAT(r["compiler"], StartsWith("g++ "));
}

}  // namespace
}  // namespace zt::tools
