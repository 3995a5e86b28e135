#include "tools/launcher/supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace zt::launch {
namespace {

// Signals reach the poll loop through this pipe (the self-pipe pattern).
int g_signal_pipe[2] = {-1, -1};

void OnSignal(int sig) {
  const int saved = errno;
  const unsigned char b = static_cast<unsigned char>(sig);
  [[maybe_unused]] ssize_t n = write(g_signal_pipe[1], &b, 1);
  errno = saved;
}

void WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // a closed terminal or pipe: the job goes on without its output
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
}

void Say(const SuperviseOptions& o, const std::string& text) {
  const std::string line = absl::StrCat(o.name, ": ", text, "\n");
  WriteAll(STDERR_FILENO, line.data(), line.size());
}

// One output stream of a child: bytes in, prefixed whole lines out.
struct Stream {
  int fd = -1;
  int out_fd = STDOUT_FILENO;
  std::string pending;
};

struct Running {
  pid_t pid = -1;
  bool done = false;
  int status = 0;
  int stdin_write = -1;
  int log_fd = -1;
  Stream streams[2];
  std::string last_failure_line;  // a node launcher's "launch: rank N ..." line
  bool failure_seen = false;      // such a line arrived (for stop_on_failure_line)
};

void EmitLine(const Child& c, Running& r, const SuperviseOptions& o, int out_fd, const std::string& line) {
  if (r.log_fd >= 0) {
    WriteAll(r.log_fd, line.data(), line.size());
    WriteAll(r.log_fd, "\n", 1);
  }
  if (absl::StrContains(line, ": rank ") &&
      (absl::StrContains(line, "failed with") || absl::StrContains(line, "killed by"))) {
    r.last_failure_line = line;
    r.failure_seen = true;
  }
  const bool pass = c.prefix.empty() || absl::StartsWith(line, "[rank");
  std::string out = pass ? line : absl::StrCat(c.prefix, line);
  out.push_back('\n');
  WriteAll(out_fd, out.data(), out.size());
}

// Reads what is there and passes on whole lines; closes the stream at its end.
void Pump(const Child& c, Running& r, Stream& s, const SuperviseOptions& o) {
  char buf[65536];
  const ssize_t n = read(s.fd, buf, sizeof(buf));
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) {
    if (!s.pending.empty()) EmitLine(c, r, o, s.out_fd, s.pending);
    s.pending.clear();
    close(s.fd);
    s.fd = -1;
    return;
  }
  s.pending.append(buf, static_cast<size_t>(n));
  size_t start = 0;
  for (size_t nl; (nl = s.pending.find('\n', start)) != std::string::npos; start = nl + 1) {
    EmitLine(c, r, o, s.out_fd, s.pending.substr(start, nl - start));
  }
  s.pending.erase(0, start);
  if (s.pending.size() > (1 << 20)) {  // a megabyte without a newline: pass it on as it is
    EmitLine(c, r, o, s.out_fd, s.pending);
    s.pending.clear();
  }
}

// The code a "... failed with exit code 9" / "... was killed by signal 9 (...)" line gives.
int CodeInLine(const std::string& line) {
  int n = 0;
  for (const auto& [key, offset] : {std::pair<const char*, int>{"exit code ", 0}, {"signal ", 128}}) {
    const size_t at = line.rfind(key);
    if (at != std::string::npos && std::sscanf(line.c_str() + at + strlen(key), "%d", &n) == 1 && n > 0) {
      return n + offset;
    }
  }
  return -1;
}

const char* SignalName(int sig) {
  const char* d = strsignal(sig);
  return d != nullptr ? d : "unknown signal";
}

// Child side of fork: only async-signal-safe calls until exec.
[[noreturn]] void ExecChild(const Child& c, char* const* argv, char* const* envp, int in_fd, int out_fd, int err_fd,
                            pid_t parent) {
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);  // the supervisor is already gone
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD}) signal(sig, SIG_DFL);
  dup2(in_fd, STDIN_FILENO);
  dup2(out_fd, STDOUT_FILENO);
  dup2(err_fd, STDERR_FILENO);
  if (!c.cwd.empty() && chdir(c.cwd.c_str()) != 0) {
    const char* e = strerror(errno);
    dprintf(STDERR_FILENO, "launch: cannot enter %s: %s\n", c.cwd.c_str(), e);
    _exit(127);
  }
  execve(argv[0], argv, envp);
  const char* e = strerror(errno);
  dprintf(STDERR_FILENO, "launch: cannot run %s: %s\n", argv[0], e);
  _exit(127);
}

std::vector<char*> CStrings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  for (const std::string& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

void SignalGroup(const Running& r, int sig) {
  if (r.pid > 0 && !r.done) kill(-r.pid, sig);
}

}  // namespace

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("signal ", WTERMSIG(status), " (", SignalName(WTERMSIG(status)), ")");
  return absl::StrCat("wait status ", status);
}

