// Checkpoint directories, crash-safe: the layout DeepSpeed writes, a manifest with a CRC-32C
// per file, and a reader that checks every byte before it hands anything out.
//
//   SAVE_DIR/
//     latest                      "global_step200" (DeepSpeed's pointer file, no newline)
//     global_step100/  global_step200/
//       <the engine's files>      e.g. one shard per rank
//       manifest.crc32c           "<crc32c as 8 hex digits> <size>\n" of manifest.pb
//       manifest.pb               a zt.ckpt.Manifest (core/ckpt/manifest.proto), written last
//
// Writing (one writer per SAVE_DIR at a time):
//
//   zt::ckpt::CheckpointWriterOptions options;
//   options.world_size = 2;
//   options.zero_stage = 2;
//   ASSIGN_OR_RETURN(zt::ckpt::CheckpointWriter w, zt::ckpt::CheckpointWriter::Begin(save_dir, step, options));
//   RETURN_IF_ERROR(w.AddFile("model_states.bin", bytes, /*rank=*/-1));
//   ASSIGN_OR_RETURN(zt::ckpt::FileSink shard, w.OpenFile("optim_rank1.bin", /*rank=*/1));
//   for (...) RETURN_IF_ERROR(shard.Append(chunk));     // a shard need not be in memory whole
//   RETURN_IF_ERROR(w.FinishFile(std::move(shard)));
//   RETURN_IF_ERROR(w.AddTensor(entry));                 // where a tensor's bytes are
//   w.SetMeta("engine_config", json);
//   RETURN_IF_ERROR(w.Commit());
//   RETURN_IF_ERROR(zt::ckpt::RotateCheckpoints(save_dir, /*keep=*/3));
//
// Reading:
//
//   ASSIGN_OR_RETURN(zt::ckpt::CheckpointReader r, zt::ckpt::OpenCheckpoint(save_dir));  // or a step dir
//   ASSIGN_OR_RETURN(std::string bytes, r.ReadFile("model_states.bin"));
//
// Crash safety.  The step directory is built as global_stepN.tmp-<pid>; every file in it is
// written to a temporary name, fsynced, renamed and the directory fsynced; the manifest goes in
// last; then the directory is renamed to global_stepN (atomic) and only then is `latest` replaced
// (temporary file, fsync, rename, directory fsync).  A crash at any point leaves `latest` naming
// the previous complete checkpoint or the new complete one, plus *.tmp-* debris that the next
// Begin or RotateCheckpoints removes.  Re-saving a step that exists swaps the directories with
// renameat2(RENAME_EXCHANGE) so global_stepN is always complete (on filesystems without it, NFS,
// there is a moment between two renames when it is absent; the next writer puts the old one back
// if the process died there).
//
// Errors.  Every message names the file (and the `latest` that led to it).  The codes tell a
// resuming job what to do:
//   kNotFound   nothing checkpoint-like at the path (no such directory, no `latest`, no
//               manifest): start fresh;
//   kDataLoss   a checkpoint is there but broken (a checksum or size mismatch, a missing file,
//               `latest` naming a missing or incomplete directory, an inconsistent manifest):
//               do not start fresh over it;
//   kInvalidArgument / kAlreadyExists / kFailedPrecondition  a caller's mistake while writing.
#ifndef ZEROTRAIN_CORE_CKPT_CHECKPOINT_DIR_H_
#define ZEROTRAIN_CORE_CKPT_CHECKPOINT_DIR_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/ckpt/manifest.pb.h"

namespace zt::ckpt {

inline constexpr uint32_t kManifestFormatVersion = 1;
inline constexpr char kManifestFile[] = "manifest.pb";
inline constexpr char kManifestCrcFile[] = "manifest.crc32c";
inline constexpr char kLatestFile[] = "latest";

// "global_step" + step, the step directory's name (DeepSpeed's default tag).
std::string StepDirName(int64_t step);
// The step of a name "global_stepN" (N decimal, no sign, no leading zeros but "0"); nullopt else.
std::optional<int64_t> ParseStepDirName(absl::string_view name);

class CheckpointReader;
struct OpenCheckpointOptions;
[[nodiscard]] absl::StatusOr<CheckpointReader> OpenCheckpoint(const std::string& path);  // below
[[nodiscard]] absl::StatusOr<CheckpointReader> OpenCheckpoint(const std::string& path,
                                                              const OpenCheckpointOptions& options);

struct CheckpointWriterOptions {
  // Recorded in the manifest.  File and tensor ranks lie in [-1, world_size); -1 is shared.
  int32_t world_size = 1;
  int32_t zero_stage = 0;  // 0..3
  // Point SAVE_DIR/latest at this step once it is complete (DeepSpeed's save_latest).
  bool update_latest = true;
  // Called before every step that changes the disk — create, write, fsync, rename, mkdir,
  // remove — with what it is about to do ("rename /s/global_step2.tmp-7 -> /s/global_step2").
  // For crash tests, which kill the process there; production leaves it empty.
  std::function<void(absl::string_view step)> before_each_write_step;
};

// A file of a checkpoint being written in pieces, from CheckpointWriter::OpenFile.  It may be
// filled on another thread; hand it back to the writer's FinishFile.  Dropped unfinished, it
// closes and removes its temporary file.
class FileSink {
 public:
  FileSink(FileSink&& other) noexcept;
  FileSink& operator=(FileSink&& other) noexcept;
  FileSink(const FileSink&) = delete;
  FileSink& operator=(const FileSink&) = delete;
  ~FileSink();

