// Collective communication for the engine: all-reduce, reduce, reduce-scatter, all-gather,
// broadcast and barrier over flat tensors, asynchronous with handles.
//
//   ASSIGN_OR_RETURN(zt::RankInfo me, zt::RankInfoFromEnv());
//   zt::CommOptions options;
//   options.rank = me;
//   ASSIGN_OR_RETURN(std::unique_ptr<zt::Communicator> comm, zt::Communicator::Create(options));
//   ASSIGN_OR_RETURN(std::unique_ptr<zt::CommWork> w, comm->AllReduce(grads));   // starts
//   ...compute...
//   RETURN_IF_ERROR(w->Wait());                                                   // done
//   RETURN_IF_ERROR(comm->Shutdown());
//
// Backends are real collective libraries: NCCL through c10d's ProcessGroupNCCL for CUDA tensors
// (built under --config=cuda), and Gloo for CPU tensors.  Rendezvous is c10d's TCPStore at
// MASTER_ADDR:MASTER_PORT (rank 0 serves it, or torchrun's agent when RankInfo::store_is_external),
// or a store the caller passes (tests run several ranks as threads over one HashStore).
//
// Every rank must issue the same collectives in the same order; each call names the rank in
// its errors.  Tensors must be contiguous.  Collectives are ordered: the backend runs them in
// the order they were started.
#ifndef ZEROTRAIN_CORE_COMM_COMMUNICATOR_H_
#define ZEROTRAIN_CORE_COMM_COMMUNICATOR_H_

#include <ATen/core/Tensor.h>
#include <c10/util/intrusive_ptr.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/comm/rank_env.h"

namespace c10d {
class Store;
}  // namespace c10d

namespace zt {

enum class ReduceOp { kSum, kMax, kMin };

enum class CommBackend {
  kAuto,  // NCCL when built with CUDA and a GPU is present, else Gloo
  kGloo,
  kNccl,
};

// "gloo", "nccl", "auto".
const char* CommBackendName(CommBackend b);

struct CommOptions {
  RankInfo rank;
  CommBackend backend = CommBackend::kAuto;
  // Longest a collective may take before it fails (instead of hanging); also bounds the store's
  // later waits (NCCL's first collective, CreateCpuChannel).  ZT_COMM_TIMEOUT_S (seconds)
  // overrides it in Create().
  std::chrono::milliseconds timeout = std::chrono::minutes(30);
  // Longest Create() waits for every rank to arrive (the TCPStore's connection and count of
  // ranks, Gloo's connection) before it fails with kDeadlineExceeded naming the rank, the
  // address and the limit.  Shorter than `timeout`: ranks start within moments of each other,
  // while a collective may wait out a slow rank's step.  ZT_RENDEZVOUS_TIMEOUT_S (seconds)
  // overrides it in Create().
  std::chrono::milliseconds rendezvous_timeout = std::chrono::minutes(5);
};

// Handle of one started collective.
class CommWork {
 public:
  virtual ~CommWork() = default;
  // CPU (Gloo): blocks until the collective finished.  CUDA (NCCL): makes the current CUDA
  // stream wait for it; the host does not block.  Returns the collective's error, if any.
  [[nodiscard]] virtual absl::Status Wait() = 0;
};

// Counters of what a communicator moved: payload bytes as the collective's definition
// counts them (all-reduce: the tensor; reduce-scatter: the input; all-gather: the output).
struct CommStats {
  std::atomic<std::int64_t> calls{0};
  std::atomic<std::int64_t> bytes{0};
  std::atomic<std::int64_t> all_reduce_bytes{0};
  std::atomic<std::int64_t> reduce_bytes{0};
  std::atomic<std::int64_t> reduce_scatter_bytes{0};
  std::atomic<std::int64_t> all_gather_bytes{0};
  std::atomic<std::int64_t> broadcast_bytes{0};
};

class Communicator {
 public:
  // RankInfoFromEnv() + Create(): what torchrun, deepspeed, srun, mpirun or //tools:launch set.
  static absl::StatusOr<std::unique_ptr<Communicator>> FromEnv(CommBackend backend = CommBackend::kAuto);
  // Rendezvous through c10d's TCPStore at options.rank.master_addr:master_port.
  static absl::StatusOr<std::unique_ptr<Communicator>> Create(const CommOptions& options);
  // Rendezvous through `store` (shared by all ranks; e.g. a HashStore for ranks in one process).
  static absl::StatusOr<std::unique_ptr<Communicator>> Create(const CommOptions& options,
                                                              c10::intrusive_ptr<c10d::Store> store);

  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return info_.rank; }
  int world_size() const { return info_.world_size; }
  int local_rank() const { return info_.local_rank; }
  const RankInfo& rank_info() const { return info_; }
  virtual CommBackend backend() const = 0;

