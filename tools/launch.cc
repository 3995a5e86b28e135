// launch: DeepSpeed's `deepspeed` launcher for zerotrain binaries (and any program).
//
//   bazel run //tools:launch -- --num_gpus 4 //nlp:t5_translate --deepspeed ds_config_zero2.json ...
//   bazel run //tools:launch -- --num_procs 2 //science:molecule_train          (CPU processes)
//   bazel run //tools:launch -- --hostfile hostfile --master_addr host1 //nlp:t5_translate ...
//
// See tools/launcher/plan.h for the flags and the multi-node scheme, supervisor.h for how ranks
// are watched and stopped.  Exit status: 0 when every rank succeeded; the failed rank's exit code
// (128 + signal when killed); 128 + signal when the launcher was stopped; 2 for a usage error.
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <spawn.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "tools/launcher/hostfile.h"
#include "tools/launcher/plan.h"
#include "tools/launcher/supervisor.h"

extern char** environ;

namespace zt::launch {
namespace {

void Note(const std::string& text) { std::cerr << "launch: " << text << std::endl; }

std::vector<std::string> Environ() {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  return env;
}

std::string Getenv(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

// Where the user ran the command: `bazel run` starts us in our runfiles and says where in
// BUILD_WORKING_DIRECTORY.
std::string UserDir() {
  std::string d = Getenv("BUILD_WORKING_DIRECTORY");
  if (!d.empty()) return d;
  char buf[4096];
  return getcwd(buf, sizeof(buf)) != nullptr ? buf : ".";
}

bool IsExecutableFile(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0;
}

std::optional<std::string> FindOnPath(const std::string& name) {
  for (absl::string_view dir : absl::StrSplit(Getenv("PATH"), ':', absl::SkipEmpty())) {
    const std::string p = absl::StrCat(dir, "/", name);
    if (IsExecutableFile(p)) return p;
  }
  return std::nullopt;
}

// The workspace holding the user's directory (for //labels).
absl::StatusOr<std::string> Workspace() {
  std::string ws = Getenv("BUILD_WORKSPACE_DIRECTORY");
  if (!ws.empty()) return ws;
  for (std::string d = UserDir(); !d.empty() && d != "/"; d = d.substr(0, d.rfind('/'))) {
    if (PathExists(d + "/WORKSPACE")) return d;
    if (d.find('/') == std::string::npos) break;
  }
  return absl::FailedPreconditionError(
      absl::StrCat("a //label PROGRAM needs the zerotrain workspace, but no WORKSPACE file is above ", UserDir()));
}

// Runs argv (inheriting our output) in `dir` and returns its exit status.
int RunAndWait(const std::vector<std::string>& argv, const std::string& dir) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (chdir(dir.c_str()) != 0) _exit(127);
    std::vector<char*> a;
    for (const std::string& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    execv(a[0], a.data());
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0) return -1;
  return status;
}

// PROGRAM as an absolute path (a module name stays as it is).
absl::StatusOr<std::string> ResolveProgram(const Options& o) {
  const std::string& p = o.program[0];
  if (absl::StartsWith(p, "//")) {
    ASSIGN_OR_RETURN(std::string ws, Workspace());
    std::string label = p.substr(2), pkg, name;
    if (const auto colon = label.find(':'); colon != std::string::npos) {
      pkg = label.substr(0, colon);
      name = label.substr(colon + 1);
    } else {
      pkg = label;
      name = label.substr(label.rfind('/') + 1);
    }
    if (name.empty() || absl::StrContains(pkg, "..") || absl::StrContains(name, "/")) {
      return absl::InvalidArgumentError(absl::StrCat("PROGRAM '", p, "' is not a Bazel label like //nlp:t5_translate"));
    }
    if (!o.no_build) {
      std::vector<std::string> build;
      if (IsExecutableFile(ws + "/bazelw")) {
        build = {ws + "/bazelw", "build", p};
      } else if (auto bazel = FindOnPath("bazel")) {
        build = {*bazel, "build", p};
      } else {
        return absl::FailedPreconditionError(
            absl::StrCat("cannot build ", p, ": no bazelw in ", ws, " and no bazel on PATH"));
      }
      for (std::string& w : SplitWords(o.build_args)) build.push_back(std::move(w));
      Note(absl::StrCat("building ", p, " (", absl::StrJoin(build, " "), ")"));
      const int status = RunAndWait(build, ws);
      if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        return absl::FailedPreconditionError(
            absl::StrCat("building ", p, " failed (", DescribeWaitStatus(status), ")"));
      }
    }
    const std::string path = absl::StrCat(ws, "/bazel-bin/", pkg, "/", name);
    if (!IsExecutableFile(path)) {
      return absl::NotFoundError(absl::StrCat(p, ": ", path, " is not there; build it first (./bazelw build ", p, ")"));
    }
    return path;
  }
  if (o.module) return p;
  if (absl::StrContains(p, "/") || PathExists(absl::StrCat(UserDir(), "/", p))) {
    const std::string path = p[0] == '/' ? p : absl::StrCat(UserDir(), "/", p);
    if (!IsRegularFile(path)) return absl::NotFoundError(absl::StrCat("PROGRAM ", path, ": no such file"));
    if (!RunsPython(o) && access(path.c_str(), X_OK) != 0) {
      return absl::PermissionDeniedError(absl::StrCat("PROGRAM ", path, " is not executable"));
    }
    return path;
  }
  if (auto found = FindOnPath(p)) return *found;
  return absl::NotFoundError(absl::StrCat("PROGRAM '", p, "' is not a file in ", UserDir(), " nor a command on PATH"));
}

// NVIDIA GPUs this process may use: CUDA_VISIBLE_DEVICES' entries when set, else /dev/nvidiaN.
std::vector<std::string> VisibleGpus(bool* from_env) {
  std::vector<std::string> ids;
  *from_env = std::getenv("CUDA_VISIBLE_DEVICES") != nullptr;
  if (*from_env) {
    for (absl::string_view id : absl::StrSplit(Getenv("CUDA_VISIBLE_DEVICES"), ',', absl::SkipEmpty())) {
      ids.emplace_back(absl::StripAsciiWhitespace(id));
    }
    return ids;
  }
  int n = 0;
  if (DIR* d = opendir("/dev")) {
    while (dirent* e = readdir(d)) {
      absl::string_view name = e->d_name;
      int idx = 0;
      if (absl::ConsumePrefix(&name, "nvidia") && absl::SimpleAtoi(name, &idx)) ++n;
    }
    closedir(d);
  }
  for (int i = 0; i < n; ++i) ids.push_back(absl::StrCat(i));
  return ids;
}

// Rank 0's TCPStore must be able to listen on the port; say so now rather than from rank 0.
absl::Status CheckPortFree(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::OkStatus();
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  const bool taken = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 && errno == EADDRINUSE;
  close(fd);
  if (!taken) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "MASTER_PORT ", port, " is already in use on this machine (another job?): choose another with --master_port"));
}

