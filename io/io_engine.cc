#include "io/io_engine.h"

#include <liburing.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
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
namespace {

constexpr unsigned kFixedSlots = 64;  // registered buffers per ring

}  // namespace

namespace internal {

struct Completion {
  absl::Mutex mu;
  int pending ABSL_GUARDED_BY(mu) = 0;
  absl::Status status ABSL_GUARDED_BY(mu);
  std::uint64_t error_offset ABSL_GUARDED_BY(mu) = ~std::uint64_t{0};

  // Of several failed pieces the request reports the one nearest its start, whatever order
  // they completed in.
  void Finish(const absl::Status& s, std::uint64_t offset) {
    absl::MutexLock lock(&mu);
    if (!s.ok() && offset < error_offset) {
      status = s;
      error_offset = offset;
    }
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
  int fixed = -1;        // registered buffer slot holding buf, or -1
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
  // Without a valid ring the worker runs pread/pwrite.
  Worker(const AioOptions& options, Ring ring) : options_(options), ring_(std::move(ring)) {}
  ~Worker() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    if (thread_.joinable()) thread_.join();
  }

  void Start() {
    thread_ = std::thread([this] { ring_.valid() ? RunRing() : RunSync(); });
  }
  // Installs `iov` in fixed-buffer slot `index` of this worker's ring (an empty iovec clears
  // it); false without a ring or a sparse table.
  bool SetFixed(int index, const iovec& iov) {
    if (!ring_.valid() || !fixed_table_) return false;
    __u64 tag = 0;
    return io_uring_register_buffers_update_tag(ring_.get(), static_cast<unsigned>(index), &iov, &tag, 1) == 1;
  }
  // A sparse table of `slots` fixed buffers (kernel 5.19+); false where the kernel has none.
  bool InitFixedTable(unsigned slots) {
    fixed_table_ = ring_.valid() && io_uring_register_buffers_sparse(ring_.get(), slots) == 0;
    return fixed_table_;
  }

  void Push(std::unique_ptr<Piece> p) {
    absl::MutexLock lock(&mu_);
    queue_.push_back(std::move(p));
  }

 private:
  static void Finish(Piece* p, const absl::Status& s) {
    p->completion->Finish(s, p->offset + p->done);
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
        io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
        if (sqe == nullptr) break;
        Piece* p = local.front().release();
        local.pop_front();
        const unsigned n = static_cast<unsigned>(p->len - p->done);
        if (p->fixed >= 0 && p->write) {
          io_uring_prep_write_fixed(sqe, p->fd, p->buf + p->done, n, p->offset + p->done, p->fixed);
        } else if (p->fixed >= 0) {
          io_uring_prep_read_fixed(sqe, p->fd, p->buf + p->done, n, p->offset + p->done, p->fixed);
        } else if (p->write) {
          io_uring_prep_write(sqe, p->fd, p->buf + p->done, n, p->offset + p->done);
        } else {
          io_uring_prep_read(sqe, p->fd, p->buf + p->done, n, p->offset + p->done);
        }
        io_uring_sqe_set_data(sqe, p);
        inflight_.insert(p);
        if (options_.single_submit) SubmitPending();
        if (!ring_.valid()) break;
      }
      if (!ring_.valid()) break;
      if (inflight_.empty()) continue;
      // Submit what is prepared and wait in one system call: for one completion with
      // overlap_events (refill as soon as a piece is done), else for the whole batch.
      const unsigned want = options_.overlap_events ? 1u : static_cast<unsigned>(inflight_.size());
      const int rc = io_uring_submit_and_wait(ring_.get(), want);
      if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
        FailRing(-rc);
        break;
      }
      io_uring_cqe* cqe = nullptr;
      unsigned head = 0, seen = 0;
      io_uring_for_each_cqe(ring_.get(), head, cqe) {
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
      io_uring_cq_advance(ring_.get(), seen);
    }
    // Only after a ring failure: the rest (taken or still queued) goes through pread/pwrite.
    for (auto& p : local) {
      Piece* raw = p.release();
      Finish(raw, SyncTransfer(*raw));
    }
    RunSync();
  }

  void SubmitPending() {
    while (io_uring_sq_ready(ring_.get()) > 0) {
      const int rc = io_uring_submit(ring_.get());
      if (rc >= 0 || rc == -EINTR) continue;
      if (rc != -EAGAIN && rc != -EBUSY) FailRing(-rc);
      return;  // EAGAIN/EBUSY: completions first, resubmitted with the next wait
    }
  }

  // The ring itself failed (submission or waiting, not one transfer): what it holds will not
  // complete through it.  Those requests end with the error, the ring is torn down (which
  // cancels and waits for the kernel's side), and the worker goes on with pread/pwrite.
  void FailRing(int err) {
    const absl::Status s =
        absl::Status(absl::ErrnoToStatusCode(err), absl::StrCat("io_uring ring failed: ", std::strerror(err)));
    ring_ = Ring();
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
  Ring ring_;
  bool fixed_table_ = false;
  std::unordered_set<Piece*> inflight_;  // submitted to the ring, not yet completed
  std::thread thread_;
};

}  // namespace internal