Outcome Supervise(const std::vector<Child>& children, const SuperviseOptions& options) {
  Outcome outcome;
  if (pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    outcome.exit_code = 1;
    outcome.message = absl::StrCat("cannot make a pipe: ", strerror(errno));
    Say(options, outcome.message);
    return outcome;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = OnSignal;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGCHLD, SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const int dev_null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  std::vector<Running> run(children.size());
  const pid_t self = getpid();
  for (size_t i = 0; i < children.size(); ++i) {
    const Child& c = children[i];
    Running& r = run[i];
    int out[2], err[2], in[2] = {dev_null, -1};
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0 || (c.stdin_pipe && pipe2(in, O_CLOEXEC) != 0)) {
      r.done = true;
      r.status = 127 << 8;
      Say(options, absl::StrCat("cannot make pipes for ", c.label, ": ", strerror(errno)));
      continue;
    }
    if (!c.log_path.empty()) {
      r.log_fd = open(c.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (r.log_fd < 0) Say(options, absl::StrCat("cannot write ", c.log_path, ": ", strerror(errno)));
    }
    std::vector<char*> argv = CStrings(c.argv);
    std::vector<char*> envp = CStrings(c.env);
    const pid_t pid = fork();
    if (pid == 0) ExecChild(c, argv.data(), envp.data(), in[0], out[1], err[1], self);
    close(out[1]);
    close(err[1]);
    if (c.stdin_pipe) {
      close(in[0]);
      r.stdin_write = in[1];
    }
    if (pid < 0) {
      r.done = true;
      r.status = 127 << 8;
      Say(options, absl::StrCat("cannot start ", c.label, ": ", strerror(errno)));
      close(out[0]);
      close(err[0]);
      continue;
    }
    setpgid(pid, pid);  // also here: signals sent right away must reach the group
    r.pid = pid;
    r.streams[0] = {out[0], STDOUT_FILENO, ""};
    r.streams[1] = {err[0], STDERR_FILENO, ""};
  }
  if (dev_null >= 0) close(dev_null);

  bool stopping = false;
  int failure_code = -1;  // from a failure line (stop_on_failure_line), else the child's own
  int stop_signal = 0;    // a signal we got, which stops the job
  absl::Time kill_at = absl::InfiniteFuture();
  absl::Time drain_until = absl::InfiniteFuture();  // after the last exit: output still in flight
  bool stdin_open = options.watch_stdin;
  bool output_open = options.watch_output;

  auto running_count = [&] {
    int n = 0;
    for (const Running& r : run) n += r.done ? 0 : 1;
    return n;
  };
  auto stop_all = [&](int sig, const std::string& why) {
    const int left = running_count();
    if (left > 0) {
      Say(options,
          absl::StrCat(why, "; stopping ", left == 1 ? "the other process" : "the other processes", " (", left, ")"));
    } else {
      Say(options, why);
    }
    stopping = true;
    for (Running& r : run) {
      if (r.stdin_write >= 0) {
        // An ssh to a node launcher: closing its input ends the session; the node launcher
        // stops its ranks and reports, and ssh then exits by itself.  Signals to ssh would
        // cut that short (it forwards none without a terminal).
        close(r.stdin_write);
        r.stdin_write = -1;
      } else {
        SignalGroup(r, sig);
      }
    }
    kill_at = absl::Now() + options.grace;
  };
  // Children that failed before the loop (could not start).
  for (size_t i = 0; i < run.size(); ++i) {
    if (run[i].done && outcome.failed_child < 0) {
      outcome.failed_child = static_cast<int>(i);
      stop_all(SIGTERM, absl::StrCat(children[i].label, " could not start"));
    }
  }

  while (true) {
    std::vector<pollfd> fds;
    std::vector<std::pair<int, int>> owner;  // (child, stream) per fds entry; child -1: signal/stdin
    fds.push_back({g_signal_pipe[0], POLLIN, 0});
    owner.push_back({-1, 0});
    if (stdin_open) {
      fds.push_back({STDIN_FILENO, POLLIN, 0});
      owner.push_back({-1, 1});
    }
    if (output_open) {  // no events asked: poll still reports the reader's end going away
      fds.push_back({STDOUT_FILENO, 0, 0});
      owner.push_back({-1, 2});
    }
    bool any_stream = false;
    for (size_t i = 0; i < run.size(); ++i) {
      for (int s = 0; s < 2; ++s) {
        if (run[i].streams[s].fd < 0) continue;
        fds.push_back({run[i].streams[s].fd, POLLIN, 0});
        owner.push_back({static_cast<int>(i), s});
        any_stream = true;
      }
    }
    const int left = running_count();
    if (left == 0 && (!any_stream || absl::Now() >= drain_until)) break;

    absl::Time wake = std::min(kill_at, drain_until);
    int timeout_ms = 1000;
    if (wake != absl::InfiniteFuture()) {
      timeout_ms = static_cast<int>(std::max<int64_t>(0, absl::ToInt64Milliseconds(wake - absl::Now()) + 1));
      timeout_ms = std::min(timeout_ms, 1000);
    }
    const int ready = poll(fds.data(), fds.size(), timeout_ms);
    if (ready < 0 && errno != EINTR) {
      Say(options, absl::StrCat("poll failed: ", strerror(errno)));
      stop_all(SIGKILL, "internal error");
    }

    for (size_t k = 0; ready > 0 && k < fds.size(); ++k) {
      if (fds[k].revents == 0) continue;
      const auto [ci, si] = owner[k];
      if (ci >= 0) {
        Pump(children[ci], run[ci], run[ci].streams[si], options);
        continue;
      }
      if (si == 2) {  // our stdout's reader is gone (ssh/pdsh session closed)
        output_open = false;
        if ((fds[k].revents & (POLLERR | POLLHUP)) != 0 && !stopping) {
          stop_signal = SIGTERM;
          stop_all(SIGTERM, "standard output closed (the launcher that started this node is gone)");
        }
        continue;
      }
      if (si == 1) {  // our stdin
        char buf[4096];
        const ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
          stdin_open = false;
          if (!stopping) {
            stop_signal = SIGTERM;
            stop_all(SIGTERM, "standard input closed (the launcher that started this node is gone)");
          }
        }
        continue;
      }
      unsigned char sigs[64];
      const ssize_t n = read(g_signal_pipe[0], sigs, sizeof(sigs));
      for (ssize_t j = 0; j < n; ++j) {
        const int sig = sigs[j];
        if (sig == SIGCHLD) continue;  // reaped below
        if (!stopping) {
          stop_signal = sig;
          stop_all(sig, absl::StrCat("got ",
                                     sig == SIGINT    ? "SIGINT"
                                     : sig == SIGTERM ? "SIGTERM"
                                                      : "SIGHUP",
                                     ", passing it on"));
        } else if (sig == SIGINT || sig == SIGTERM) {
          Say(options, "second signal: killing every process now");
          for (const Running& r : run) SignalGroup(r, SIGKILL);
        }
      }
    }

    // A child that runs many nodes' ranks (pdsh) passed on a rank's failure: stop it all.
    for (size_t i = 0; i < run.size(); ++i) {
      Running& r = run[i];
      if (!r.failure_seen || !children[i].stop_on_failure_line || stopping || r.done) continue;
      r.failure_seen = false;
      outcome.failed_child = static_cast<int>(i);
      failure_code = CodeInLine(r.last_failure_line);
      stop_all(SIGTERM, absl::StrCat(children[i].label, " passed on a rank's failure"));
    }

    // Reap (SIGCHLD only woke the loop).
    for (size_t i = 0; i < run.size(); ++i) {
      Running& r = run[i];
      if (r.done || r.pid <= 0) continue;
      int status = 0;
      const pid_t got = waitpid(r.pid, &status, WNOHANG);
      if (got != r.pid) continue;
      r.done = true;
      r.status = status;
      kill(-r.pid, SIGKILL);  // whatever the child left in its group
      if (r.stdin_write >= 0) close(r.stdin_write), r.stdin_write = -1;
      const bool failed = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
      if (failed && !stopping) {
        outcome.failed_child = static_cast<int>(i);
        std::string why =
            absl::StrCat(children[i].label, " (pid ", r.pid, ") ",
                         WIFSIGNALED(status) ? "was killed by " : "failed with ", DescribeWaitStatus(status));
        stop_all(SIGTERM, why);
      }
      if (running_count() == 0) drain_until = absl::Now() + absl::Seconds(1);
    }

    if (stopping && absl::Now() >= kill_at) {
      for (const Running& r : run) {
        if (!r.done) Say(options, absl::StrCat("pid ", r.pid, " did not stop in time: SIGKILL"));
        SignalGroup(r, SIGKILL);
      }
      kill_at = absl::InfiniteFuture();
    }
  }
  for (Running& r : run) {
    for (Stream& s : r.streams) {
      if (s.fd >= 0) close(s.fd);
    }
    if (r.stdin_write >= 0) close(r.stdin_write);
    if (r.log_fd >= 0) close(r.log_fd);
  }
  close(g_signal_pipe[0]);
  close(g_signal_pipe[1]);
  g_signal_pipe[0] = g_signal_pipe[1] = -1;

  if (outcome.failed_child >= 0) {
    const Running& r = run[outcome.failed_child];
    const int status = r.status;
    outcome.exit_code = failure_code > 0    ? failure_code
                        : WIFEXITED(status) ? WEXITSTATUS(status)
                                            : 128 + WTERMSIG(status);
    if (outcome.exit_code == 0) outcome.exit_code = 1;
    outcome.message = absl::StrCat(children[outcome.failed_child].label, " failed (", DescribeWaitStatus(status),
                                   "): every process is stopped; exit code ", outcome.exit_code);
    outcome.failure_line = r.last_failure_line;
    if (!r.last_failure_line.empty()) absl::StrAppend(&outcome.message, " [", r.last_failure_line, "]");
  } else if (stop_signal != 0) {
    outcome.exit_code = 128 + stop_signal;
    outcome.message = absl::StrCat("stopped by signal ", stop_signal, " (", SignalName(stop_signal),
                                   "): every process is stopped; exit code ", outcome.exit_code);
  }
  if (!outcome.message.empty()) Say(options, outcome.message);
  return outcome;
}

}  // namespace zt::launch