absl::StatusOr<EnvList> DeepSpeedEnvFile() {
  EnvList out;
  std::vector<std::string> paths;
  if (!Getenv("DS_ENV_FILE").empty()) paths.push_back(Getenv("DS_ENV_FILE"));
  if (!Getenv("HOME").empty()) paths.push_back(Getenv("HOME") + "/.deepspeed_env");
  paths.push_back(UserDir() + "/.deepspeed_env");
  for (const std::string& p : paths) {
    if (!IsRegularFile(p)) continue;
    ASSIGN_OR_RETURN(std::string text, ReadFileToString(p));
    ASSIGN_OR_RETURN(EnvList vars, ParseEnvFile(text, p));
    out.insert(out.end(), vars.begin(), vars.end());
  }
  return out;
}

// The environment of a rank: ours, without what belongs to us or to another launcher, plus
// `set`.
std::vector<std::string> ChildEnv(const EnvList& set) {
  std::map<std::string, std::string> env;
  for (const std::string& kv : Environ()) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos) continue;
    const std::string name = kv.substr(0, eq);
    if (name == "RUNFILES_DIR" || name == "RUNFILES_MANIFEST_FILE" || name == "JAVA_RUNFILES" ||
        absl::StartsWith(name, "TORCHELASTIC_")) {
      continue;
    }
    env[name] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : set) env[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : env) out.push_back(absl::StrCat(k, "=", v));
  return out;
}

std::string Python() {
  std::string p = Getenv("PYTHON");
  if (!p.empty()) return p;
  return FindOnPath("python3").value_or("/usr/bin/python3");
}