  // Appends to the file; after a failure every later call (and FinishFile) fails too.
  [[nodiscard]] absl::Status Append(absl::string_view bytes);

  const std::string& name() const { return name_; }
  uint64_t size() const { return size_; }
  uint32_t crc32c() const { return crc_; }

 private:
  friend class CheckpointWriter;
  friend absl::StatusOr<FileSink> OpenStagedFile(const std::string&, const std::string&, int32_t,
                                                 std::function<void(absl::string_view)>);
  friend absl::StatusOr<FileEntry> FinishStagedFile(FileSink file);
  FileSink() = default;
  void Discard();

  int fd_ = -1;
  std::string dir_;       // the staging directory
  std::string name_;      // final name in it
  std::string tmp_path_;  // where the bytes go until FinishFile
  int32_t rank_ = -1;
  uint64_t size_ = 0;
  uint32_t crc_ = 0;
  absl::Status error_;
  std::function<void(absl::string_view)> before_each_write_step_;
};

// Writes one checkpoint step.  Not thread-safe (FileSinks may be filled concurrently).
class CheckpointWriter {
 public:
  // Creates SAVE_DIR (mkdir -p) and the staging directory global_stepN.tmp-<pid>, removing the
  // *.tmp-* debris of earlier writers.  A step whose directory exists is replaced at Commit;
  // kFailedPrecondition if global_stepN exists but is not a complete checkpoint.
  [[nodiscard]] static absl::StatusOr<CheckpointWriter> Begin(const std::string& save_dir, int64_t step,
                                                              CheckpointWriterOptions options = {});

  CheckpointWriter(CheckpointWriter&& other) noexcept;
  CheckpointWriter& operator=(CheckpointWriter&& other) noexcept;
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;
  // Without Commit or Abort: warns and leaves the staging directory for the next Begin.
  ~CheckpointWriter();

  // Writes `name` (one path component, not a manifest name, without ".tmp-") crash-safely and
  // records its size and CRC-32C.  kAlreadyExists for a name written or being written already.
  [[nodiscard]] absl::Status AddFile(const std::string& name, absl::string_view bytes, int32_t rank);
  // The streaming form: Append to the sink, then FinishFile.
  [[nodiscard]] absl::StatusOr<FileSink> OpenFile(const std::string& name, int32_t rank);
  [[nodiscard]] absl::Status FinishFile(FileSink file);
  // Records a file another process (a rank of a multi-process job) wrote into staging_dir()
  // with OpenStagedFile/FinishStagedFile; its size is checked against the disk now.
  [[nodiscard]] absl::Status AddWrittenFile(const FileEntry& file);

  // Records where a tensor's bytes are.  Checked now on its own (dtype, shape, slice, nbytes,
  // rank) and at Commit against the files and the other entries of its name.
  [[nodiscard]] absl::Status AddTensor(TensorEntry tensor);
  void SetMeta(const std::string& key, const std::string& value);

  // Writes the manifest, renames the step directory into place, updates `latest`.  A manifest
  // the writer cannot vouch for (a tensor in a file never added, slices that leave a gap) is
  // kInvalidArgument and leaves the writer open to be put right; after anything else it is
  // finished.
  [[nodiscard]] absl::Status Commit();
  // Removes the staging directory; the writer is finished.
  [[nodiscard]] absl::Status Abort();

  const std::string& save_dir() const { return save_dir_; }
  const std::string& staging_dir() const { return staging_dir_; }
  const std::string& step_dir() const { return step_dir_; }  // where Commit puts it
  const Manifest& manifest() const { return manifest_; }     // so far

 private:
  CheckpointWriter() = default;
  void Point(absl::string_view what, const std::string& path, const std::string& to = "") const;
  absl::Status CheckActive() const;
  void WarnIfAbandoned() const;

