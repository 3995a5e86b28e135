// Asynchronous reads and writes of byte ranges through io_uring, the engine under ZeRO-Infinity.
//
//   zt::io::AioOptions aio;                       // DeepSpeed's "aio" block
//   aio.block_size = 1 << 20; aio.queue_depth = 32; aio.thread_count = 2;
//   ASSIGN_OR_RETURN(auto engine, zt::io::IoEngine::Create(aio));
//   zt::io::IoHandle w = engine->Write(file, buf.data(), buf.size(), /*offset=*/0);
//   ... other work ...
//   RETURN_IF_ERROR(w.Wait());
//
// A request is cut into block_size pieces dealt round-robin to thread_count workers; each worker
// owns one io_uring ring (queue_depth entries) and keeps up to queue_depth pieces in flight
// (submitting and waiting in one system call).  Requests inside buffers registered with
// RegisterBuffer go as io_uring fixed-buffer reads and writes.
// Short transfers are requeued for the remainder, -EAGAIN/-EINTR are retried, and any other
// failure ends the request with an error naming the path, offset, length and strerror(-ret);
// reading past the end of a file (one truncated under us) is an error, never zeros.
//
// Where io_uring cannot be set up (EPERM/ENOSYS/EACCES under seccomp or gVisor, old kernels,
// io_uring_disabled), or when asked (AioOptions::use_io_uring = false, or ZT_IO_URING=0 in the
// environment), the same workers run pread/pwrite instead; fallback_reason() says why, and the
// caller decides how to report it (the engine logs it once).
#ifndef ZEROTRAIN_IO_IO_ENGINE_H_
#define ZEROTRAIN_IO_IO_ENGINE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "io/file.h"

struct io_uring;

namespace zt::io {

struct AioOptions {
  std::size_t block_size = 1 << 20;  // aio.block_size: bytes per submitted piece
  int queue_depth = 8;               // aio.queue_depth: pieces in flight per worker
  int thread_count = 1;              // aio.thread_count / intra_op_parallelism: workers (rings)
  bool single_submit = false;        // aio.single_submit: one io_uring_submit per piece
  bool overlap_events = true;        // aio.overlap_events: refill the queue as pieces complete
                                     // (false: submit a batch, wait for all of it)
  bool use_io_uring = true;          // false: the pread/pwrite workers
};

// One io_uring instance (submission and completion queues), move-only; destroying it tears the
// ring down, which cancels what is still in flight and waits for the kernel to let go of it.
class Ring {
 public:
  // Errors: kPermissionDenied (EPERM/EACCES: seccomp, io_uring_disabled) and kUnimplemented
  // (ENOSYS/EOPNOTSUPP: old kernels, gVisor) mean io_uring is not available here at all.
  [[nodiscard]] static absl::StatusOr<Ring> Create(unsigned entries);
  Ring() = default;
  Ring(Ring&& other) noexcept;
  Ring& operator=(Ring&& other) noexcept;
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  ~Ring();

  io_uring* get() { return ring_; }
  bool valid() const { return ring_ != nullptr; }

 private:
  io_uring* ring_ = nullptr;  // owned; a stable address for the kernel-shared state
};

namespace internal {
struct Completion;
class Worker;
}  // namespace internal

// The outcome of one Read or Write.  Copyable; Wait() may be called more than once.
class IoHandle {
 public:
  IoHandle() = default;
  // Blocks until every piece finished; the first error, if any.
  [[nodiscard]] absl::Status Wait() const;
  bool Done() const;
  bool valid() const { return completion_ != nullptr; }

 private:
  friend class IoEngine;
  explicit IoHandle(std::shared_ptr<internal::Completion> c) : completion_(std::move(c)) {}
  std::shared_ptr<internal::Completion> completion_;
};

class IoEngine {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<IoEngine>> Create(const AioOptions& options);
  ~IoEngine();  // finishes what was submitted, then stops the workers
  IoEngine(const IoEngine&) = delete;
  IoEngine& operator=(const IoEngine&) = delete;

  // [offset, offset + len) of `file` into / from `buf`.  `buf` must stay valid until the handle
  // is done.  On a direct() file, buf, len and offset must be multiples of kDirectIoAlignment.
  IoHandle Read(const File& file, void* buf, std::size_t len, std::uint64_t offset);
  IoHandle Write(const File& file, const void* buf, std::size_t len, std::uint64_t offset);

  // Registers [data, data + len) with every worker's ring as io_uring fixed buffers, so that
  // requests inside it skip the kernel's per-request page pinning (on the machines measured in
  // BENCHMARKS.md this is worth 10-30% on reads).  An optimisation only: false, and requests
  // work as before, where it cannot be done (the pread/pwrite workers, a kernel without sparse
  // buffer tables, RLIMIT_MEMLOCK, all slots taken).  The region must stay valid until
  // UnregisterBuffer(data), which the caller calls once no request on it is in flight.
  bool RegisterBuffer(void* data, std::size_t len);
  void UnregisterBuffer(void* data);

  bool uses_io_uring() const { return fallback_reason_.empty(); }
  // Why the pread/pwrite workers run instead of io_uring ("" when io_uring runs).
  const std::string& fallback_reason() const { return fallback_reason_; }
  const AioOptions& options() const { return options_; }
  std::uint64_t bytes_read() const { return bytes_read_.load(); }
  std::uint64_t bytes_written() const { return bytes_written_.load(); }

 private:
  explicit IoEngine(const AioOptions& options);
  IoHandle Submit(const File& file, std::uint8_t* buf, std::size_t len, std::uint64_t offset, bool write);

  struct Region {
    std::uintptr_t begin = 0, end = 0;
    int index = -1;  // fixed-buffer slot in every ring
  };
  // The registered region holding [p, p + len), or -1.
  int FixedIndex(const std::uint8_t* p, std::size_t len);

  AioOptions options_;
  std::string fallback_reason_;
  absl::Mutex regions_mu_;
  std::vector<Region> regions_ ABSL_GUARDED_BY(regions_mu_);
  std::vector<bool> slot_used_ ABSL_GUARDED_BY(regions_mu_);
  std::vector<std::unique_ptr<internal::Worker>> workers_;
  std::atomic<std::uint64_t> next_worker_{0};
  std::atomic<std::uint64_t> bytes_read_{0};
  std::atomic<std::uint64_t> bytes_written_{0};
};

}  // namespace zt::io

#endif  // ZEROTRAIN_IO_IO_ENGINE_H_
