#include "tools/launcher/supervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "core/util/test_files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt::launch {
namespace {

using ::zt::testing::Slurp;

using ::testing::HasSubstr;
using ::testing::Not;

Child Shell(const std::string& label, const std::string& script) {
  Child c;
  c.label = label;
  c.prefix = "[" + label + "] ";
  c.argv = {"/bin/sh", "-c", script};
  c.env = {"PATH=/usr/bin:/bin"};
  return c;
}

struct Finished {
  Outcome outcome;
  std::string out, err;
  double seconds = 0;
};

// Supervise with our stdout and stderr sent to files, to look at what it printed.
Finished Captured(const std::vector<Child>& children, SuperviseOptions options = {}) {
  const std::string dir = ::testing::TempDir();
  const std::string out_path = dir + "/sup_out", err_path = dir + "/sup_err";
  fflush(stdout);
  fflush(stderr);
  const int saved_out = dup(1), saved_err = dup(2);
  const int out_fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const int err_fd = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  dup2(out_fd, 1);
  dup2(err_fd, 2);
  const auto t0 = std::chrono::steady_clock::now();
  Finished r;
  r.outcome = Supervise(children, options);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  dup2(saved_out, 1);
  dup2(saved_err, 2);
  close(out_fd);
  close(err_fd);
  close(saved_out);
  close(saved_err);
  r.out = Slurp(out_path);
  r.err = Slurp(err_path);
  return r;
}

TEST(Supervise, PrefixesLinesAndSucceedsWhenAllDo) {
  Child a = Shell("rank0", "echo one; echo two >&2; printf 'no newline'");
  Child b = Shell("rank1", "echo '[rank7] from a node launcher'");
  b.log_path = ::testing::TempDir() + "/rank1.log";
  unlink(b.log_path.c_str());
  const Finished r = Captured({a, b});
  EXPECT_EQ(r.outcome.exit_code, 0);
  EXPECT_EQ(r.outcome.failed_child, -1);
  EXPECT_THAT(r.out, HasSubstr("[rank0] one\n"));
  EXPECT_THAT(r.out, HasSubstr("[rank0] no newline\n"));
  EXPECT_THAT(r.err, HasSubstr("[rank0] two\n"));
  EXPECT_THAT(r.out, HasSubstr("[rank7] from a node launcher\n"));
  EXPECT_THAT(r.out, Not(HasSubstr("[rank1] [rank7]")));
  EXPECT_EQ(Slurp(b.log_path), "[rank7] from a node launcher\n");
}

TEST(Supervise, TheFirstFailureStopsTheOthersAndGivesItsCode) {
  const Finished r =
      Captured({Shell("rank0", "sleep 60"), Shell("rank1", "sleep 0.2; exit 7"), Shell("rank2", "sleep 60")});
  EXPECT_EQ(r.outcome.exit_code, 7);
  EXPECT_EQ(r.outcome.failed_child, 1);
  EXPECT_LT(r.seconds, 10);
  EXPECT_THAT(r.err, HasSubstr("rank1 (pid "));
  EXPECT_THAT(r.err, HasSubstr("failed with exit code 7; stopping the other processes (2)"));
  EXPECT_THAT(r.outcome.message, HasSubstr("rank1 failed (exit code 7)"));
}

TEST(Supervise, AKilledChildReportsTheSignal) {
  const Finished r = Captured({Shell("rank0", "kill -9 $$"), Shell("rank1", "sleep 60")});
  EXPECT_EQ(r.outcome.exit_code, 128 + 9);
  EXPECT_THAT(r.err, HasSubstr("rank0 (pid "));
  EXPECT_THAT(r.err, HasSubstr("was killed by signal 9"));
  EXPECT_LT(r.seconds, 10);
}

TEST(Supervise, ChildrenIgnoringSigtermAreKilledAfterTheGrace) {
  SuperviseOptions o;
  o.grace = absl::Milliseconds(500);
  const Finished r =
      Captured({Shell("rank0", "trap '' TERM; sleep 60 & wait; sleep 60"), Shell("rank1", "sleep 0.3; exit 3")}, o);
  EXPECT_EQ(r.outcome.exit_code, 3);
  EXPECT_LT(r.seconds, 10);
  EXPECT_THAT(r.err, HasSubstr("did not stop in time: SIGKILL"));
}

TEST(Supervise, ForwardsSigtermAndExitsWith143) {
  std::thread sender([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    kill(getpid(), SIGTERM);
  });
  const Finished r =
      Captured({Shell("rank0", "trap 'echo got TERM; exit 0' TERM; sleep 60 & wait"), Shell("rank1", "sleep 60")});
  sender.join();
  EXPECT_EQ(r.outcome.exit_code, 128 + SIGTERM);
  EXPECT_LT(r.seconds, 10);
  EXPECT_THAT(r.err, HasSubstr("got SIGTERM, passing it on"));
  EXPECT_THAT(r.out, HasSubstr("[rank0] got TERM"));
}

TEST(Supervise, StopsWhenItsStdinCloses) {
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);  // the children must not hold the write end
  const int saved_in = dup(0);
  dup2(p[0], 0);
  close(p[0]);
  std::thread closer([w = p[1]] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    close(w);
  });
  SuperviseOptions o;
  o.watch_stdin = true;
  const Finished r = Captured({Shell("rank0", "sleep 60")}, o);
  closer.join();
  dup2(saved_in, 0);
  close(saved_in);
  EXPECT_EQ(r.outcome.exit_code, 128 + SIGTERM);
  EXPECT_LT(r.seconds, 10);
  EXPECT_THAT(r.err, HasSubstr("standard input closed"));
}

