// Swap files for ZeRO-Infinity, and the checks on their directory before training starts.
//
//   ASSIGN_OR_RETURN(zt::io::SwapDirInfo dir, zt::io::PreflightSwapDir(path, bytes, "offload_optimizer.nvme_path"));
//   ASSIGN_OR_RETURN(zt::io::SwapFile f, zt::io::SwapFile::Create(path, "rank0_optimizer.swp", bytes));
//   engine->Write(f.file(), buf, len, offset);   // io_engine.h
//
// A SwapFile is removed when it is destroyed, when the process exits, and when SIGINT or SIGTERM
// ends it (the handler removes the registered files, then hands the signal to whatever handled
// it before, or to the default action).
#ifndef ZEROTRAIN_IO_SWAP_FILE_H_
#define ZEROTRAIN_IO_SWAP_FILE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "io/file.h"

namespace zt::io {

struct SwapDirInfo {
  bool direct_io = false;        // O_DIRECT works there (else buffered I/O through the page cache)
  std::uint64_t free_bytes = 0;  // available to this user
};

// `dir` exists, is a directory, a file can be created in it, and it has `bytes_needed` free;
// says whether O_DIRECT works there.  `key` is the config entry `dir` came from (named in the
// errors).
[[nodiscard]] absl::StatusOr<SwapDirInfo> PreflightSwapDir(const std::string& dir, std::uint64_t bytes_needed,
                                                           const std::string& key);

class SwapFile {
 public:
  // Creates dir/name (replacing a stale one), O_DIRECT where the filesystem allows, with
  // AlignUp(bytes) reserved on disk.
  [[nodiscard]] static absl::StatusOr<SwapFile> Create(const std::string& dir, const std::string& name,
                                                       std::uint64_t bytes);

  SwapFile() = default;
  SwapFile(SwapFile&& other) noexcept;
  SwapFile& operator=(SwapFile&& other) noexcept;
  SwapFile(const SwapFile&) = delete;
  SwapFile& operator=(const SwapFile&) = delete;
  ~SwapFile();  // closes and removes the file

  const File& file() const { return file_; }
  const std::string& path() const { return file_.path(); }
  std::uint64_t size() const { return size_; }

 private:
  void Remove();

  File file_;
  std::uint64_t size_ = 0;
  int slot_ = -1;  // in the removal registry
};

}  // namespace zt::io

#endif  // ZEROTRAIN_IO_SWAP_FILE_H_
