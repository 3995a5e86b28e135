// Writes every byte of a buffer to a file descriptor (short writes and EINTR retried), with an
// error that names the path: the one write loop of core/monitor's writers.
//
//   RETURN_IF_ERROR(internal::WriteAll(fd_, buffer_, path_));
#ifndef ZEROTRAIN_CORE_MONITOR_WRITE_ALL_H_
#define ZEROTRAIN_CORE_MONITOR_WRITE_ALL_H_

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace zt::monitor::internal {

// "<path>: write failed: <strerror>", with the errno's canonical code (ENOSPC is
// kResourceExhausted, EBADF kFailedPrecondition, ...).
inline absl::Status WriteError(const std::string& path, int err) {
  return absl::Status(absl::ErrnoToStatusCode(err), absl::StrCat(path, ": write failed: ", std::strerror(err)));
}

inline absl::Status WriteAll(int fd, absl::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return WriteError(path, errno);
    if (n == 0) return WriteError(path, EIO);  // no progress: never loop forever
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return absl::OkStatus();
}

}  // namespace zt::monitor::internal

#endif  // ZEROTRAIN_CORE_MONITOR_WRITE_ALL_H_