  std::string save_dir_;
  std::string staging_dir_;
  std::string step_dir_;
  int64_t step_ = 0;
  CheckpointWriterOptions options_;
  Manifest manifest_;
  bool active_ = false;
};

// Several processes writing one checkpoint (a job's ranks): rank 0 Begins and tells the others
// its process id; each writes its own files into the staging directory with these, crash-safely
// as FileSink does, and sends rank 0 the FileEntry, which it records with AddWrittenFile before
// Commit.
std::string StagingDirName(const std::string& save_dir, int64_t step, int64_t writer_pid);
[[nodiscard]] absl::StatusOr<FileSink> OpenStagedFile(
    const std::string& staging_dir, const std::string& name, int32_t rank,
    std::function<void(absl::string_view step)> before_each_write_step = nullptr);
[[nodiscard]] absl::StatusOr<FileEntry> FinishStagedFile(FileSink file);

// A checkpoint step whose manifest and files have all been checked.
class CheckpointReader {
 public:
  const std::string& step_dir() const { return step_dir_; }
  const Manifest& manifest() const { return manifest_; }
  int64_t global_step() const { return manifest_.global_step(); }

  // Checks every file's size and CRC-32C against the manifest again (OpenCheckpoint already
  // did); kDataLoss naming each bad file.
  [[nodiscard]] absl::Status Verify() const;
  // The same for one file: kNotFound if the manifest lists no such file, else kDataLoss naming it.
  [[nodiscard]] absl::Status VerifyFile(absl::string_view name) const;

  // nullptr when the manifest has no such file.
  const FileEntry* FindFile(absl::string_view name) const;
  // The entries of a tensor (one, or a slice per rank), in the manifest's order.
  std::vector<const TensorEntry*> FindTensor(absl::string_view name) const;

  // A file's bytes, its size and CRC-32C checked (again) on the way.
  [[nodiscard]] absl::StatusOr<std::string> ReadFile(absl::string_view name) const;
  // Streams a file to `consume` in chunks of up to chunk_bytes; the size and CRC-32C are checked
  // at the end, so on kDataLoss the caller must drop what it was given.
  [[nodiscard]] absl::Status ReadFileInChunks(absl::string_view name, std::size_t chunk_bytes,
                                              const std::function<absl::Status(absl::string_view)>& consume) const;
  // The bytes of one tensor entry (a range of its file, covered by the check at open: a range
  // has no checksum of its own).
  [[nodiscard]] absl::StatusOr<std::string> ReadTensorBytes(const TensorEntry& tensor) const;
  // Bytes [offset, offset + nbytes) of a file the manifest lists (not checksummed on their own:
  // VerifyFile, or an OpenCheckpoint that verified files, vouches for them).
  [[nodiscard]] absl::StatusOr<std::string> ReadFileRange(absl::string_view name, uint64_t offset,
                                                          uint64_t nbytes) const;

 private:
  friend absl::StatusOr<CheckpointReader> OpenCheckpoint(const std::string& path, const OpenCheckpointOptions& options);
  CheckpointReader() = default;
  // `expected_step`: the step the directory's name or `latest` promises; `via`: the `latest`
  // file that led here ("" if none), named in errors.
  static absl::StatusOr<CheckpointReader> OpenStepDir(const std::string& dir, std::optional<int64_t> expected_step,
                                                      const std::string& via, bool verify_files);

  std::string step_dir_;
  Manifest manifest_;
  std::map<std::string, int, std::less<>> file_index_;  // name -> manifest_.files(i)
};

struct OpenCheckpointOptions {
  // false: only the manifest is checked at open; the caller runs VerifyFile on each file it
  // reads before using its bytes (a rank of a job reads only its own files).
  bool verify_files = true;
};

// `path` is a step directory, or a save directory whose `latest` names one.  Checks the
// manifest's own checksum, then the manifest's consistency, then every file's size and CRC-32C
// before returning: a truncated, bit-flipped or missing file is kDataLoss naming it.
[[nodiscard]] absl::StatusOr<CheckpointReader> OpenCheckpoint(const std::string& path,
                                                              const OpenCheckpointOptions& options);

// The steps of the complete (manifest present) global_stepN directories in save_dir, ascending.
// Their files are not checked.  kNotFound if save_dir does not exist.
[[nodiscard]] absl::StatusOr<std::vector<int64_t>> ListCheckpointSteps(const std::string& save_dir);

// save_total_limit: keeps the `keep` (>= 1) newest complete step directories and the one
// `latest` names, deletes the other complete ones (each renamed to a *.tmp-* name first, so a
// crash mid-delete never leaves a global_stepN with files missing), and removes *.tmp-* debris.
// kDataLoss, deleting nothing, if `latest` exists but does not hold a step directory's name.
// Not to be run while a writer is active on the same save_dir.
[[nodiscard]] absl::Status RotateCheckpoints(const std::string& save_dir, int keep);

}  // namespace zt::ckpt

#endif  // ZEROTRAIN_CORE_CKPT_CHECKPOINT_DIR_H_
