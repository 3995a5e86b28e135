#include "core/comm/rank_env.h"

#include <cstdint>
#include <cstdlib>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/util/status_macros.h"

namespace zt {
namespace {

using Env = std::function<const char*(const char*)>;

// nullopt when unset; an error when set but not a non-negative integer.
absl::StatusOr<std::optional<int>> ReadInt(const Env& env, const char* name) {
  const char* v = env(name);
  if (v == nullptr || *v == '\0') return std::optional<int>();
  int out = 0;
  if (!absl::SimpleAtoi(v, &out) || out < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("environment variable ", name, "='", v, "' is not a non-negative integer"));
  }
  return std::optional<int>(out);
}

// SLURM_NTASKS_PER_NODE (and its *_TASKS_PER_NODE fallbacks) looks like "4" or "4(x2)" or "4,2":
// the first count is this node's when the tasks are spread evenly, which is the only layout a
// data-parallel job uses.
std::optional<int> SlurmTasksPerNode(const char* v) {
  if (v == nullptr) return std::nullopt;
  int n = 0;
  for (const char* p = v; *p >= '0' && *p <= '9'; ++p) n = n * 10 + (*p - '0');
  return n > 0 ? std::optional<int>(n) : std::nullopt;
}

// Where srun puts the hosts of the job, most specific first: the step's nodes are the ones this
// process's peers run on.
constexpr const char* kSlurmNodeLists[] = {"SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST"};
constexpr const char* kSlurmTasksPerNode[] = {"SLURM_NTASKS_PER_NODE", "SLURM_STEP_TASKS_PER_NODE",
                                              "SLURM_TASKS_PER_NODE"};
// Under srun without MASTER_PORT: kSlurmPortBase + SLURM_JOB_ID % kSlurmPortSpan, ports 15000 to
// 34999, mostly below the ones Linux hands out for outgoing connections (32768 and up).  Two jobs
// sharing a node collide only when their ids are equal modulo the span.
constexpr int kSlurmPortBase = 15000;
constexpr int kSlurmPortSpan = 20000;

}  // namespace

absl::StatusOr<std::string> FirstSlurmHost(const std::string& nodelist) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("'", nodelist, "' is not a Slurm host list: ", why));
  };
  if (nodelist.empty()) return bad("it is empty");
  // Brackets pair up and do not nest, across the whole list (a later host's typo is still a
  // sign that the list is not what we think it is).
  int depth = 0;
  for (char c : nodelist) {
    if (c == '[' && depth++ > 0) return bad("a '[' inside '[...]'");
    if (c == ']' && --depth < 0) return bad("a ']' without '['");
  }
  if (depth != 0) return bad("a '[' without ']'");
  // The first host is the first host expression (up to a ',' outside brackets) with each
  // bracket replaced by its first number, written as given: "[009-012]" -> "009".
  std::string host;
  for (std::size_t i = 0; i < nodelist.size() && nodelist[i] != ','; ++i) {
    if (nodelist[i] != '[') {
      host += nodelist[i];
      continue;
    }
    const std::size_t close = nodelist.find(']', i);
    absl::string_view range = absl::string_view(nodelist).substr(i + 1, close - i - 1);
    range = range.substr(0, range.find(','));
    range = range.substr(0, range.find('-'));
    if (range.empty()) return bad("a '[...]' that does not start with a number");
    for (char c : range) {
      if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
        return bad("a '[...]' that does not start with a number");
      }
    }
    absl::StrAppend(&host, range);
    i = close;
  }
  if (host.empty()) return bad("its first host is empty");
  return host;
}