  // In place: every rank ends with op over all ranks' t.
  virtual absl::StatusOr<std::unique_ptr<CommWork>> AllReduce(at::Tensor t, ReduceOp op = ReduceOp::kSum) = 0;
  // In place on `root`: t = op over all ranks' t.  On other ranks t's contents afterwards are
  // unspecified.
  virtual absl::StatusOr<std::unique_ptr<CommWork>> Reduce(at::Tensor t, int root, ReduceOp op = ReduceOp::kSum) = 0;
  // in has world_size * out.numel() elements; rank r gets op over all ranks of chunk r.
  virtual absl::StatusOr<std::unique_ptr<CommWork>> ReduceScatter(at::Tensor out, at::Tensor in,
                                                                  ReduceOp op = ReduceOp::kSum) = 0;
  // out has world_size * in.numel() elements; chunk r of out is rank r's in.  `in` may be
  // out's own chunk (in place).
  virtual absl::StatusOr<std::unique_ptr<CommWork>> AllGather(at::Tensor out, at::Tensor in) = 0;
  // In place: every rank ends with root's t.
  virtual absl::StatusOr<std::unique_ptr<CommWork>> Broadcast(at::Tensor t, int root) = 0;
  // Returns when every rank reached it (or fails after the timeout).
  [[nodiscard]] virtual absl::Status Barrier() = 0;

  // A second, CPU (Gloo) communicator among the same ranks, rendezvousing through this one's
  // store under `name` and a sequence number (so a name may be used again): for small control
  // messages that must not queue behind (or sync with) the data collectives.  Every rank calls
  // it at the same points with the same names.
  virtual absl::StatusOr<std::unique_ptr<Communicator>> CreateCpuChannel(const std::string& name) = 0;

  // Explicit teardown, after the last collective finished.  The destructor of a communicator
  // that was not shut down only warns: tearing NCCL down at process exit is unsafe.
  [[nodiscard]] virtual absl::Status Shutdown() = 0;

  const CommStats& stats() const { return stats_; }

 protected:
  explicit Communicator(RankInfo info) : info_(std::move(info)) {}
  // CreateCpuChannel's body for every backend: Gloo over a prefix of `store`.
  absl::StatusOr<std::unique_ptr<Communicator>> CpuChannelOver(const c10::intrusive_ptr<c10d::Store>& store,
                                                               const std::string& name,
                                                               std::chrono::milliseconds timeout);
  // Checks shared by the backends: contiguity, sizes, roots.  `what` names the collective.
  absl::Status CheckTensor(const at::Tensor& t, const char* what) const;
  absl::Status CheckRoot(int root, const char* what) const;
  void Count(std::atomic<std::int64_t>& kind, std::int64_t bytes);
  // "rank 3 of 8 (gloo)": the prefix of every error.
  std::string Where() const;

  RankInfo info_;
  CommStats stats_;
  int channels_created_ = 0;
};

// Convenience: AllReduce(...) and Wait().
[[nodiscard]] absl::Status AllReduceSync(Communicator& comm, at::Tensor t, ReduceOp op = ReduceOp::kSum);

}  // namespace zt

#endif  // ZEROTRAIN_CORE_COMM_COMMUNICATOR_H_
