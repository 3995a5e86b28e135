#include "io/swap_file.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt::io {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

std::string TempDir() { return std::getenv("TEST_TMPDIR"); }
bool Exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

TEST(SwapFile, IsReservedAndRemovedWhenDestroyed) {
  std::string path;
  {
    auto f = SwapFile::Create(TempDir(), "a.swp", 10000);
    ASSERT_TRUE(f.ok()) << f.status();
    path = f->path();
    EXPECT_EQ(f->size(), 12288u);
    EXPECT_EQ(*f->file().Size(), 12288u);
    SwapFile moved = std::move(*f);
    EXPECT_TRUE(Exists(path));
  }
  EXPECT_FALSE(Exists(path));
}

TEST(SwapFile, IsRemovedAtExit) {
  const std::string path = TempDir() + "/exit.swp";
  EXPECT_EXIT(
      {
        auto f = SwapFile::Create(TempDir(), "exit.swp", 4096);
        if (!f.ok() || !Exists(path)) std::exit(3);
        (void)f->file();
        std::exit(0);  // no destructor runs: the exit handler removes it
      },
      ::testing::ExitedWithCode(0), "");
  EXPECT_FALSE(Exists(path));
}

TEST(SwapFile, IsRemovedOnSigtermAndSigint) {
  for (int sig : {SIGTERM, SIGINT}) {
    const std::string path = TempDir() + "/signal.swp";
    EXPECT_EXIT(
        {
          auto f = SwapFile::Create(TempDir(), "signal.swp", 4096);
          if (!f.ok() || !Exists(path)) std::exit(3);
          ::raise(sig);
          std::exit(4);  // not reached: the default action ends the process
        },
        ::testing::KilledBySignal(sig), "");
    EXPECT_FALSE(Exists(path)) << strsignal(sig);
  }
}

TEST(SwapFile, ReservingMoreThanTheDiskHasFailsAtCreation) {
  auto f = SwapFile::Create(TempDir(), "huge.swp", std::uint64_t{1} << 60);
  EXPECT_FALSE(f.ok());
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("huge.swp"));
  EXPECT_FALSE(Exists(TempDir() + "/huge.swp"));
}

TEST(Preflight, AcceptsAWritableDirectoryWithRoom) {
  auto info = PreflightSwapDir(TempDir(), 4096, "offload_optimizer.nvme_path");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_GT(info->free_bytes, 4096u);
}

TEST(Preflight, MissingPathIsNamedWithItsKey) {
  auto s = PreflightSwapDir(TempDir() + "/nowhere", 1, "zero_optimization.offload_param.nvme_path").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(s.message()),
              AllOf(HasSubstr("zero_optimization.offload_param.nvme_path"), HasSubstr("/nowhere")));
}

TEST(Preflight, AFileIsNotADirectory) {
  auto f = SwapFile::Create(TempDir(), "plain", 1);
  auto s = PreflightSwapDir(f->path(), 1, "k").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("is not a directory"));
}

TEST(Preflight, UnwritableDirectoryIsRefused) {
  // Root ignores permission bits; /proc/self is a directory nobody can create files in.
  std::string dir = TempDir() + "/readonly";
  ASSERT_EQ(::mkdir(dir.c_str(), 0500), 0);
  if (::geteuid() == 0) dir = "/proc/self";
  auto s = PreflightSwapDir(dir, 1, "k").status();
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), AllOf(HasSubstr(dir), HasSubstr("is not writable")));
}

TEST(Preflight, TooLittleSpaceSaysNeededAndFree) {
  auto s = PreflightSwapDir(TempDir(), std::uint64_t{1} << 60, "offload_optimizer.nvme_path").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(s.message()), AllOf(HasSubstr("offload_optimizer.nvme_path"), HasSubstr("free"),
                                              HasSubstr("1152921504606846976 bytes")));
}

}  // namespace
}  // namespace zt::io
