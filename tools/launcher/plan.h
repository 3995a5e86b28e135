// The launcher's decisions as pure functions, so they can be tested without starting anything:
// its command line (DeepSpeed's runner flags), each rank's environment, and the command lines
// that start a node's ranks over ssh, pdsh, srun or mpirun.
//
// A multi-node job runs this launcher again on every node (over ssh or pdsh) with
// --node_rank=K --world_info=host1:0,1@host2:0,1: that node launcher starts node K's ranks and
// supervises them.  Every word of that remote command line is single-quoted (ShellQuote), and
// host names are checked (hostfile.h), so no host name or program argument reaches a shell
// unquoted.
#ifndef ZEROTRAIN_TOOLS_LAUNCHER_PLAN_H_
#define ZEROTRAIN_TOOLS_LAUNCHER_PLAN_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tools/launcher/hostfile.h"

namespace zt::launch {

using EnvList = std::vector<std::pair<std::string, std::string>>;

struct Options {
  // DeepSpeed's runner flags.
  std::string hostfile;          // -H/--hostfile; "" = this machine only
  Selection selection;           // --include/--exclude/--num_nodes/--num_gpus
  int num_procs = -1;            // --num_procs: CPU processes per node (no GPUs)
  std::string master_addr;       // "" = the first host (127.0.0.1 on one machine)
  int master_port = 29500;       // --master_port
  std::string launcher = "ssh";  // ssh | pdsh | slurm | mpirun
  std::string launcher_args;     // --launcher_args: extra words for ssh/pdsh/srun/mpirun
  int ssh_port = -1;             // --ssh_port
  bool module = false;           // --module: PROGRAM is a Python module (python -m)
  bool no_python = false;        // --no_python: run a .py PROGRAM directly
  bool no_local_rank = false;    // --no_local_rank: no --local_rank=N for Python programs
  bool force_multi = false;      // --force_multi: go through ssh/pdsh even for one host
  bool no_ssh = false;           // --no_ssh: start only --node_rank's ranks, here
  std::string each_rank_log;     // --enable_each_rank_log DIR: DIR/rank_N.log too
  int node_rank = -1;            // --node_rank (with --no_ssh, or from a launcher)
  bool no_build = false;         // --no_build: a //label PROGRAM is not built first
  std::string build_args;        // --build_args: more words for `bazelw build` ("-c opt")
  double stop_grace_s = 5;       // --stop_grace: seconds between SIGTERM and SIGKILL
  // Set by the launcher on the first machine for node launchers.
  std::string world_info;            // --world_info host:slots@...
  bool watch_stdin = false;          // --watch_stdin: stop when stdin closes (under ssh)
  bool watch_output = false;         // --watch_output: stop when stdout's reader goes (ssh, pdsh)
  bool cpu = false;                  // --cpu: ranks get no CUDA_VISIBLE_DEVICES
  std::vector<std::string> program;  // PROGRAM ARGS...
};

// Parses the launcher's own flags up to PROGRAM (or `--`); what follows is PROGRAM's.  Flags
// take `--flag=value` or `--flag value`.  Unknown flags are errors naming the closest one;
// DeepSpeed flags this launcher does not implement (elastic training, autotuning, core binding)
// are errors that say so.
absl::StatusOr<Options> ParseArgs(const std::vector<std::string>& args);
extern const char kUsage[];

// The job's layout: which hosts run which slots, and where rank 0 listens.
struct Job {
  Resources resources;
  std::string master_addr;
  int master_port = 29500;
  bool cpu = false;  // slots are process indices, not GPU ids
};

// What rank `local` of node `node` gets on top of the inherited environment: RANK, LOCAL_RANK,
// WORLD_SIZE, LOCAL_WORLD_SIZE, NODE_RANK, MASTER_ADDR, MASTER_PORT, and CUDA_VISIBLE_DEVICES
// (the node's slots) unless the job is on CPUs.  `visible` (CUDA_VISIBLE_DEVICES as the user set
// it, split at commas) maps slot i to visible[i] when not empty.
EnvList RankEnv(const Job& job, int node, int local, const std::vector<std::string>& visible);

// The rank's command line: PROGRAM ARGS, or for a Python script `python -u SCRIPT ARGS
// --local_rank=N` as DeepSpeed's launcher runs it (python -u -m for --module; --no_python runs
// the script itself; --no_local_rank leaves --local_rank out).  `python` is the interpreter.
std::vector<std::string> RankArgv(const Options& options, const std::string& python, int local_rank);
// Whether PROGRAM runs through Python (a .py file, or --module), given the options.
bool RunsPython(const Options& options);

// --launcher_args / --build_args as words: whitespace separates, '...' and "..." group.
std::vector<std::string> SplitWords(absl::string_view text);

// 'text' for a POSIX shell: single quotes, with ' written as '\''.
std::string ShellQuote(absl::string_view text);

// Variables a node launcher gets from the first machine: NCCL_*, GLOO_*, ZT_*, PYTHON*, UCX_*,
// OMP_*, TORCH_*, HF_*, CUDA_* (not CUDA_VISIBLE_DEVICES), LD_LIBRARY_PATH, LIBTORCH and
// BUILD_WORK*_DIRECTORY, from `environ`-style "NAME=value" strings; then `extra` (.deepspeed_env).
EnvList ForwardedEnv(const std::vector<std::string>& environ, const EnvList& extra);

// DeepSpeed's .deepspeed_env: NAME=VALUE lines (blank lines and # comments skipped).  Errors
// name the file and line.
absl::StatusOr<EnvList> ParseEnvFile(absl::string_view text, const std::string& path);

// The shell command that runs node `node_rank_text`'s launcher ("3", or pdsh's "%n"), which
// stops its ranks when its output's reader goes away, and with `watch_stdin` (ssh, where the
// first machine's launcher holds ssh's input open) when its input closes:
//   cd 'CWD' && export 'NAME=value' && ... && exec 'LAUNCHER' --node_rank=3 --world_info=... -- 'PROGRAM' 'ARG'...
std::string NodeCommand(const Job& job, const Options& options, const std::string& launcher_path,
                        const std::string& cwd, const EnvList& exports, const std::string& node_rank_text,
                        bool watch_stdin);

// argv of the process that starts node `node` (ssh), or all nodes at once (pdsh, srun,
// mpirun).  `tool` is the resolved path of ssh/pdsh/srun/mpirun; `program_argv` is RankArgv's
// without --local_rank (srun and mpirun start the ranks themselves).
std::vector<std::string> SshArgv(const std::string& tool, const Options& options, const std::string& host,
                                 const std::string& command);
std::vector<std::string> PdshArgv(const std::string& tool, const Options& options, const Job& job,
                                  const std::string& command);
absl::StatusOr<std::vector<std::string>> SrunArgv(const std::string& tool, const Options& options, const Job& job,
                                                  const std::vector<std::string>& program_argv);
absl::StatusOr<std::vector<std::string>> MpirunArgv(const std::string& tool, const Options& options, const Job& job,
                                                    const EnvList& exports,
                                                    const std::vector<std::string>& program_argv);

}  // namespace zt::launch

#endif  // ZEROTRAIN_TOOLS_LAUNCHER_PLAN_H_
