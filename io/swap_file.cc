#include "io/swap_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "io/aligned_buffer.h"

namespace zt::io {
namespace {

// Paths to remove at exit or on a fatal signal.  The signal handler may only touch
// async-signal-safe state: fixed slots, atomics and unlink(2).
constexpr int kSlots = 256;
constexpr std::size_t kMaxPath = 4096;

struct Slot {
  std::atomic<int> state{0};  // 0 free, 1 being written, 2 registered
  char path[kMaxPath];
};

Slot g_slots[kSlots];
struct sigaction g_previous[2];
constexpr int kSignals[2] = {SIGINT, SIGTERM};

void RemoveAll() {
  for (Slot& s : g_slots) {
    int registered = 2;
    if (s.state.compare_exchange_strong(registered, 1)) {
      ::unlink(s.path);
      s.state.store(0);
    }
  }
}

void OnSignal(int sig) {
  RemoveAll();
  for (int i = 0; i < 2; ++i) {
    if (kSignals[i] == sig) ::sigaction(sig, &g_previous[i], nullptr);
  }
  ::raise(sig);  // runs once we return: the previous handler, or the default action
}

void InstallOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    std::atexit(RemoveAll);
    for (int i = 0; i < 2; ++i) {
      struct sigaction now;
      std::memset(&now, 0, sizeof(now));
      ::sigaction(kSignals[i], nullptr, &g_previous[i]);
      if (g_previous[i].sa_handler == SIG_IGN) continue;  // a process that ignores it keeps doing so
      now.sa_handler = OnSignal;
      sigemptyset(&now.sa_mask);
      now.sa_flags = SA_RESETHAND;
      ::sigaction(kSignals[i], &now, nullptr);
    }
  });
}

absl::StatusOr<int> Register(const std::string& path) {
  if (path.size() >= kMaxPath) return absl::InvalidArgumentError(absl::StrCat("swap file path too long: ", path));
  InstallOnce();
  for (int i = 0; i < kSlots; ++i) {
    int free = 0;
    if (g_slots[i].state.compare_exchange_strong(free, 1)) {
      std::memcpy(g_slots[i].path, path.c_str(), path.size() + 1);
      g_slots[i].state.store(2);
      return i;
    }
  }
  return absl::ResourceExhaustedError(absl::StrCat("more than ", kSlots, " swap files open; cannot register ", path));
}

// Unregisters slot `i`; false when a signal handler or exit already took it.
bool Unregister(int i) {
  int registered = 2;
  if (!g_slots[i].state.compare_exchange_strong(registered, 1)) return false;
  g_slots[i].state.store(0);
  return true;
}

std::string Bytes(std::uint64_t b) { return absl::StrFormat("%.2f GB (%d bytes)", b / 1e9, b); }

}  // namespace

absl::StatusOr<SwapDirInfo> PreflightSwapDir(const std::string& dir, std::uint64_t bytes_needed,
                                             const std::string& key) {
  const std::string where = absl::StrCat(key, " ", dir);
  if (dir.empty()) return absl::InvalidArgumentError(absl::StrCat(key, " is empty"));
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    return absl::Status(absl::ErrnoToStatusCode(errno), absl::StrCat(where, ": ", std::strerror(errno)));
  }
  if (!S_ISDIR(st.st_mode)) return absl::FailedPreconditionError(absl::StrCat(where, " is not a directory"));

  // Writable, and does O_DIRECT work there?  Try both on a probe file.
  std::string probe = absl::StrCat(dir, "/.zerotrain_probe_XXXXXX");
  const int fd = ::mkstemp(probe.data());
  if (fd < 0) {
    return absl::Status(
        absl::ErrnoToStatusCode(errno),
        absl::StrCat(where, " is not writable (cannot create a file there: ", std::strerror(errno), ")"));
  }
  ::close(fd);
  SwapDirInfo info;
  const int direct = ::open(probe.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC);
  info.direct_io = direct >= 0;
  if (direct >= 0) ::close(direct);
  ::unlink(probe.c_str());

  struct statvfs vfs;
  if (::statvfs(dir.c_str(), &vfs) != 0) {
    return absl::Status(absl::ErrnoToStatusCode(errno), absl::StrCat(where, ": statvfs: ", std::strerror(errno)));
  }
  info.free_bytes = static_cast<std::uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  if (info.free_bytes < bytes_needed) {
    return absl::ResourceExhaustedError(
        absl::StrCat(where, " has ", Bytes(info.free_bytes), " free; the swap files need ", Bytes(bytes_needed)));
  }
  return info;
}

absl::StatusOr<SwapFile> SwapFile::Create(const std::string& dir, const std::string& name, std::uint64_t bytes) {
  SwapFile f;
  const std::string path = absl::StrCat(dir, "/", name);
  auto slot = Register(path);
  if (!slot.ok()) return slot.status();
  f.slot_ = *slot;  // from here on the destructor removes the file
  auto file = File::Open(path, File::kCreate, /*direct=*/true);
  if (!file.ok()) return file.status();
  f.file_ = std::move(*file);
  f.size_ = AlignUp(bytes);
  if (absl::Status s = f.file_.Allocate(f.size_); !s.ok()) return s;
  return f;
}

SwapFile::SwapFile(SwapFile&& other) noexcept
    : file_(std::move(other.file_)), size_(std::exchange(other.size_, 0)), slot_(std::exchange(other.slot_, -1)) {}

SwapFile& SwapFile::operator=(SwapFile&& other) noexcept {
  if (this != &other) {
    Remove();
    file_ = std::move(other.file_);
    size_ = std::exchange(other.size_, 0);
    slot_ = std::exchange(other.slot_, -1);
  }
  return *this;
}

SwapFile::~SwapFile() { Remove(); }

void SwapFile::Remove() {
  if (slot_ < 0) return;
  const std::string path(g_slots[slot_].path);
  (void)file_.Close();
  if (Unregister(slot_)) ::unlink(path.c_str());
  slot_ = -1;
}

}  // namespace zt::io
