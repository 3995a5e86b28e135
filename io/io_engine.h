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
// owns one io_uring ring (queue_depth entries) and keeps up to queue_depth pieces in flight.
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
#include "io/file.h"

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

  bool uses_io_uring() const { return fallback_reason_.empty(); }
  // Why the pread/pwrite workers run instead of io_uring ("" when io_uring runs).
  const std::string& fallback_reason() const { return fallback_reason_; }
  const AioOptions& options() const { return options_; }
  std::uint64_t bytes_read() const { return bytes_read_.load(); }
  std::uint64_t bytes_written() const { return bytes_written_.load(); }

 private:
  explicit IoEngine(const AioOptions& options);
  IoHandle Submit(const File& file, std::uint8_t* buf, std::size_t len, std::uint64_t offset, bool write);

  AioOptions options_;
  std::string fallback_reason_;
  std::vector<std::unique_ptr<internal::Worker>> workers_;
  std::atomic<std::uint64_t> next_worker_{0};
  std::atomic<std::uint64_t> bytes_read_{0};
  std::atomic<std::uint64_t> bytes_written_{0};
};

}  // namespace zt::io

#endif  // ZEROTRAIN_IO_IO_ENGINE_H_
