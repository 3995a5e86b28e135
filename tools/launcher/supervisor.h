// Runs a job's processes side by side and never leaves one behind: output lines prefixed with
// who wrote them, SIGINT/SIGTERM/SIGHUP forwarded, and the first process that fails stops the
// others (SIGTERM to each one's process group, SIGKILL after a grace period).
//
//   std::vector<zt::launch::Child> ranks = ...;       // argv, full environment, prefix "[rank0] "
//   zt::launch::Outcome out = zt::launch::Supervise(ranks, {});
//   return out.exit_code;                             // 0, the failed child's code, or 128+signal
//
// Every child runs in its own process group and dies with the supervisor (PR_SET_PDEATHSIG), so
// a killed launcher does not leave ranks waiting in a collective.  With watch_stdin and
// watch_output the supervisor also stops everything when its standard input closes or its
// standard output's reader goes away: a node launcher started over ssh or pdsh sees that when
// the launcher on the first machine (or its ssh, or pdsh) is gone.
#ifndef ZEROTRAIN_TOOLS_LAUNCHER_SUPERVISOR_H_
#define ZEROTRAIN_TOOLS_LAUNCHER_SUPERVISOR_H_

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace zt::launch {

struct Child {
  std::string label;                  // "rank 3", "node 1 (host2)": who failed, in messages
  std::string prefix;                 // put before every output line ("[rank3] "); lines that already
                                      // start with "[rank" (a node launcher's) pass unchanged
  std::vector<std::string> argv;      // argv[0]: an absolute path (no PATH search here)
  std::vector<std::string> env;       // the whole environment, "NAME=value"
  std::string cwd;                    // "" keeps the supervisor's
  bool stdin_pipe = false;            // stdin is a pipe held open until the child ends or is to stop:
                                      // stopping closes it instead of signalling (ssh to a node
                                      // launcher), SIGKILL after the grace; otherwise /dev/null
  bool stop_on_failure_line = false;  // a rank-failure line in its output fails the job at once
                                      // (pdsh, which runs every node and stops none)
  std::string log_path;               // also append the child's output, unprefixed, here ("" = no)
};

struct SuperviseOptions {
  absl::Duration grace = absl::Seconds(5);  // SIGTERM -> SIGKILL when stopping children
  bool watch_stdin = false;                 // stdin closing stops everything (node launcher)
  bool watch_output = false;                // so does stdout's reader going away (ssh, pdsh)
  std::string name = "launch";              // how messages begin
};

struct Outcome {
  int exit_code = 0;         // 0; the first failed child's code (128 + signal if killed); else
                             // 128 + the signal that stopped the job
  int failed_child = -1;     // index into children, or -1
  std::string message;       // the closing line (also printed on stderr), empty on success
  std::string failure_line;  // the failed child's own "...: rank N ... failed with" line (a node
                             // launcher's), when it printed one
};

// Starts every child, relays their output, waits for all of them.  A child that cannot start
// (exec fails) counts as failed with code 127.
Outcome Supervise(const std::vector<Child>& children, const SuperviseOptions& options);

// "exit code 7", "signal 9 (Killed)": how a wait status reads in messages.
std::string DescribeWaitStatus(int status);

}  // namespace zt::launch

#endif  // ZEROTRAIN_TOOLS_LAUNCHER_SUPERVISOR_H_
