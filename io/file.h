// A move-only file descriptor opened for direct (O_DIRECT) I/O where the filesystem allows it.
//
//   ASSIGN_OR_RETURN(zt::io::File f, zt::io::File::Open(path, zt::io::File::kCreate, /*direct=*/true));
//   RETURN_IF_ERROR(f.Allocate(bytes));          // reserves the blocks: ENOSPC shows here, not mid-run
//   if (!f.direct()) { ... the filesystem (tmpfs, overlayfs) refused O_DIRECT: buffered I/O ... }
//
// Every error names the path and what was asked of it.
#ifndef ZEROTRAIN_IO_FILE_H_
#define ZEROTRAIN_IO_FILE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace zt::io {

class File {
 public:
  enum Mode {
    kRead,       // existing file, read only
    kReadWrite,  // existing file
    kCreate,     // created or truncated, read and write
  };
  // direct: ask for O_DIRECT; where the filesystem refuses it (EINVAL) the file is opened
  // buffered and direct() says so.
  [[nodiscard]] static absl::StatusOr<File> Open(const std::string& path, Mode mode, bool direct);

  File() = default;
  File(File&& other) noexcept;
  File& operator=(File&& other) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  ~File();  // closes (errors of close are lost here; Close() reports them)

  // Reserves [0, bytes) on disk (fallocate; ftruncate where the filesystem cannot).
  [[nodiscard]] absl::Status Allocate(std::uint64_t bytes);
  [[nodiscard]] absl::StatusOr<std::uint64_t> Size() const;
  [[nodiscard]] absl::Status Close();

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  bool direct() const { return direct_; }
  bool is_open() const { return fd_ >= 0; }

 private:
  File(int fd, std::string path, bool direct) : fd_(fd), path_(std::move(path)), direct_(direct) {}

  int fd_ = -1;
  std::string path_;
  bool direct_ = false;
};

// "<what> <path>: <strerror(err)>" as an absl::Status with the code errno maps to.
absl::Status ErrnoError(int err, const std::string& what, const std::string& path);

}  // namespace zt::io

#endif  // ZEROTRAIN_IO_FILE_H_