absl::StatusOr<Ring> Ring::Create(unsigned entries) {
  auto ring = std::make_unique<io_uring>();
  const int rc = io_uring_queue_init(entries, ring.get(), 0);
  if (rc < 0) {
    return absl::Status(absl::ErrnoToStatusCode(-rc),
                        absl::StrCat("io_uring_queue_init(", entries, "): ", std::strerror(-rc)));
  }
  Ring r;
  r.ring_ = ring.release();
  return r;
}

Ring::Ring(Ring&& other) noexcept : ring_(std::exchange(other.ring_, nullptr)) {}

Ring& Ring::operator=(Ring&& other) noexcept {
  if (this != &other) {
    this->~Ring();
    ring_ = std::exchange(other.ring_, nullptr);
  }
  return *this;
}

Ring::~Ring() {
  if (ring_ == nullptr) return;
  io_uring_queue_exit(ring_);
  delete ring_;
  ring_ = nullptr;
}

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
  std::vector<Ring> rings(options.thread_count);
  for (Ring& r : rings) {
    if (!ring) break;
    absl::StatusOr<Ring> made = Ring::Create(static_cast<unsigned>(options.queue_depth));
    if (made.ok()) {
      r = std::move(*made);
    } else if (made.status().code() == absl::StatusCode::kPermissionDenied ||
               made.status().code() == absl::StatusCode::kUnimplemented) {
      // Not available here at all: every worker uses pread/pwrite, so the workers behave alike.
      ring = false;
      e->fallback_reason_ = absl::StrCat("io_uring unavailable (", made.status().message(), ")");
    } else {
      return made.status();
    }
  }
  for (Ring& r : rings) {
    e->workers_.push_back(std::make_unique<internal::Worker>(options, ring ? std::move(r) : Ring()));
  }
  bool fixed = ring;
  for (auto& w : e->workers_) fixed = fixed && w->InitFixedTable(kFixedSlots);
  {
    absl::MutexLock lock(&e->regions_mu_);
    e->slot_used_.assign(fixed ? kFixedSlots : 0, false);
  }
  for (auto& w : e->workers_) w->Start();
  return e;
}

IoEngine::IoEngine(const AioOptions& options) : options_(options) {}

bool IoEngine::RegisterBuffer(void* data, std::size_t len) {
  // One slot per GiB (the kernel's limit for a fixed buffer).
  constexpr std::size_t kMaxFixed = std::size_t{1} << 30;
  const auto begin = reinterpret_cast<std::uintptr_t>(data);
  absl::MutexLock lock(&regions_mu_);
  std::vector<int> slots;
  for (std::size_t at = 0; at < len; at += kMaxFixed) {
    int free = -1;
    for (std::size_t i = 0; i < slot_used_.size(); ++i) {
      if (!slot_used_[i] && std::find(slots.begin(), slots.end(), static_cast<int>(i)) == slots.end()) {
        free = static_cast<int>(i);
        break;
      }
    }
    if (free < 0) return false;
    slots.push_back(free);
  }
  std::vector<Region> added;
  for (std::size_t k = 0; k < slots.size(); ++k) {
    const std::size_t at = k * kMaxFixed;
    iovec iov{static_cast<std::uint8_t*>(data) + at, std::min(kMaxFixed, len - at)};
    for (auto& w : workers_) {
      if (!w->SetFixed(slots[k], iov)) {
        // Undo what this call installed; the region stays unregistered.
        const iovec none{nullptr, 0};
        for (auto& u : workers_) {
          for (int s : slots) (void)u->SetFixed(s, none);
        }
        return false;
      }
    }
    added.push_back({begin + at, begin + at + iov.iov_len, slots[k]});
  }
  for (const Region& r : added) {
    slot_used_[r.index] = true;
    regions_.push_back(r);
  }
  return true;
}

void IoEngine::UnregisterBuffer(void* data) {
  const auto begin = reinterpret_cast<std::uintptr_t>(data);
  absl::MutexLock lock(&regions_mu_);
  // The region's slots: those starting at `data` and the 1 GiB pieces following it.
  std::uintptr_t next = begin;
  for (bool found = true; found;) {
    found = false;
    for (auto it = regions_.begin(); it != regions_.end(); ++it) {
      if (it->begin != next) continue;
      const iovec none{nullptr, 0};
      for (auto& w : workers_) (void)w->SetFixed(it->index, none);
      slot_used_[it->index] = false;
      next = it->end;
      regions_.erase(it);
      found = true;
      break;
    }
  }
}

int IoEngine::FixedIndex(const std::uint8_t* p, std::size_t len) {
  const auto b = reinterpret_cast<std::uintptr_t>(p);
  absl::MutexLock lock(&regions_mu_);
  for (const Region& r : regions_) {
    if (b >= r.begin && b + len <= r.end) return r.index;
  }
  return -1;
}

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
  bool none_registered;
  {
    absl::MutexLock lock(&regions_mu_);
    none_registered = regions_.empty();
  }
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
    if (!none_registered) p->fixed = FixedIndex(p->buf, p->len);
    workers_[w % workers_.size()]->Push(std::move(p));
  }
  return handle;
}

}  // namespace zt::io
