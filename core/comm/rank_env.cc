#include "core/comm/rank_env.h"

#include <cstdlib>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
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

// SLURM_NTASKS_PER_NODE looks like "4" or "4(x2)" or "4,2": the first count is this node's
// when the tasks are spread evenly, which is the only layout a data-parallel job uses.
std::optional<int> SlurmTasksPerNode(const char* v) {
  if (v == nullptr) return std::nullopt;
  int n = 0;
  for (const char* p = v; *p >= '0' && *p <= '9'; ++p) n = n * 10 + (*p - '0');
  return n > 0 ? std::optional<int>(n) : std::nullopt;
}

}  // namespace

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
  bool found = false;
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
      local_size = SlurmTasksPerNode(env("SLURM_NTASKS_PER_NODE"));
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
    found = true;
    break;
  }
  if (const char* addr = env("MASTER_ADDR"); addr != nullptr && *addr != '\0') {
    info.master_addr = addr;
  } else if (found && info.world_size > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("MASTER_ADDR is not set: a job of ", info.world_size, " processes (from ", info.source,
                     ") needs the host of rank 0 in MASTER_ADDR (and a free port in MASTER_PORT, default 29500)"));
  }
  ASSIGN_OR_RETURN(std::optional<int> port, ReadInt(env, "MASTER_PORT"));
  if (port) {
    if (*port < 1 || *port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("MASTER_PORT=", *port, " is not a TCP port (1..65535)"));
    }
    info.master_port = *port;
  }
  return info;
}

}  // namespace zt
