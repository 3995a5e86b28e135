#include "tools/launcher/plan.h"

#include <algorithm>
#include <functional>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/util/spelling.h"
#include "core/util/status_macros.h"

namespace zt::launch {

const char kUsage[] =
    "usage: launch [options] PROGRAM [ARGS...]\n"
    "\n"
    "Starts PROGRAM once per GPU (or per --num_procs on CPU), on this machine or on the hosts of a\n"
    "hostfile, with RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT set.\n"
    "PROGRAM is a path, a Bazel label (//nlp:t5_translate: built first, then run from bazel-bin),\n"
    "a Python script (run as python -u SCRIPT --local_rank=N, as DeepSpeed does) or a command on PATH.\n"
    "\n"
    "  --num_gpus N            GPUs per node (default: all; with a hostfile, the first N slots)\n"
    "  --num_procs N           CPU processes on this machine, no GPUs\n"
    "  --cpu                   the hostfile's slots are CPU processes (no CUDA_VISIBLE_DEVICES)\n"
    "  --num_nodes N           the first N hosts of the hostfile\n"
    "  -H, --hostfile FILE     DeepSpeed hostfile: 'HOSTNAME slots=N' lines\n"
    "  -i, --include SPEC      only these hosts/slots: host1:0,1@host2\n"
    "  -e, --exclude SPEC      all but these hosts/slots\n"
    "  --master_addr ADDR      where rank 0 listens (default: the first host; 127.0.0.1 on one machine)\n"
    "  --master_port PORT      default 29500\n"
    "  --launcher NAME         ssh (default), pdsh, slurm (srun) or mpirun (Open MPI) for several hosts\n"
    "  --launcher_args ARGS    extra words for ssh/pdsh/srun/mpirun, e.g. \"-F ssh_config\"\n"
    "  --ssh_port PORT         ssh's port on every host\n"
    "  --force_multi           go through the launcher even for one host\n"
    "  --no_ssh --node_rank K  start node K's ranks here (run once on every node, by hand or a scheduler)\n"
    "  --module                PROGRAM is a Python module (python -u -m PROGRAM)\n"
    "  --no_python             run a .py PROGRAM directly, not through python\n"
    "  --no_local_rank         do not pass --local_rank=N to a Python PROGRAM\n"
    "  --enable_each_rank_log DIR   also write each rank's output to DIR/rank_N.log\n"
    "  --stop_grace SECONDS    SIGTERM to SIGKILL when stopping ranks (default 5)\n"
    "  --no_build              do not build a //label PROGRAM first\n"
    "  --build_args ARGS       more words for that build, e.g. \"-c opt\"\n"
    "\n"
    "Output lines are prefixed with [rankN].  When a rank fails, the others are stopped and the launcher\n"
    "exits with that rank's exit code, naming it.  SIGINT/SIGTERM are passed on to every rank.\n";

namespace {

struct Flag {
  std::vector<std::string> names;  // the first is the canonical name
  bool takes_value;
  std::function<absl::Status(Options&, const std::string& name, const std::string& value)> set;
};

absl::Status ParseIntFlag(const std::string& name, const std::string& value, int min, int max, int* out) {
  if (!absl::SimpleAtoi(value, out) || *out < min || *out > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " '", value, "': want a whole number from ", min, " to ", max));
  }
  return absl::OkStatus();
}

std::function<absl::Status(Options&, const std::string&, const std::string&)> Int(int Options::*field, int min,
                                                                                  int max) {
  return
      [=](Options& o, const std::string& n, const std::string& v) { return ParseIntFlag(n, v, min, max, &(o.*field)); };
}
std::function<absl::Status(Options&, const std::string&, const std::string&)> Str(std::string Options::*field) {
  return [=](Options& o, const std::string&, const std::string& v) {
    o.*field = v;
    return absl::OkStatus();
  };
}
std::function<absl::Status(Options&, const std::string&, const std::string&)> Bool(bool Options::*field) {
  return [=](Options& o, const std::string&, const std::string&) {
    o.*field = true;
    return absl::OkStatus();
  };
}
std::function<absl::Status(Options&, const std::string&, const std::string&)> Unsupported(const std::string& why) {
  return [=](Options&, const std::string& n, const std::string&) {
    return absl::UnimplementedError(absl::StrCat(n, ": ", why));
  };
}

