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

TEST(FileUtilTest, DirectoriesAndPaths) {
  const std::string dir = Tmp("d/e/f");
  ASSERT_THAT(MakeDirs(dir), IsOk());
  ASSERT_THAT(MakeDirs(dir), IsOk());  // exists already: fine
  EXPECT_TRUE(IsDirectory(dir));
  EXPECT_FALSE(IsNonEmptyDirectory(dir));
  ASSERT_THAT(WriteFileAtomically(dir + "/x", "1"), IsOk());
  EXPECT_TRUE(IsNonEmptyDirectory(dir));
  EXPECT_TRUE(IsRegularFile(dir + "/x"));
  EXPECT_FALSE(IsRegularFile(dir));
  EXPECT_TRUE(PathExists(dir + "/x"));
  ASSERT_THAT(RemoveFlatDir(dir), IsOk());
  EXPECT_FALSE(PathExists(dir));
  EXPECT_THAT(RemoveFlatDir(dir), IsOk());
  EXPECT_THAT(MakeDirs(Tmp("d/x/y")), IsOk());
  ASSERT_THAT(WriteFileAtomically(Tmp("d/file"), "1"), IsOk());
  EXPECT_THAT(MakeDirs(Tmp("d/file/sub")), StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("d/file/sub")));

  ::setenv("BUILD_WORKING_DIRECTORY", "/home/u/proj", 1);
  EXPECT_EQ(UserPath("out"), "/home/u/proj/out");
  EXPECT_EQ(UserPath("/abs/out"), "/abs/out");
  ::unsetenv("BUILD_WORKING_DIRECTORY");
  EXPECT_EQ(UserPath("out"), "out");
}

}  // namespace
}  // namespace zt
