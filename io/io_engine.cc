#include "io/io_engine.h"

#include <liburing.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <unordered_set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "io/aligned_buffer.h"

namespace zt::io {
namespace internal {

struct Completion {
  absl::Mutex mu;
  int pending ABSL_GUARDED_BY(mu) = 0;
  absl::Status status ABSL_GUARDED_BY(mu);

  void Finish(const absl::Status& s) {
    absl::MutexLock lock(&mu);
    if (!s.ok() && status.ok()) status = s;
    --pending;
  }
};

// One block_size piece of a request.
struct Piece {
  int fd = -1;
  std::string path;
  std::uint8_t* buf = nullptr;
  std::size_t len = 0;
  std::uint64_t offset = 0;
  bool write = false;
  std::size_t done = 0;  // bytes already transferred (short transfers resume here)
  int stalls = 0;        // writes that moved no byte
  std::shared_ptr<Completion> completion;
  std::atomic<std::uint64_t>* bytes = nullptr;

  absl::Status Error(int err, const char* backend) const {
    return absl::Status(absl::ErrnoToStatusCode(err),
                        absl::StrCat(backend, " ", write ? "write" : "read", " of ", path, " at offset ", offset + done,
                                     ", length ", len - done, ": ", std::strerror(err)));
  }
  absl::Status EndOfFile() const {
    return absl::OutOfRangeError(absl::StrCat("read of ", path, " at offset ", offset + done, ", length ", len - done,
                                              ": the file ends before it (truncated?)"));
  }
  // Accounts for `n` > 0 transferred bytes; true when the piece is complete.
  bool Advance(std::size_t n) {
    done += n;
    bytes->fetch_add(n);
    return done >= len;
  }
};

class Worker {
 public:
  explicit Worker(const AioOptions& options) : options_(options) {}
  ~Worker() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    if (thread_.joinable()) thread_.join();
    if (has_ring_) io_uring_queue_exit(&ring_);  // (the worker cleared it if the ring failed)
  }

  // 0 or -errno of io_uring_queue_init.
  int InitRing() {
    const int rc = io_uring_queue_init(static_cast<unsigned>(options_.queue_depth), &ring_, 0);
    has_ring_ = rc == 0;
    return rc;
  }
  void Start() {
    thread_ = std::thread([this] { has_ring_ ? RunRing() : RunSync(); });
  }
  void Push(std::unique_ptr<Piece> p) {
    absl::MutexLock lock(&mu_);
    queue_.push_back(std::move(p));
  }

 private:
  static void Finish(Piece* p, const absl::Status& s) {
    p->completion->Finish(s);
    delete p;
  }

  // Blocks until there is work (unless `block` is false); false once stopped and drained.
  bool Take(std::deque<std::unique_ptr<Piece>>& local, std::size_t room, bool block) {
    absl::MutexLock lock(&mu_);
    if (block) mu_.Await(absl::Condition(this, &Worker::HasWorkOrStop));
    if (block && queue_.empty()) return false;  // stopped, nothing left
    while (room > 0 && !queue_.empty()) {
      local.push_back(std::move(queue_.front()));
      queue_.pop_front();
      --room;
    }
    return true;
  }
  bool HasWorkOrStop() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || !queue_.empty(); }