const std::vector<Flag>& Flags() {
  static const std::vector<Flag>* flags = new std::vector<Flag>{
      {{"--hostfile", "-H"}, true, Str(&Options::hostfile)},
      {{"--include", "-i"},
       true,
       [](Options& o, const std::string&, const std::string& v) {
         o.selection.include = v;
         return absl::OkStatus();
       }},
      {{"--exclude", "-e"},
       true,
       [](Options& o, const std::string&, const std::string& v) {
         o.selection.exclude = v;
         return absl::OkStatus();
       }},
      {{"--num_nodes"},
       true,
       [](Options& o, const std::string& n, const std::string& v) {
         return ParseIntFlag(n, v, 1, 1 << 20, &o.selection.num_nodes);
       }},
      {{"--num_gpus", "--num_accelerators"},
       true,
       [](Options& o, const std::string& n, const std::string& v) {
         return ParseIntFlag(n, v, 1, 1 << 16, &o.selection.num_gpus);
       }},
      {{"--num_procs"}, true, Int(&Options::num_procs, 1, 1 << 16)},
      {{"--master_addr"}, true, Str(&Options::master_addr)},
      {{"--master_port"}, true, Int(&Options::master_port, 1, 65535)},
      {{"--launcher"},
       true,
       [](Options& o, const std::string& n, const std::string& v) -> absl::Status {
         const std::string l = absl::AsciiStrToLower(v);
         if (l == "ssh" || l == "pdsh" || l == "slurm" || l == "mpirun") {
           o.launcher = l;
         } else if (l == "openmpi") {
           o.launcher = "mpirun";
         } else {
           return absl::InvalidArgumentError(
               absl::StrCat(n, " '", v, "': this launcher knows ssh, pdsh, slurm and mpirun (Open MPI)"));
         }
         return absl::OkStatus();
       }},
      {{"--launcher_args"}, true, Str(&Options::launcher_args)},
      {{"--ssh_port"}, true, Int(&Options::ssh_port, 1, 65535)},
      {{"--module", "-m"}, false, Bool(&Options::module)},
      {{"--no_python"}, false, Bool(&Options::no_python)},
      {{"--no_local_rank"}, false, Bool(&Options::no_local_rank)},
      {{"--force_multi"}, false, Bool(&Options::force_multi)},
      {{"--no_ssh"}, false, Bool(&Options::no_ssh)},
      {{"--no_ssh_check"}, false, [](Options&, const std::string&, const std::string&) { return absl::OkStatus(); }},
      {{"--enable_each_rank_log"}, true, Str(&Options::each_rank_log)},
      {{"--node_rank"}, true, Int(&Options::node_rank, 0, 1 << 20)},
      {{"--no_build"}, false, Bool(&Options::no_build)},
      {{"--build_args"}, true, Str(&Options::build_args)},
      {{"--stop_grace"},
       true,
       [](Options& o, const std::string& n,
          const std::string& v) -> absl::
                                    Status {
                                      if (!absl::SimpleAtod(v, &o.stop_grace_s) || !(o.stop_grace_s >= 0) ||
                                          o.stop_grace_s > 3600) {
                                        return absl::InvalidArgumentError(
                                            absl::StrCat(n, " '", v, "': want seconds from 0 to 3600"));
                                      }
                                      return absl::OkStatus();
                                    }},
      {{"--world_info"}, true, Str(&Options::world_info)},
      {{"--watch_stdin"}, false, Bool(&Options::watch_stdin)},
      {{"--watch_output"}, false, Bool(&Options::watch_output)},
      {{"--cpu"}, false, Bool(&Options::cpu)},
      {{"--min_elastic_nodes", "--max_elastic_nodes", "--elastic_training"},
       true,
       Unsupported("elastic training is not supported by this launcher")},
      {{"--autotuning"}, true, Unsupported("autotuning is not supported by this launcher")},
      {{"--bind_cores_to_rank", "--bind_core_list"},
       false,
       Unsupported("core binding is not supported by this launcher (use numactl or taskset in PROGRAM)")},
  };
  return *flags;
}

}  // namespace