absl::StatusOr<RankInfo> RankInfoFromEnv(const Env& getenv_fn) {
  const Env env = getenv_fn ? getenv_fn : Env([](const char* n) { return std::getenv(n); });
  RankInfo info;
  struct Scheme {
    const char *rank, *size, *local_rank, *local_size, *name;
  };
  const Scheme schemes[] = {
      {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "RANK/WORLD_SIZE"},
      {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE",
       "Open MPI (OMPI_COMM_WORLD_*)"},
      {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", nullptr, "SLURM (SLURM_PROCID/SLURM_NTASKS)"},
  };
  const Scheme* found = nullptr;
  for (const Scheme& s : schemes) {
    ASSIGN_OR_RETURN(std::optional<int> rank, ReadInt(env, s.rank));
    ASSIGN_OR_RETURN(std::optional<int> size, ReadInt(env, s.size));
    if (!rank && !size) continue;
    if (!rank || !size) {
      return absl::InvalidArgumentError(absl::StrCat(rank ? s.size : s.rank, " is not set but ", rank ? s.rank : s.size,
                                                     " is: a launcher sets both"));
    }
    ASSIGN_OR_RETURN(std::optional<int> local_rank, ReadInt(env, s.local_rank));
    std::optional<int> local_size;
    if (s.local_size != nullptr) {
      ASSIGN_OR_RETURN(local_size, ReadInt(env, s.local_size));
    } else {
      for (const char* name : kSlurmTasksPerNode) {
        if ((local_size = SlurmTasksPerNode(env(name)))) break;
      }
    }
    info.rank = *rank;
    info.world_size = *size;
    info.local_rank = local_rank.value_or(0);
    info.local_world_size = local_size.value_or(info.world_size);
    info.source = s.name;
    if (info.world_size < 1) return absl::InvalidArgumentError(absl::StrCat(s.size, " must be at least 1"));
    if (info.rank >= info.world_size) {
      return absl::InvalidArgumentError(
          absl::StrCat(s.rank, "=", info.rank, " is not below ", s.size, "=", info.world_size));
    }
    found = &s;
    break;
  }
  // srun sets no MASTER_ADDR: every rank can read rank 0's host from the node list, whose first
  // host runs task 0 under every distribution but --distribution=arbitrary.
  const bool slurm = found == &schemes[2];
  if (const char* addr = env("MASTER_ADDR"); addr != nullptr && *addr != '\0') {
    info.master_addr = addr;
  } else {
    const char* list_name = nullptr;
    if (slurm) {
      for (const char* name : kSlurmNodeLists) {
        if (env(name) != nullptr) {
          list_name = name;
          break;
        }
      }
    }
    if (list_name != nullptr) {
      const char* list = env(list_name);
      absl::StatusOr<std::string> host = FirstSlurmHost(list);
      if (!host.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("environment variable ", list_name, "=", host.status().message()));
      }
      info.master_addr = *std::move(host);
      absl::StrAppend(&info.source, "; MASTER_ADDR from ", list_name);
    } else if (found != nullptr && info.world_size > 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "MASTER_ADDR is not set: a job of ", info.world_size, " processes (from ", info.source,
          ") needs the host of rank 0 in MASTER_ADDR (and a free port in MASTER_PORT, default 29500)",
          slurm ? "; under srun it is read from SLURM_STEP_NODELIST, SLURM_JOB_NODELIST or SLURM_NODELIST, none set"
                : ""));
    }
  }
  ASSIGN_OR_RETURN(std::optional<int> port, ReadInt(env, "MASTER_PORT"));
  if (port) {
    if (*port < 1 || *port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("MASTER_PORT=", *port, " is not a TCP port (1..65535)"));
    }
    info.master_port = *port;
  } else if (const char* job = env("SLURM_JOB_ID"); slurm && job != nullptr && *job != '\0') {
    std::uint64_t id = 0;
    if (!absl::SimpleAtoi(job, &id)) {
      return absl::InvalidArgumentError(
          absl::StrCat("environment variable SLURM_JOB_ID='", job, "' is not a non-negative integer"));
    }
    info.master_port = kSlurmPortBase + static_cast<int>(id % kSlurmPortSpan);
    absl::StrAppend(&info.source, "; MASTER_PORT from SLURM_JOB_ID");
  }
  // torchrun's elastic agent writes str(True) here when it serves the store itself (see
  // _create_c10d_store in torch/distributed/rendezvous.py); anything else means it does not.
  if (const char* agent = env("TORCHELASTIC_USE_AGENT_STORE"); agent != nullptr && absl::string_view(agent) == "True") {
    info.store_is_external = true;
    absl::StrAppend(&info.source, "; store served by torchrun's agent");
  }
  if (const char* run = env("TORCHELASTIC_RUN_ID"); run != nullptr && *run != '\0') {
    ASSIGN_OR_RETURN(std::optional<int> restart, ReadInt(env, "TORCHELASTIC_RESTART_COUNT"));
    info.store_prefix = absl::StrCat("zt/", run, "/", restart.value_or(0));
  }
  return info;
}

}  // namespace zt