  void RunRing() {
    const std::size_t depth = static_cast<std::size_t>(options_.queue_depth);
    std::deque<std::unique_ptr<Piece>> local;  // taken, not yet submitted (new, short, retried)
    for (;;) {
      const std::size_t busy = inflight_.size() + local.size();
      if (!Take(local, depth > busy ? depth - busy : 0, /*block=*/busy == 0)) return;
      while (!local.empty() && inflight_.size() < depth) {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        if (sqe == nullptr) break;
        Piece* p = local.front().release();
        local.pop_front();
        if (p->write) {
          io_uring_prep_write(sqe, p->fd, p->buf + p->done, static_cast<unsigned>(p->len - p->done),
                              p->offset + p->done);
        } else {
          io_uring_prep_read(sqe, p->fd, p->buf + p->done, static_cast<unsigned>(p->len - p->done),
                             p->offset + p->done);
        }
        io_uring_sqe_set_data(sqe, p);
        inflight_.insert(p);
        if (options_.single_submit) SubmitPending();
        if (!has_ring_) break;
      }
      if (has_ring_) SubmitPending();
      if (!has_ring_) break;
      if (inflight_.empty()) continue;
      // overlap_events: refill as soon as one piece completes; otherwise drain the batch.
      io_uring_cqe* cqe = nullptr;
      const unsigned want = options_.overlap_events ? 1u : static_cast<unsigned>(inflight_.size());
      const int rc = io_uring_wait_cqe_nr(&ring_, &cqe, want);
      if (rc < 0 && rc != -EINTR && rc != -EAGAIN) {
        FailRing(-rc);
        break;
      }
      unsigned head = 0, seen = 0;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        ++seen;
        Piece* p = static_cast<Piece*>(io_uring_cqe_get_data(cqe));
        inflight_.erase(p);
        const int res = cqe->res;
        if (res == -EAGAIN || res == -EINTR) {
          local.emplace_back(p);
        } else if (res < 0) {
          Finish(p, p->Error(-res, "io_uring"));
        } else if (res == 0) {
          if (!p->write) {
            Finish(p, p->EndOfFile());
          } else if (++p->stalls > 16) {
            Finish(p, p->Error(EIO, "io_uring"));
          } else {
            local.emplace_back(p);
          }
        } else if (p->Advance(static_cast<std::size_t>(res))) {
          Finish(p, absl::OkStatus());
        } else {
          local.emplace_back(p);  // short transfer: the remainder goes again
        }
      }
      io_uring_cq_advance(&ring_, seen);
    }
    // Only after a ring failure: the rest (taken or still queued) goes through pread/pwrite.
    for (auto& p : local) {
      Piece* raw = p.release();
      Finish(raw, SyncTransfer(*raw));
    }
    RunSync();
  }

  void SubmitPending() {
    while (io_uring_sq_ready(&ring_) > 0) {
      const int rc = io_uring_submit(&ring_);
      if (rc >= 0 || rc == -EINTR) continue;
      if (rc != -EAGAIN && rc != -EBUSY) FailRing(-rc);
      return;  // EAGAIN/EBUSY: completions first, resubmitted next round
    }
  }

  // The ring itself failed (submission or waiting, not one transfer): what it holds will not
  // complete through it.  Those requests end with the error, the ring is torn down (which
  // cancels and waits for the kernel's side), and the worker goes on with pread/pwrite.
  void FailRing(int err) {
    const absl::Status s =
        absl::Status(absl::ErrnoToStatusCode(err), absl::StrCat("io_uring ring failed: ", std::strerror(err)));
    io_uring_queue_exit(&ring_);
    has_ring_ = false;
    for (Piece* p : inflight_) Finish(p, s);
    inflight_.clear();
  }

  void RunSync() {
    std::deque<std::unique_ptr<Piece>> local;
    while (Take(local, 1, /*block=*/true)) {
      while (!local.empty()) {
        Piece* p = local.front().release();
        local.pop_front();
        Finish(p, SyncTransfer(*p));
      }
    }
  }

  static absl::Status SyncTransfer(Piece& p) {
    while (p.done < p.len) {
      const ssize_t n = p.write ? ::pwrite(p.fd, p.buf + p.done, p.len - p.done, static_cast<off_t>(p.offset + p.done))
                                : ::pread(p.fd, p.buf + p.done, p.len - p.done, static_cast<off_t>(p.offset + p.done));
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return p.Error(errno, "pread/pwrite");
      }
      if (n == 0) {
        if (!p.write) return p.EndOfFile();
        if (++p.stalls > 16) return p.Error(EIO, "pread/pwrite");
        continue;
      }
      p.Advance(static_cast<std::size_t>(n));
    }
    return absl::OkStatus();
  }

  const AioOptions options_;
  absl::Mutex mu_;
  std::deque<std::unique_ptr<Piece>> queue_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  io_uring ring_{};
  bool has_ring_ = false;
  std::unordered_set<Piece*> inflight_;  // submitted to the ring, not yet completed
  std::thread thread_;
};

}  // namespace internal

absl::Status IoHandle::Wait() const {
  if (completion_ == nullptr) return absl::FailedPreconditionError("IoHandle::Wait on an empty handle");
  absl::MutexLock lock(&completion_->mu);
  completion_->mu.Await(absl::Condition(
      +[](int* pending) { return *pending == 0; }, &completion_->pending));
  return completion_->status;
}

bool IoHandle::Done() const {
  if (completion_ == nullptr) return true;
  absl::MutexLock lock(&completion_->mu);
  return completion_->pending == 0;
}

