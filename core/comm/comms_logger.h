// DeepSpeed's communication logger ("comms_logger" in the config) as a Communicator decorator:
// times the collectives that go through it, optionally logs each one, and keeps a summary per
// op and message size with algorithm and bus bandwidth.
//
//   zt::LoggingCommunicator::Options o;           // from config.comms_logger
//   o.enabled = true;  o.prof_all = false;  o.prof_ops = {"all_reduce", "all_gather"};
//   ASSIGN_OR_RETURN(std::unique_ptr<zt::LoggingCommunicator> logged,
//                    zt::LoggingCommunicator::Create(comm, o));   // comm: shared_ptr<Communicator>
//   std::shared_ptr<zt::LoggingCommunicator> logger = std::move(logged);
//   ...hand `logger` to the engine as its communicator...
//   ZT_LOG(INFO) << "\n" << logger->Summary();                     // deepspeed.comm.log_summary()
//
// Which ops are profiled (DeepSpeed's timed_op): none when !enabled; all with prof_all; else the
// ops named in prof_ops, spelled as deepspeed.comm does: all_reduce, reduce, reduce_scatter (or
// reduce_scatter_tensor), all_gather (or all_gather_into_tensor), broadcast, barrier.  Its ops
// this communicator never runs (all_to_all_single, send, ...) are accepted and record nothing;
// any other name makes Create() fail with kInvalidArgument.
//
// Profiling serialises communication.  A profiled op is made synchronous so that its time is
// the collective's own: the device is synchronised (CUDA tensors), the op started, its work
// waited for and the device synchronised again before the clock stops; the returned CommWork is
// already complete and its Wait() returns the op's status.  Nothing overlaps a profiled
// collective, neither compute nor other collectives: DeepSpeed's logger does the same
// ("All logging communication calls are synchronized").  Ops that are not profiled are
// forwarded untouched: the inner communicator's own, still asynchronous, CommWork is returned.
//
// Message size and bandwidth follow nccl-tests (doc/PERFORMANCE.md):
//   size: all_reduce, reduce, broadcast: the tensor; reduce_scatter: the whole input
//         (world x output); all_gather: the whole output (world x input).
//   algbw = size / time;   busbw = algbw x factor, with n = world size:
//         all_reduce 2(n-1)/n, reduce_scatter and all_gather (n-1)/n, reduce and broadcast 1.
//   Bandwidths are in GB/s, 1 GB/s = 1e9 bytes/s, as nccl-tests prints them.  (DeepSpeed's
//   logger prints Gbps, counts all_gather/reduce_scatter sizes per rank, and doubles the
//   all-reduce algbw; the numbers here are nccl-tests', so they compare with its runs.)
//   A summary row's bandwidth is size / mean time over its count (DeepSpeed averages the
//   per-op bandwidths after trimming 10% outliers; min and max times are shown instead).
//   Barrier: count and latency only.
// Human-readable sizes use 1024: "512 B", "11.72 KB", "8.0 MB" (as DeepSpeed's convert_size,
// whose KB/MB/GB are KiB/MiB/GiB); the summary also gives the exact byte count.
//
// Verbose: one ZT_LOG(INFO) line per profiled op as it completes, on every rank:
//   rank=0 | comm op: all_reduce | time (ms): 1.23 | msg size: 8.0 MB | algbw (GB/s): 6.82 | busbw (GB/s): 10.23
// debug (DeepSpeed appends the calling Python function to the op's name) is accepted and
// ignored: C++ has no cheap, reliable caller name here (the Communicator interface carries
// none, and unwinding needs symbols that optimised static binaries lack).
//
// Not logged: the CPU side channels of CreateCpuChannel (returned unwrapped), Shutdown.
// stats() of the wrapper counts what went through it, as the inner communicator counts.
//
// Thread safety: the records are guarded by a mutex, so collectives may be issued from one
// thread (stage 3's backward runs on autograd's thread) while another reads TotalSeconds(),
// TakeSeconds() or Summary().  The inner communicator's own rules still apply to collectives.
#ifndef ZEROTRAIN_CORE_COMM_COMMS_LOGGER_H_
#define ZEROTRAIN_CORE_COMM_COMMS_LOGGER_H_

#include <ATen/core/Tensor.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/comm/communicator.h"

