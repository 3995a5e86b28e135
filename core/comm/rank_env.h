// Who this process is in a job, read from the environment that launchers set.
//
//   ASSIGN_OR_RETURN(zt::RankInfo me, zt::RankInfoFromEnv());
//
// Sources, first match wins:
//   RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE      torchrun, deepspeed, //tools:launch
//   OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK, _LOCAL_SIZE   mpirun (Open MPI)
//   SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID             srun
//   none of them                                         a single process: rank 0 of 1
// The rendezvous address is MASTER_ADDR:MASTER_PORT (port default 29500); a job of more than
// one process must set MASTER_ADDR, except under srun:
//   - the processes on a node: SLURM_NTASKS_PER_NODE, else SLURM_STEP_TASKS_PER_NODE, else
//     SLURM_TASKS_PER_NODE ("4", "4(x2)" or "4,2": the first count);
//   - MASTER_ADDR unset: the first host of SLURM_STEP_NODELIST, else SLURM_JOB_NODELIST, else
//     SLURM_NODELIST (Slurm's host-list syntax: "node[01-04,07]" starts with node01);
//   - MASTER_PORT unset: 15000 + SLURM_JOB_ID % 20000, so that two jobs sharing a node do not
//     meet on one port; every rank of the job computes the same port.
// So a plain `srun ./binary` runs without a launcher.
// Under `torchrun --no-python`, TORCHELASTIC_USE_AGENT_STORE=True says that torchrun's agent
// already serves the store at MASTER_ADDR:MASTER_PORT: every rank, rank 0 too, connects to it as
// a client (store_is_external).  That store outlives the workers when torchrun restarts them, so
// this job's keys go under "zt/<TORCHELASTIC_RUN_ID>/<TORCHELASTIC_RESTART_COUNT>" (store_prefix)
// whenever TORCHELASTIC_RUN_ID is set.
// Malformed values are errors naming the variable.
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
  // A launcher already serves the TCPStore at master_addr:master_port (torchrun's agent): rank 0
  // connects to it as a client like every other rank instead of serving it.
  bool store_is_external = false;
  // Where Communicator::Create(options) puts this job's keys in that TCPStore ("" for its root):
  // a store that outlives a restart must not hand the new attempt the old attempt's keys.
  std::string store_prefix;
  std::string source = "single process";  // which variables it came from, for messages
};

// `getenv` is injectable for tests; it returns nullptr for an unset variable.
absl::StatusOr<RankInfo> RankInfoFromEnv(const std::function<const char*(const char*)>& getenv = nullptr);

// The first host of a Slurm host list (SLURM_JOB_NODELIST's syntax): "node01", "node[01-04,07]"
// -> "node01", "gpu[3,5-6]x,cpu1" -> "gpu3x", "a-b-c[009-012]" -> "a-b-c009" (zero padding kept),
// "rack[1-2]n[4-5]" -> "rack1n4".  An empty list or unbalanced brackets are InvalidArgument.
absl::StatusOr<std::string> FirstSlurmHost(const std::string& nodelist);

}  // namespace zt

#endif  // ZEROTRAIN_CORE_COMM_RANK_ENV_H_