absl::StatusOr<Options> ParseArgs(const std::vector<std::string>& args) {
  Options o;
  std::vector<std::string> all_names;
  for (const Flag& f : Flags()) all_names.insert(all_names.end(), f.names.begin(), f.names.end());
  size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a.empty() || a[0] != '-' || a == "-") break;  // PROGRAM
    std::string name = a, value;
    bool has_value = false;
    if (const auto eq = a.find('='); eq != std::string::npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
      has_value = true;
    }
    const Flag* flag = nullptr;
    for (const Flag& f : Flags()) {
      if (std::find(f.names.begin(), f.names.end(), name) != f.names.end()) flag = &f;
    }
    if (flag == nullptr) {
      std::string msg = absl::StrCat("unknown option ", name);
      const std::string near = ClosestMatch(name, all_names);
      if (!near.empty()) absl::StrAppend(&msg, " (did you mean ", near, "?)");
      return absl::InvalidArgumentError(absl::StrCat(msg, "; PROGRAM's own flags go after PROGRAM"));
    }
    if (flag->takes_value && !has_value) {
      if (i + 1 >= args.size()) return absl::InvalidArgumentError(absl::StrCat(name, " needs a value"));
      value = args[++i];
    } else if (!flag->takes_value && has_value) {
      return absl::InvalidArgumentError(absl::StrCat(name, " takes no value"));
    }
    RETURN_IF_ERROR(flag->set(o, name, value));
  }
  o.program.assign(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
  if (o.program.empty()) return absl::InvalidArgumentError("no PROGRAM to launch");
  if (o.num_procs > 0 && o.selection.num_gpus > 0) {
    return absl::InvalidArgumentError("--num_procs (CPU processes) and --num_gpus exclude each other");
  }
  if (o.no_ssh && o.node_rank < 0) {
    return absl::InvalidArgumentError("--no_ssh starts one node's ranks: give that node's --node_rank");
  }
  if (!o.master_addr.empty()) RETURN_IF_ERROR(CheckHostName(o.master_addr, "--master_addr"));
  return o;
}

EnvList RankEnv(const Job& job, int node, int local, const std::vector<std::string>& visible) {
  int offset = 0;
  for (int n = 0; n < node; ++n) offset += static_cast<int>(job.resources[n].second.size());
  const std::vector<int>& slots = job.resources[node].second;
  EnvList env = {
      {"RANK", absl::StrCat(offset + local)},
      {"LOCAL_RANK", absl::StrCat(local)},
      {"WORLD_SIZE", absl::StrCat(TotalSlots(job.resources))},
      {"LOCAL_WORLD_SIZE", absl::StrCat(slots.size())},
      {"NODE_RANK", absl::StrCat(node)},
      {"MASTER_ADDR", job.master_addr},
      {"MASTER_PORT", absl::StrCat(job.master_port)},
  };
  if (!job.cpu) {
    std::vector<std::string> ids;
    for (int s : slots) {
      ids.push_back(s < static_cast<int>(visible.size()) && !visible.empty() ? visible[s] : absl::StrCat(s));
    }
    env.emplace_back("CUDA_VISIBLE_DEVICES", absl::StrJoin(ids, ","));
  }
  return env;
}

bool RunsPython(const Options& options) {
  return options.module || (!options.no_python && absl::EndsWith(options.program[0], ".py"));
}

std::vector<std::string> RankArgv(const Options& options, const std::string& python, int local_rank) {
  std::vector<std::string> argv;
  const bool py = RunsPython(options);
  if (py) {
    argv = {python, "-u"};
    if (options.module) argv.push_back("-m");
  }
  argv.push_back(options.program[0]);
  if (py && !options.no_local_rank && local_rank >= 0) argv.push_back(absl::StrCat("--local_rank=", local_rank));
  argv.insert(argv.end(), options.program.begin() + 1, options.program.end());
  return argv;
}

std::vector<std::string> SplitWords(absl::string_view text) {
  std::vector<std::string> words;
  std::string cur;
  bool in_word = false;
  char quote = 0;
  for (char c : text) {
    if (quote != 0) {
      if (c == quote) {
        quote = 0;
      } else {
        cur.push_back(c);
      }
    } else if (c == '\'' || c == '"') {
      quote = c;
      in_word = true;
    } else if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
      if (in_word) words.push_back(cur), cur.clear(), in_word = false;
    } else {
      cur.push_back(c);
      in_word = true;
    }
  }
  if (in_word) words.push_back(cur);
  return words;
}