namespace zt {

class LoggingCommunicator : public Communicator {
 public:
  // The "comms_logger" block of a DeepSpeed config (core/config's CommsLoggerConfig).
  struct Options {
    // Off: every op is forwarded untouched and nothing is recorded.  (The config's default is
    // off; wrapping a communicator means asking for the logger, so it is on here.)
    bool enabled = true;
    // Log one line per profiled op as it completes.
    bool verbose = false;
    // Profile every op; otherwise only those named in prof_ops.
    bool prof_all = true;
    std::vector<std::string> prof_ops;
    // Accepted and ignored (see above).
    bool debug = false;
  };

  // One summary row: the profiled ops of one kind and message size.
  struct Record {
    std::string op;          // "all_reduce", "reduce", "reduce_scatter", "all_gather", "broadcast", "barrier"
    std::int64_t bytes = 0;  // nccl-tests' message size (0 for barrier)
    std::int64_t count = 0;
    double total_s = 0, min_s = 0, max_s = 0;
    double algbw_gbps = 0;  // GB/s (1e9 bytes/s): bytes / (total_s / count); 0 for barrier
    double busbw_gbps = 0;  // GB/s: algbw_gbps x the op's factor; 0 for barrier
  };

  // Fails with kInvalidArgument for a null `inner` or a prof_ops name that is not one of
  // deepspeed.comm's timed ops (the message names it and lists the valid names).  Its ops this
  // communicator never runs (all_to_all_single, send, ...) are accepted and record nothing.
  static absl::StatusOr<std::unique_ptr<LoggingCommunicator>> Create(std::shared_ptr<Communicator> inner,
                                                                     const Options& options);

  CommBackend backend() const override { return inner_->backend(); }
  absl::StatusOr<std::unique_ptr<CommWork>> AllReduce(at::Tensor t, ReduceOp op = ReduceOp::kSum) override;
  absl::StatusOr<std::unique_ptr<CommWork>> Reduce(at::Tensor t, int root, ReduceOp op = ReduceOp::kSum) override;
  absl::StatusOr<std::unique_ptr<CommWork>> ReduceScatter(at::Tensor out, at::Tensor in,
                                                          ReduceOp op = ReduceOp::kSum) override;
  absl::StatusOr<std::unique_ptr<CommWork>> AllGather(at::Tensor out, at::Tensor in) override;
  absl::StatusOr<std::unique_ptr<CommWork>> Broadcast(at::Tensor t, int root) override;
  [[nodiscard]] absl::Status Barrier() override;
  absl::StatusOr<std::unique_ptr<Communicator>> CreateCpuChannel(const std::string& name) override;
  [[nodiscard]] absl::Status Shutdown() override;

  const Communicator& inner() const { return *inner_; }

  // Seconds spent in profiled ops since Create().
  double TotalSeconds() const;
  // Seconds spent in profiled ops since the previous TakeSeconds() (or Create()); resets that
  // count, not TotalSeconds() or the records.  For the engine's wall_clock_breakdown.
  double TakeSeconds();
  // Every row, ops in the order listed in Record::op, sizes ascending.
  std::vector<Record> Records() const;
  // The summary table (DeepSpeed's log_summary), one row per Records() entry, fixed-width
  // columns; a header line names the rank and units.
  std::string Summary() const;

 private:
  enum Op : int { kAllReduce, kReduce, kReduceScatter, kAllGather, kBroadcast, kBarrier, kNumOps };
  struct Cell {
    std::int64_t count = 0;
    double total_s = 0, min_s = 0, max_s = 0;
  };

  LoggingCommunicator(std::shared_ptr<Communicator> inner, const Options& options, std::array<bool, kNumOps> profiled);

  // Starts an op through `start`; if `op` is profiled, makes it synchronous and records it.
  // `device_of` is a tensor of the op (whose device is synchronised), `kind` the stats counter.
  template <typename Start>
  absl::StatusOr<std::unique_ptr<CommWork>> Run(Op op, const at::Tensor& device_of, std::int64_t bytes,
                                                std::atomic<std::int64_t>& kind, Start start);
  void RecordOp(Op op, std::int64_t bytes, double seconds);

  static const char* OpName(Op op);
  double BusFactor(Op op) const;

  const std::shared_ptr<Communicator> inner_;
  const bool verbose_;
  const std::array<bool, kNumOps> profiled_;

  mutable absl::Mutex mu_;
  std::array<std::map<std::int64_t, Cell>, kNumOps> cells_ ABSL_GUARDED_BY(mu_);
  double total_s_ ABSL_GUARDED_BY(mu_) = 0;
  double untaken_s_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace zt

#endif  // ZEROTRAIN_CORE_COMM_COMMS_LOGGER_H_