TEST(Supervise, StopsWhenItsOutputsReaderGoesAway) {
  // stdout is a pipe nobody reads after 300 ms (an ssh session that closed under a node launcher).
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  fflush(stdout);
  const int saved_out = dup(1);
  dup2(p[1], 1);
  close(p[1]);
  std::thread closer([r = p[0]] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    close(r);
  });
  SuperviseOptions o;
  o.watch_output = true;
  const auto t0 = std::chrono::steady_clock::now();
  const Outcome out = Supervise({Shell("rank0", "sleep 60")}, o);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  closer.join();
  dup2(saved_out, 1);
  close(saved_out);
  EXPECT_EQ(out.exit_code, 128 + SIGTERM);
  EXPECT_LT(seconds, 10);
}

TEST(Supervise, ARanksFailureLineStopsAChildThatRunsManyNodes) {
  // pdsh runs every node and stops none: the node launcher's failure line fails the job.
  Child pdsh = Shell("pdsh", "echo 'h2: launch (h2): rank 2 on h2 (pid 1) failed with exit code 9'; sleep 60");
  pdsh.stop_on_failure_line = true;
  const Finished r = Captured({pdsh});
  EXPECT_EQ(r.outcome.exit_code, 9);
  EXPECT_EQ(r.outcome.failed_child, 0);
  EXPECT_LT(r.seconds, 10);
  EXPECT_THAT(r.err, HasSubstr("pdsh passed on a rank's failure"));
  Child killed =
      Shell("pdsh", "echo 'h2: launch (h2): rank 2 on h2 (pid 1) was killed by signal 9 (Killed)'; sleep 60");
  killed.stop_on_failure_line = true;
  EXPECT_EQ(Captured({killed}).outcome.exit_code, 137);
}

TEST(Supervise, AProgramThatCannotStartFailsWith127) {
  Child bad;
  bad.label = "rank0";
  bad.argv = {"/nonexistent/program"};
  const Finished r = Captured({bad, Shell("rank1", "sleep 60")});
  EXPECT_EQ(r.outcome.exit_code, 127);
  EXPECT_THAT(r.err, HasSubstr("cannot run /nonexistent/program"));
  EXPECT_LT(r.seconds, 10);
}

TEST(Supervise, LeftoverBackgroundProcessesDoNotHoldItUp) {
  const Finished r = Captured({Shell("rank0", "sleep 60 & echo started")});
  EXPECT_EQ(r.outcome.exit_code, 0);
  EXPECT_LT(r.seconds, 10);
  EXPECT_THAT(r.out, HasSubstr("[rank0] started"));
}

TEST(DescribeWaitStatus, ReadsLikeAShell) {
  EXPECT_EQ(DescribeWaitStatus(3 << 8), "exit code 3");
  EXPECT_THAT(DescribeWaitStatus(9), HasSubstr("signal 9"));
}

}  // namespace
}  // namespace zt::launch