std::string ShellQuote(absl::string_view text) {
  return absl::StrCat("'", absl::StrReplaceAll(text, {{"'", "'\\''"}}), "'");
}

EnvList ForwardedEnv(const std::vector<std::string>& environ, const EnvList& extra) {
  static const char* const kPrefixes[] = {"NCCL_", "GLOO_", "ZT_", "PYTHON", "UCX_", "OMP_", "TORCH_", "HF_", "CUDA_"};
  static const char* const kNames[] = {"LD_LIBRARY_PATH", "LIBTORCH", "BUILD_WORKING_DIRECTORY",
                                       "BUILD_WORKSPACE_DIRECTORY"};
  std::map<std::string, std::string> chosen;
  for (const std::string& kv : environ) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    const std::string name = kv.substr(0, eq);
    if (name == "CUDA_VISIBLE_DEVICES") continue;  // each node sets its own
    bool take = std::find(std::begin(kNames), std::end(kNames), name) != std::end(kNames);
    for (const char* p : kPrefixes) take = take || absl::StartsWith(name, p);
    if (take) chosen[name] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : extra) chosen[k] = v;
  return EnvList(chosen.begin(), chosen.end());
}

absl::StatusOr<EnvList> ParseEnvFile(absl::string_view text, const std::string& path) {
  EnvList out;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    absl::string_view l = absl::StripAsciiWhitespace(line);
    if (l.empty() || l[0] == '#') continue;
    const auto eq = l.find('=');
    const absl::string_view name = eq == absl::string_view::npos ? l : l.substr(0, eq);
    const bool ok = eq != absl::string_view::npos && !name.empty() && !absl::ascii_isdigit(name[0]) &&
                    std::all_of(name.begin(), name.end(), [](char c) { return absl::ascii_isalnum(c) || c == '_'; });
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line_no, ": '", absl::CHexEscape(l), "' is not NAME=VALUE"));
    }
    out.emplace_back(std::string(name), std::string(l.substr(eq + 1)));
  }
  return out;
}

std::string NodeCommand(const Job& job, const Options& options, const std::string& launcher_path,
                        const std::string& cwd, const EnvList& exports, const std::string& node_rank_text,
                        bool watch_stdin) {
  std::vector<std::string> words = {"cd", ShellQuote(cwd)};
  for (const auto& [k, v] : exports) {
    words.insert(words.end(), {"&&", "export", ShellQuote(absl::StrCat(k, "=", v))});
  }
  words.insert(words.end(), {"&&", "exec", ShellQuote(launcher_path)});
  words.push_back(ShellQuote(absl::StrCat("--node_rank=", node_rank_text)));
  words.push_back(ShellQuote(absl::StrCat("--world_info=", EncodeResources(job.resources))));
  words.push_back(ShellQuote(absl::StrCat("--master_addr=", job.master_addr)));
  words.push_back(ShellQuote(absl::StrCat("--master_port=", job.master_port)));
  words.push_back(ShellQuote(absl::StrCat("--stop_grace=", options.stop_grace_s)));
  if (job.cpu) words.push_back("--cpu");
  if (options.module) words.push_back("--module");
  if (options.no_python) words.push_back("--no_python");
  if (options.no_local_rank) words.push_back("--no_local_rank");
  if (!options.each_rank_log.empty()) {
    words.push_back(ShellQuote(absl::StrCat("--enable_each_rank_log=", options.each_rank_log)));
  }
  if (watch_stdin) words.push_back("--watch_stdin");
  words.push_back("--watch_output");
  words.push_back("--");
  for (const std::string& a : options.program) words.push_back(ShellQuote(a));
  return absl::StrJoin(words, " ");
}

namespace {

std::vector<std::string> Hosts(const Job& job) {
  std::vector<std::string> hosts;
  for (const auto& r : job.resources) hosts.push_back(r.first);
  return hosts;
}

// srun and mpirun start the same number of ranks on every node.
absl::StatusOr<int> EvenSlots(const Job& job, absl::string_view launcher) {
  const size_t n = job.resources[0].second.size();
  for (const auto& [host, slots] : job.resources) {
    if (slots.size() != n) {
      return absl::InvalidArgumentError(absl::StrCat("--launcher ", launcher,
                                                     " starts the same number of ranks on every host, but ", host,
                                                     " has ", slots.size(), " and ", job.resources[0].first, " ", n));
    }
  }
  return static_cast<int>(n);
}

}  // namespace

