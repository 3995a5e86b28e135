#include "io/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace zt::io {

absl::Status ErrnoError(int err, const std::string& what, const std::string& path) {
  return absl::Status(absl::ErrnoToStatusCode(err), absl::StrCat(what, " ", path, ": ", std::strerror(err)));
}

absl::StatusOr<File> File::Open(const std::string& path, Mode mode, bool direct) {
  int flags = O_CLOEXEC;
  switch (mode) {
    case kRead:
      flags |= O_RDONLY;
      break;
    case kReadWrite:
      flags |= O_RDWR;
      break;
    case kCreate:
      flags |= O_RDWR | O_CREAT | O_TRUNC;
      break;
  }
  int fd = -1;
  if (direct) {
    do fd = ::open(path.c_str(), flags | O_DIRECT, 0600);
    while (fd < 0 && errno == EINTR);
    if (fd >= 0) return File(fd, path, /*direct=*/true);
    if (errno != EINVAL) return ErrnoError(errno, "cannot open", path);
    // EINVAL: this filesystem has no O_DIRECT; fall through to buffered I/O.
  }
  do fd = ::open(path.c_str(), flags, 0600);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return ErrnoError(errno, "cannot open", path);
  return File(fd, path, /*direct=*/false);
}

File::File(File&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)), direct_(other.direct_) {}

File& File::operator=(File&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
    direct_ = other.direct_;
  }
  return *this;
}

File::~File() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status File::Allocate(std::uint64_t bytes) {
  if (bytes == 0) return absl::OkStatus();
  const int rc = ::posix_fallocate(fd_, 0, static_cast<off_t>(bytes));
  if (rc == 0) return absl::OkStatus();
  if (rc != EOPNOTSUPP && rc != EINVAL) {
    return ErrnoError(rc, absl::StrCat("cannot reserve ", bytes, " bytes for"), path_);
  }
  if (::ftruncate(fd_, static_cast<off_t>(bytes)) != 0) {
    return ErrnoError(errno, absl::StrCat("cannot size to ", bytes, " bytes"), path_);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::uint64_t> File::Size() const {
  struct stat st;
  if (::fstat(fd_, &st) != 0) return ErrnoError(errno, "cannot stat", path_);
  return static_cast<std::uint64_t>(st.st_size);
}

absl::Status File::Close() {
  if (fd_ < 0) return absl::OkStatus();
  const int fd = std::exchange(fd_, -1);
  if (::close(fd) != 0) return ErrnoError(errno, "cannot close", path_);
  return absl::OkStatus();
}

}  // namespace zt::io