absl::StatusOr<std::unique_ptr<IoEngine>> IoEngine::Create(const AioOptions& options) {
  if (options.block_size < kDirectIoAlignment || options.block_size % kDirectIoAlignment != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("aio.block_size ", options.block_size, " must be a positive multiple of ", kDirectIoAlignment));
  }
  if (options.queue_depth < 1 || options.queue_depth > 4096) {
    return absl::InvalidArgumentError(absl::StrCat("aio.queue_depth ", options.queue_depth, " must be in [1, 4096]"));
  }
  if (options.thread_count < 1 || options.thread_count > 256) {
    return absl::InvalidArgumentError(absl::StrCat("aio.thread_count ", options.thread_count, " must be in [1, 256]"));
  }
  std::unique_ptr<IoEngine> e(new IoEngine(options));
  bool ring = options.use_io_uring;
  if (!ring) e->fallback_reason_ = "io_uring disabled by the caller";
  if (const char* env = std::getenv("ZT_IO_URING"); ring && env != nullptr && std::string(env) == "0") {
    ring = false;
    e->fallback_reason_ = "io_uring disabled by ZT_IO_URING=0";
  }
  for (int i = 0; i < options.thread_count; ++i) {
    auto w = std::make_unique<internal::Worker>(options);
    if (ring) {
      const int rc = w->InitRing();
      if (rc < 0) {
        if (rc != -EPERM && rc != -ENOSYS && rc != -EACCES && rc != -EOPNOTSUPP) {
          return absl::Status(absl::ErrnoToStatusCode(-rc),
                              absl::StrCat("io_uring_queue_init(", options.queue_depth, "): ", std::strerror(-rc)));
        }
        // Not available here at all: every worker uses pread/pwrite (rings already made stay
        // unused, so the workers behave alike).
        ring = false;
        e->fallback_reason_ = absl::StrCat("io_uring unavailable (", std::strerror(-rc), ")");
        for (auto& made : e->workers_) made = std::make_unique<internal::Worker>(options);
        w = std::make_unique<internal::Worker>(options);
      }
    }
    e->workers_.push_back(std::move(w));
  }
  for (auto& w : e->workers_) w->Start();
  return e;
}

IoEngine::IoEngine(const AioOptions& options) : options_(options) {}

IoEngine::~IoEngine() { workers_.clear(); }

IoHandle IoEngine::Read(const File& file, void* buf, std::size_t len, std::uint64_t offset) {
  return Submit(file, static_cast<std::uint8_t*>(buf), len, offset, /*write=*/false);
}

IoHandle IoEngine::Write(const File& file, const void* buf, std::size_t len, std::uint64_t offset) {
  return Submit(file, static_cast<std::uint8_t*>(const_cast<void*>(buf)), len, offset, /*write=*/true);
}

IoHandle IoEngine::Submit(const File& file, std::uint8_t* buf, std::size_t len, std::uint64_t offset, bool write) {
  auto completion = std::make_shared<internal::Completion>();
  IoHandle handle(completion);
  const char* op = write ? "write" : "read";
  absl::Status invalid;
  if (!file.is_open()) {
    invalid = absl::FailedPreconditionError(absl::StrCat(op, " of ", file.path(), ": the file is not open"));
  } else if (file.direct() && (reinterpret_cast<std::uintptr_t>(buf) % kDirectIoAlignment != 0 ||
                               len % kDirectIoAlignment != 0 || offset % kDirectIoAlignment != 0)) {
    invalid = absl::InvalidArgumentError(absl::StrCat(op, " of ", file.path(), " at offset ", offset, ", length ", len,
                                                      ": O_DIRECT needs buffer, length and offset aligned to ",
                                                      kDirectIoAlignment, " bytes"));
  }
  if (!invalid.ok() || len == 0) {
    absl::MutexLock lock(&completion->mu);
    completion->status = invalid;
    return handle;
  }
  const std::size_t block = options_.block_size;
  const std::size_t pieces = (len + block - 1) / block;
  {
    absl::MutexLock lock(&completion->mu);
    completion->pending = static_cast<int>(pieces);
  }
  std::uint64_t w = next_worker_.fetch_add(pieces);
  for (std::size_t i = 0; i < pieces; ++i, ++w) {
    auto p = std::make_unique<internal::Piece>();
    p->fd = file.fd();
    p->path = file.path();
    p->buf = buf + i * block;
    p->len = std::min(block, len - i * block);
    p->offset = offset + i * block;
    p->write = write;
    p->completion = completion;
    p->bytes = write ? &bytes_written_ : &bytes_read_;
    workers_[w % workers_.size()]->Push(std::move(p));
  }
  return handle;
}

}  // namespace zt::io
