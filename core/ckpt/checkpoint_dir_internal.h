// Helpers shared by checkpoint_dir.cc (names, listing, rotation, manifest checks),
// checkpoint_writer.cc and checkpoint_reader.cc; private to the checkpoint_dir target.
#ifndef ZEROTRAIN_CORE_CKPT_CHECKPOINT_DIR_INTERNAL_H_
#define ZEROTRAIN_CORE_CKPT_CHECKPOINT_DIR_INTERNAL_H_

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/ckpt/checkpoint_dir.h"
#include "core/ckpt/manifest.pb.h"

namespace zt::ckpt {

using Hook = std::function<void(absl::string_view)>;

// Marks every temporary name the writer makes (files in a step directory, the step directory
// while it is built, `latest` while it is replaced); anything called global_step*.tmp-* or
// latest*.tmp-* in a save directory is a dead writer's debris.
inline constexpr char kTmpMarker[] = ".tmp-";
inline constexpr char kStepPrefix[] = "global_step";
inline constexpr char kOldMarker[] = ".old.tmp-";  // a replaced step directory, see Commit
inline constexpr std::size_t kIoChunk = std::size_t{1} << 20;
inline constexpr std::size_t kMaxWrite = std::size_t{1} << 30;  // Linux writes at most ~2 GiB per call
inline constexpr unsigned kRenameExchange = 1u << 1;            // RENAME_EXCHANGE of <linux/fs.h>

std::string JoinPath(const std::string& dir, absl::string_view name);
std::string TmpSuffix();  // kTmpMarker + this process's id
std::string Hex(uint32_t v);
std::string StripTrailingSlashes(std::string path);
absl::string_view Basename(absl::string_view path);
absl::Status ErrnoError(int err, absl::string_view what, const std::string& path);

// Closes on scope exit.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// Tells the hook (crash tests) what is about to happen: "what path[ -> to]".
void RunHook(const Hook& hook, absl::string_view what, const std::string& path, const std::string& to = "");
// Makes a rename or create inside `dir` durable.
absl::Status FsyncDir(const std::string& dir, const Hook& hook);
absl::Status WriteAll(int fd, absl::string_view bytes, const std::string& path, const Hook& hook);
// The second half of every file write: fsync and close `fd` (written at tmp_path), rename it to
// dir/name and fsync dir.  Closes fd whatever happens; the caller removes tmp_path on failure.
absl::Status SyncAndRename(int fd, const std::string& tmp_path, const std::string& dir, absl::string_view name,
                           const Hook& hook);
// dir/name replaced by `bytes` crash-safely: readers see the old file or the new one.
absl::Status WriteFileDurably(const std::string& dir, absl::string_view name, absl::string_view bytes,
                              const Hook& hook);

bool IsCompleteStepDir(const std::string& dir);
absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir);  // sorted, without . and ..
// Removes the *.tmp-* leftovers of dead writers in save_dir (restoring a lone replaced step).
absl::Status RemoveDebris(const std::string& save_dir, const Hook& hook);

// Why `name` cannot be a checkpoint file's name; "" if it can.
std::string BadNameReason(absl::string_view name);
std::string TensorLabel(const TensorEntry& t);
// What is wrong with one tensor entry on its own; "" if nothing.
std::string TensorProblem(const TensorEntry& t, int32_t world_size);
// What is wrong with a whole manifest, the format version aside; "" if nothing.  A reader can
// trust a manifest that passes: file names are safe to join to the directory, every tensor lies
// inside its file, and a tensor's entries agree and cover it exactly once.
std::string ManifestProblem(const Manifest& m);

// manifest.crc32c's one line, "<crc32c as 8 hex digits> <size>\n", and its exact parser.
std::string ManifestCrcLine(uint32_t crc, uint64_t size);
bool ParseManifestCrcLine(absl::string_view text, uint32_t* crc, uint64_t* size);

struct Latest {
  std::string path;  // SAVE_DIR/latest
  std::string tag;   // global_stepN
  int64_t step = 0;
};

absl::StatusOr<Latest> ReadLatest(const std::string& save_dir);

}  // namespace zt::ckpt

#endif  // ZEROTRAIN_CORE_CKPT_CHECKPOINT_DIR_INTERNAL_H_
