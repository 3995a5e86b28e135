// Helpers for core/config's tests.
#ifndef ZEROTRAIN_CORE_CONFIG_CONFIG_TEST_UTIL_H_
#define ZEROTRAIN_CORE_CONFIG_CONFIG_TEST_UTIL_H_

#include <fstream>
#include <sstream>
#include <string>

#include "absl/status/statusor.h"
#include "core/config/config.h"
#include "core/config/overrides.h"
#include "gtest/gtest.h"

namespace zt {
namespace testing_util {

// A file of core/config/testdata (the tests run in the workspace's runfiles).
inline std::string Testdata(const std::string& name) {
  const std::string path = "core/config/testdata/" + name;
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Config::FromJson with a micro batch of 4 added, as `ds_config check --set` would add it: most
// tests (and the docs' fragments) are not about batch sizes, which DeepSpeed requires.
inline absl::StatusOr<Config> Parse(const std::string& text, const AutoValues& job = {}) {
  auto with_batch = ApplyConfigOverrides(text, "t.json", {"train_micro_batch_size_per_gpu=4"});
  if (!with_batch.ok()) return with_batch.status();
  return Config::FromJson(*with_batch, "t.json", job);
}

}  // namespace testing_util
}  // namespace zt

#endif  // ZEROTRAIN_CORE_CONFIG_CONFIG_TEST_UTIL_H_
