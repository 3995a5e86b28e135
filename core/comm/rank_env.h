// Who this process is in a job, read from the environment that launchers set.
//
//   ASSIGN_OR_RETURN(zt::RankInfo me, zt::RankInfoFromEnv());
//
// Sources, first match wins:
//   RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE      torchrun, deepspeed, //tools:launch
//   OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK, _LOCAL_SIZE   mpirun (Open MPI)
//   SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE   srun
//   none of them                                         a single process: rank 0 of 1
// The rendezvous address is MASTER_ADDR:MASTER_PORT (port default 29500); a job of more than
// one process must set MASTER_ADDR.  Malformed values are errors naming the variable.
#ifndef ZEROTRAIN_CORE_COMM_RANK_ENV_H_
#define ZEROTRAIN_CORE_COMM_RANK_ENV_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"

namespace zt {

struct RankInfo {
  int rank = 0;              // 0 .. world_size-1
  int world_size = 1;        // processes in the job
  int local_rank = 0;        // index on this node: picks the GPU
  int local_world_size = 1;  // processes on this node
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string source = "single process";  // which variables it came from, for messages
};

// `getenv` is injectable for tests; it returns nullptr for an unset variable.
absl::StatusOr<RankInfo> RankInfoFromEnv(const std::function<const char*(const char*)>& getenv = nullptr);

}  // namespace zt

#endif  // ZEROTRAIN_CORE_COMM_RANK_ENV_H_