std::vector<std::string> SshArgv(const std::string& tool, const Options& options, const std::string& host,
                                 const std::string& command) {
  std::vector<std::string> argv = {tool};
  for (std::string& w : SplitWords(options.launcher_args)) argv.push_back(std::move(w));
  if (options.ssh_port > 0) argv.insert(argv.end(), {"-p", absl::StrCat(options.ssh_port)});
  // Never prompt (a password prompt per host would hang the job); give up on dead hosts.
  argv.insert(argv.end(), {"-o", "BatchMode=yes", "-o", "ConnectTimeout=30", "-o", "ServerAliveInterval=30", "-o",
                           "ServerAliveCountMax=4", host, command});
  return argv;
}

std::vector<std::string> PdshArgv(const std::string& tool, const Options& options, const Job& job,
                                  const std::string& command) {
  std::vector<std::string> argv = {tool, "-S", "-f", "1024", "-w", absl::StrJoin(Hosts(job), ",")};
  for (std::string& w : SplitWords(options.launcher_args)) argv.push_back(std::move(w));
  argv.push_back(command);
  return argv;
}

absl::StatusOr<std::vector<std::string>> SrunArgv(const std::string& tool, const Options& options, const Job& job,
                                                  const std::vector<std::string>& program_argv) {
  ASSIGN_OR_RETURN(int per_node, EvenSlots(job, "slurm"));
  std::vector<std::string> argv = {tool,
                                   absl::StrCat("--nodes=", job.resources.size()),
                                   absl::StrCat("--ntasks=", TotalSlots(job.resources)),
                                   absl::StrCat("--ntasks-per-node=", per_node),
                                   absl::StrCat("--nodelist=", absl::StrJoin(Hosts(job), ",")),
                                   "--kill-on-bad-exit=1",
                                   "--label"};
  for (std::string& w : SplitWords(options.launcher_args)) argv.push_back(std::move(w));
  argv.insert(argv.end(), program_argv.begin(), program_argv.end());
  return argv;
}

absl::StatusOr<std::vector<std::string>> MpirunArgv(const std::string& tool, const Options& options, const Job& job,
                                                    const EnvList& exports,
                                                    const std::vector<std::string>& program_argv) {
  ASSIGN_OR_RETURN(int per_node, EvenSlots(job, "mpirun"));
  std::vector<std::string> hosts;
  for (const std::string& h : Hosts(job)) hosts.push_back(absl::StrCat(h, ":", per_node));
  std::vector<std::string> argv = {tool,
                                   "-n",
                                   absl::StrCat(TotalSlots(job.resources)),
                                   "--host",
                                   absl::StrJoin(hosts, ","),
                                   "--npernode",
                                   absl::StrCat(per_node),
                                   "--tag-output"};
  EnvList env = exports;
  env.emplace_back("MASTER_ADDR", job.master_addr);
  env.emplace_back("MASTER_PORT", absl::StrCat(job.master_port));
  if (!job.cpu) {
    for (const auto& [host, slots] : job.resources) {
      if (slots != job.resources[0].second) {
        return absl::InvalidArgumentError(
            absl::StrCat("--launcher mpirun passes one CUDA_VISIBLE_DEVICES to every rank, so it needs the same GPUs "
                         "on every host; ",
                         host, " has ", absl::StrJoin(slots, ","), " and ", job.resources[0].first, " ",
                         absl::StrJoin(job.resources[0].second, ",")));
      }
    }
    env.emplace_back("CUDA_VISIBLE_DEVICES", absl::StrJoin(job.resources[0].second, ","));
  }
  for (const auto& [k, v] : env) argv.insert(argv.end(), {"-x", absl::StrCat(k, "=", v)});
  for (std::string& w : SplitWords(options.launcher_args)) argv.push_back(std::move(w));
  argv.insert(argv.end(), program_argv.begin(), program_argv.end());
  return argv;
}

}  // namespace zt::launch