// Starts node `node`'s ranks here and supervises them.
// `map_visible`: slots index CUDA_VISIBLE_DEVICES as the user set it (a run on this machine);
// otherwise slots are the hostfile's GPU ids.
int RunNode(const Job& job, int node, const Options& o, const std::string& program, bool map_visible) {
  const bool multi = job.resources.size() > 1;
  const auto& [host, slots] = job.resources[node];
  if (node == 0) {
    if (absl::Status s = CheckPortFree(job.master_port); !s.ok()) {
      Note(absl::StrCat("error: ", s.message()));
      return 1;
    }
  }
  bool visible_from_env = false;
  const std::vector<std::string> visible = VisibleGpus(&visible_from_env);
  Options rank_options = o;
  rank_options.program[0] = program;
  if (!o.each_rank_log.empty()) {
    if (absl::Status s = MakeDirs(o.each_rank_log); !s.ok()) {
      Note(absl::StrCat("error: --enable_each_rank_log: ", s.message()));
      return 1;
    }
  }
  std::vector<Child> children;
  std::string devices = "CPU processes";
  for (int local = 0; local < static_cast<int>(slots.size()); ++local) {
    EnvList set = RankEnv(job, node, local, map_visible && visible_from_env ? visible : std::vector<std::string>{});
    if (!job.cpu) devices = absl::StrCat("CUDA_VISIBLE_DEVICES=", set.back().second);
    if (RunsPython(rank_options)) set.emplace_back("PYTHONUNBUFFERED", "1");
    const std::string rank = set[0].second;
    Child c;
    c.label = multi ? absl::StrCat("rank ", rank, " on ", host) : absl::StrCat("rank ", rank);
    c.prefix = absl::StrCat("[rank", rank, "] ");
    c.argv = RankArgv(rank_options, Python(), local);
    c.env = ChildEnv(set);
    c.cwd = UserDir();
    if (!o.each_rank_log.empty()) c.log_path = absl::StrCat(o.each_rank_log, "/rank_", rank, ".log");
    children.push_back(std::move(c));
  }
  SuperviseOptions so;
  so.grace = absl::Seconds(o.stop_grace_s);
  so.watch_stdin = o.watch_stdin;
  so.watch_output = o.watch_output;
  if (multi) so.name = absl::StrCat("launch (", host, ")");
  Note(absl::StrCat(multi ? absl::StrCat("node ", node, " (", host, "): ") : "", slots.size(), " rank(s), ", devices,
                    ", world size ", TotalSlots(job.resources), ", MASTER_ADDR=", job.master_addr,
                    " MASTER_PORT=", job.master_port));
  return Supervise(children, so).exit_code;
}

// Starts every node's launcher (ssh, pdsh) or every rank (srun, mpirun) from here.
int RunMulti(const Job& job, const Options& o, const std::string& program) {
  auto ds_env = DeepSpeedEnvFile();
  if (!ds_env.ok()) {
    Note(absl::StrCat("error: ", ds_env.status().message()));
    return 2;
  }
  const EnvList exports = ForwardedEnv(Environ(), *ds_env);
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  const std::string launcher_path = n > 0 ? std::string(self, static_cast<size_t>(n)) : "launch";
  Options remote = o;
  remote.program[0] = program;
  const std::string tool_name = o.launcher == "slurm" ? "srun" : o.launcher;
  const std::optional<std::string> tool = FindOnPath(tool_name);
  if (!tool) {
    Note(absl::StrCat("error: --launcher ", o.launcher, " needs ", tool_name, " on PATH, and there is none"));
    return 2;
  }
  std::vector<Child> children;
  if (o.launcher == "ssh") {
    for (int k = 0; k < static_cast<int>(job.resources.size()); ++k) {
      const std::string& host = job.resources[k].first;
      Child c;
      c.label = absl::StrCat("node ", k, " (", host, ")");
      c.prefix = absl::StrCat("[", host, "] ");
      c.argv =
          SshArgv(*tool, o, host, NodeCommand(job, remote, launcher_path, UserDir(), exports, absl::StrCat(k), true));
      c.env = ChildEnv({});
      c.stdin_pipe = true;  // its end tells the node launcher we are gone
      children.push_back(std::move(c));
    }
  } else {
    Child c;
    c.label = o.launcher;
    c.prefix = absl::StrCat("[", tool_name, "] ");
    c.stop_on_failure_line = o.launcher == "pdsh";  // pdsh would let the other nodes run on
    c.env = ChildEnv(
        {{"PDSH_RCMD_TYPE", "ssh"}, {"MASTER_ADDR", job.master_addr}, {"MASTER_PORT", absl::StrCat(job.master_port)}});
    absl::StatusOr<std::vector<std::string>> argv;
    if (o.launcher == "pdsh") {
      argv = PdshArgv(*tool, o, job, NodeCommand(job, remote, launcher_path, UserDir(), exports, "%n", false));
    } else if (o.launcher == "slurm") {
      argv = SrunArgv(*tool, o, job, RankArgv(remote, Python(), -1));
    } else {
      argv = MpirunArgv(*tool, o, job, exports, RankArgv(remote, Python(), -1));
    }
    if (!argv.ok()) {
      Note(absl::StrCat("error: ", argv.status().message()));
      return 2;
    }
    c.argv = *std::move(argv);
    c.cwd = UserDir();
    children.push_back(std::move(c));
  }
  std::vector<std::string> layout;
  for (const auto& [host, slots] : job.resources) layout.push_back(absl::StrCat(host, " x", slots.size()));
  Note(absl::StrCat(TotalSlots(job.resources), " ranks on ", job.resources.size(), " hosts (",
                    absl::StrJoin(layout, ", "), ") through ", o.launcher, ", MASTER_ADDR=", job.master_addr,
                    " MASTER_PORT=", job.master_port));
  SuperviseOptions so;
  so.grace = absl::Seconds(o.stop_grace_s + 10);  // node launchers stop their ranks first
  const Outcome out = Supervise(children, so);
  if (out.exit_code == 255 && o.launcher == "ssh" && out.failure_line.empty()) {
    Note(
        "ssh exits with 255 when it cannot reach or log in to a host: check that `ssh HOST true` works without a "
        "password from here");
  }
  return out.exit_code;
}

