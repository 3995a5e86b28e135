#include "core/util/file_util.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "core/util/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt {
namespace {

using ::testing::HasSubstr;

std::string Tmp(const std::string& name) { return std::string(std::getenv("TEST_TMPDIR")) + "/" + name; }

TEST(FileUtilTest, WritesAtomicallyAndReadsBack) {
  const std::string path = Tmp("a.txt");
  std::string big(300000, 'x');
  big[12345] = '\0';  // binary content survives
  ASSERT_THAT(WriteFileAtomically(path, big), IsOk());
  absl::StatusOr<std::string> got = ReadFileToString(path);
  ASSERT_THAT(got.status(), IsOk());
  EXPECT_EQ(*got, big);
  ASSERT_THAT(WriteFileAtomically(path, "short"), IsOk());  // replaces, never appends
  EXPECT_EQ(*ReadFileToString(path), "short");
  EXPECT_FALSE(std::ifstream(path + ".tmp." + std::to_string(::getpid())).good());
}

TEST(FileUtilTest, ErrorsNameThePath) {
  EXPECT_THAT(ReadFileToString(Tmp("missing.json")).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing.json: cannot open: No such file")));
  EXPECT_THAT(ReadFileToString(std::getenv("TEST_TMPDIR")).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cannot open: Is a directory")));
  EXPECT_THAT(WriteFileAtomically("/nonexistent-dir/x.json", "{}"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent-dir/x.json")));
}

}  // namespace
}  // namespace zt
