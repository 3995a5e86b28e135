// Files in tests: a file's whole contents, a fresh directory per test, a directory's names, what
// a piece of code printed to stderr, a shell command's output.
//
//   const std::string dir = zt::testing::FreshTestDir();   // TEST_TMPDIR/<test name>, empty
//   EXPECT_EQ(zt::testing::Slurp(dir + "/out.txt"), "expected");
#ifndef ZEROTRAIN_CORE_UTIL_TEST_FILES_H_
#define ZEROTRAIN_CORE_UTIL_TEST_FILES_H_

#include <functional>
#include <string>
#include <vector>

namespace zt::testing {

// The file's bytes; "" when it cannot be read.
std::string Slurp(const std::string& path);
// TEST_TMPDIR/<the running gtest's name>, removed and created again (a failure is a test failure).
std::string FreshTestDir();
// The entries of `dir` but . and .., sorted; none when it cannot be read.
std::vector<std::string> ListDirNames(const std::string& dir);
// What `body` wrote to stderr (file descriptor 2, every thread), captured through a file.
std::string CaptureStderr(const std::function<void()>& body);

// A shell command's exit code (-1 when it did not exit normally or could not start) and its
// stdout (append " 2>&1" to the command for stderr too).
struct CommandResult {
  int exit_code = -1;
  std::string out;
};
CommandResult RunCommand(const std::string& shell_command);

}  // namespace zt::testing

#endif  // ZEROTRAIN_CORE_UTIL_TEST_FILES_H_