int Main(int argc, char** argv) {
  if (argc == 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h")) {
    std::cout << kUsage;
    return 0;
  }
  auto parsed = ParseArgs(std::vector<std::string>(argv + 1, argv + argc));
  if (!parsed.ok()) {
    std::cerr << "launch: error: " << parsed.status().message() << " (launch --help lists the options)\n";
    return 2;
  }
  Options o = *std::move(parsed);
  auto fail = [](const absl::Status& s) {
    Note(absl::StrCat("error: ", s.message()));
    return 2;
  };

  Job job;
  job.master_port = o.master_port;
  if (!o.world_info.empty()) {  // a node launcher started by the first machine's launcher
    auto resources = DecodeResources(o.world_info);
    if (!resources.ok()) return fail(resources.status());
    if (o.node_rank < 0 || o.node_rank >= static_cast<int>(resources->size())) {
      return fail(absl::InvalidArgumentError("--world_info needs a --node_rank among its hosts"));
    }
    job.resources = *std::move(resources);
    job.master_addr = o.master_addr;
    job.cpu = o.cpu;
    auto program = ResolveProgram(o);
    if (!program.ok()) return fail(program.status());
    return RunNode(job, o.node_rank, o, *program, /*map_visible=*/false);
  }

  std::vector<HostSlots> hosts;
  std::string where = "this machine";
  job.cpu = o.num_procs > 0 || o.cpu;
  if (!o.hostfile.empty()) {
    const std::string path = UserPath(o.hostfile);
    auto text = ReadFileToString(path);
    if (!text.ok()) return fail(text.status());
    auto parsed_hosts = ParseHostfile(*text, o.hostfile);
    if (!parsed_hosts.ok()) return fail(parsed_hosts.status());
    hosts = *std::move(parsed_hosts);
    where = o.hostfile;
    if (o.num_procs > 0) {
      return fail(
          absl::InvalidArgumentError("--num_procs is for this machine; a hostfile's slots= says how many "
                                     "processes each host runs (add --cpu for CPU processes)"));
    }
  } else {
    int slots = o.num_procs;
    if (slots <= 0) {
      bool from_env = false;
      slots = static_cast<int>(VisibleGpus(&from_env).size());
      if (slots == 0) {
        if (o.selection.num_gpus > 0) {
          return fail(absl::FailedPreconditionError(
              absl::StrCat("--num_gpus ", o.selection.num_gpus, " but this machine has no NVIDIA GPU",
                           from_env ? " (CUDA_VISIBLE_DEVICES is empty)" : " (no /dev/nvidia0)",
                           ": use --num_procs N to run N CPU processes")));
        }
        Note("no NVIDIA GPU on this machine: one CPU process (--num_procs N for more)");
        slots = 1;
        job.cpu = true;
      }
    }
    hosts.push_back({"localhost", slots, 0});
  }
  auto resources = SelectResources(hosts, o.selection, where);
  if (!resources.ok()) return fail(resources.status());
  job.resources = *std::move(resources);

  const bool multi = (job.resources.size() > 1 || o.force_multi) && !o.no_ssh;
  job.master_addr = !o.master_addr.empty() ? o.master_addr : multi || o.no_ssh ? job.resources[0].first : "127.0.0.1";
  if (multi && !o.master_addr.empty() && o.master_addr != job.resources[0].first) {
    Note(absl::StrCat("rank 0 runs on ", job.resources[0].first, " (the first host): --master_addr ", o.master_addr,
                      " must be an address of that host"));
  }
  auto program = ResolveProgram(o);
  if (!program.ok()) return fail(program.status());
  if (o.no_ssh) {
    if (o.node_rank >= static_cast<int>(job.resources.size())) {
      return fail(absl::InvalidArgumentError(
          absl::StrCat("--node_rank ", o.node_rank, " but ", where, " gives ", job.resources.size(), " host(s)")));
    }
    return RunNode(job, o.node_rank, o, *program, /*map_visible=*/o.hostfile.empty());
  }
  if (multi) return RunMulti(job, o, *program);
  return RunNode(job, 0, o, *program, /*map_visible=*/o.hostfile.empty());
}

}  // namespace
}  // namespace zt::launch

int main(int argc, char** argv) { return zt::launch::Main(argc, argv); }
