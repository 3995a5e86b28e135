// CheckpointReader and OpenCheckpoint.
#include "core/ckpt/checkpoint_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/ckpt/checkpoint_dir_internal.h"
#include "core/util/crc32c.h"
#include "core/util/file_util.h"
#include "core/util/logging.h"
#include "core/util/status_macros.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace zt::ckpt {

// ---- CheckpointReader ----------------------------------------------------------------------

absl::StatusOr<CheckpointReader> CheckpointReader::OpenStepDir(const std::string& dir,
                                                               std::optional<int64_t> expected_step,
                                                               const std::string& via, bool verify_files) {
  const std::string context = via.empty() ? "" : absl::StrCat(" (", via, " names this checkpoint)");
  const auto lost = [&context](absl::string_view message) {
    return absl::DataLossError(absl::StrCat(message, context));
  };
  const auto with_context = [&context](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat(s.message(), context));
  };
  const std::string crc_path = JoinPath(dir, kManifestCrcFile);
  const std::string manifest_path = JoinPath(dir, kManifestFile);

  absl::StatusOr<std::string> crc_text = ReadFileToString(crc_path);
  if (absl::IsNotFound(crc_text.status())) {
    return lost(absl::StrCat(dir, ": an incomplete checkpoint: ", crc_path, " is missing"));
  }
  if (!crc_text.ok()) return with_context(crc_text.status());
  uint32_t want_crc = 0;
  uint64_t want_size = 0;
  if (!ParseManifestCrcLine(*crc_text, &want_crc, &want_size)) {
    return lost(absl::StrCat(crc_path, ": holds \"", absl::CHexEscape(crc_text->substr(0, 64)),
                             "\", not \"<8 hex digits> <size>\\n\""));
  }
  absl::StatusOr<std::string> bytes = ReadFileToString(manifest_path);
  if (absl::IsNotFound(bytes.status())) {
    return lost(absl::StrCat(dir, ": an incomplete checkpoint: ", manifest_path, " is missing"));
  }
  if (!bytes.ok()) return with_context(bytes.status());
  if (bytes->size() != want_size) {
    return lost(absl::StrCat(manifest_path, ": ", bytes->size(), " bytes, but ", crc_path, " says ", want_size));
  }
  if (const uint32_t crc = crc32c::Value(*bytes); crc != want_crc) {
    return lost(absl::StrCat(manifest_path, ": crc32c ", Hex(crc), ", but ", crc_path, " says ", Hex(want_crc),
                             ": the manifest is corrupt"));
  }
  CheckpointReader reader;
  reader.step_dir_ = dir;
  if (!reader.manifest_.ParseFromString(*bytes)) {
    return lost(absl::StrCat(manifest_path, ": its checksum matches, but it is not a zt.ckpt.Manifest"));
  }
  const Manifest& m = reader.manifest_;
  if (m.format_version() == 0) return lost(absl::StrCat(manifest_path, ": no format_version"));
  if (m.format_version() > kManifestFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(manifest_path, ": format_version ", m.format_version(),
                                                      " is newer than this reader's ", kManifestFormatVersion,
                                                      "; read it with a newer zerotrain", context));
  }
  if (const std::string why = ManifestProblem(m); !why.empty()) return lost(absl::StrCat(manifest_path, ": ", why));
  if (expected_step.has_value() && m.global_step() != *expected_step) {
    return lost(
        absl::StrCat(manifest_path, ": global_step ", m.global_step(), " in a directory for step ", *expected_step));
  }
  for (int i = 0; i < m.files_size(); ++i) reader.file_index_.emplace(m.files(i).name(), i);
  if (!verify_files) return reader;
  if (absl::Status verified = reader.Verify(); !verified.ok()) {
    return absl::Status(verified.code(), absl::StrCat(verified.message(), "; nothing was loaded", context));
  }
  return reader;
}

absl::Status CheckpointReader::Verify() const {
  std::vector<std::string> problems;
  absl::StatusCode code = absl::StatusCode::kOk;
  for (const FileEntry& f : manifest_.files()) {
    const absl::Status status =
        ReadFileInChunks(f.name(), kIoChunk, [](absl::string_view) { return absl::OkStatus(); });
    if (status.ok()) continue;
    if (code == absl::StatusCode::kOk) code = status.code();
    problems.emplace_back(status.message());
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::Status(code, absl::StrJoin(problems, "; "));
}

absl::Status CheckpointReader::VerifyFile(absl::string_view name) const {
  return ReadFileInChunks(name, kIoChunk, [](absl::string_view) { return absl::OkStatus(); });
}

const FileEntry* CheckpointReader::FindFile(absl::string_view name) const {
  const auto it = file_index_.find(name);
  return it == file_index_.end() ? nullptr : &manifest_.files(it->second);
}

std::vector<const TensorEntry*> CheckpointReader::FindTensor(absl::string_view name) const {
  std::vector<const TensorEntry*> out;
  for (const TensorEntry& t : manifest_.tensors()) {
    if (t.name() == name) out.push_back(&t);
  }
  return out;
}

absl::StatusOr<std::string> CheckpointReader::ReadFile(absl::string_view name) const {
  std::string out;
  if (const FileEntry* f = FindFile(name)) out.reserve(f->size());
  RETURN_IF_ERROR(ReadFileInChunks(name, kIoChunk, [&out](absl::string_view chunk) {
    out.append(chunk.data(), chunk.size());
    return absl::OkStatus();
  }));
  return out;
}

absl::Status CheckpointReader::ReadFileInChunks(absl::string_view name, std::size_t chunk_bytes,
                                                const std::function<absl::Status(absl::string_view)>& consume) const {
  const FileEntry* f = FindFile(name);
  if (f == nullptr) {
    return absl::NotFoundError(absl::StrCat(step_dir_, ": ", kManifestFile, " lists no file \"", name, "\""));
  }
  const std::string path = JoinPath(step_dir_, name);
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.fd < 0 && errno == ENOENT) {
    return absl::DataLossError(absl::StrCat(path, ": missing (", kManifestFile, " lists it)"));
  }
  if (fd.fd < 0) return ErrnoError(errno, "open", path);
  // No bigger than the file: Verify reads many small files with the default chunk.
  std::string buffer(std::clamp<uint64_t>(f->size(), 1, std::max<std::size_t>(chunk_bytes, 1)), '\0');
  uint64_t size = 0;
  uint32_t crc = 0;
  for (;;) {
    const ssize_t n = ::read(fd.fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::DataLossError(absl::StrCat(path, ": read failed at byte ", size, ": ", std::strerror(errno)));
    }
    if (n == 0) break;
    size += static_cast<uint64_t>(n);
    if (size > f->size()) {  // never hand out bytes the manifest does not vouch for
      return absl::DataLossError(
          absl::StrCat(path, ": longer than the ", f->size(), " bytes ", kManifestFile, " says"));
    }
    const absl::string_view chunk(buffer.data(), static_cast<std::size_t>(n));
    crc = crc32c::Extend(crc, chunk);
    RETURN_IF_ERROR(consume(chunk));
  }
  if (size != f->size()) {
    return absl::DataLossError(
        absl::StrCat(path, ": ", size, " bytes, but ", kManifestFile, " says ", f->size(), " (truncated)"));
  }
  if (crc != f->crc32c()) {
    return absl::DataLossError(absl::StrCat(path, ": crc32c ", Hex(crc), ", but ", kManifestFile, " says ",
                                            Hex(f->crc32c()), ": the file is corrupt"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> CheckpointReader::ReadTensorBytes(const TensorEntry& tensor) const {
  absl::StatusOr<std::string> bytes = ReadFileRange(tensor.file(), tensor.offset(), tensor.nbytes());
  if (absl::IsOutOfRange(bytes.status())) {
    return absl::InvalidArgumentError(
        absl::StrCat(JoinPath(step_dir_, tensor.file()), ": ", TensorLabel(tensor), " runs past the file's end"));
  }
  return bytes;
}

absl::StatusOr<std::string> CheckpointReader::ReadFileRange(absl::string_view name, uint64_t offset,
                                                            uint64_t nbytes) const {
  const FileEntry* f = FindFile(name);
  if (f == nullptr) {
    return absl::NotFoundError(absl::StrCat(step_dir_, ": ", kManifestFile, " lists no file \"", name, "\""));
  }
  const std::string path = JoinPath(step_dir_, name);
  if (offset > f->size() || nbytes > f->size() - offset) {
    return absl::OutOfRangeError(
        absl::StrCat(path, ": bytes [", offset, ", ", offset + nbytes, ") run past its ", f->size()));
  }
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.fd < 0 && errno == ENOENT) {
    return absl::DataLossError(absl::StrCat(path, ": missing (", kManifestFile, " lists it)"));
  }
  if (fd.fd < 0) return ErrnoError(errno, "open", path);
  struct stat st {};
  if (::fstat(fd.fd, &st) != 0) return ErrnoError(errno, "stat", path);
  if (static_cast<uint64_t>(st.st_size) != f->size()) {
    return absl::DataLossError(absl::StrCat(path, ": ", st.st_size, " bytes, but ", kManifestFile, " says ", f->size(),
                                            " (changed since it was checked)"));
  }
  std::string out(nbytes, '\0');
  uint64_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::pread(fd.fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::DataLossError(
          absl::StrCat(path, ": read failed at byte ", offset + done, ": ", std::strerror(errno)));
    }
    if (n == 0) return absl::DataLossError(absl::StrCat(path, ": ended at byte ", offset + done));
    done += static_cast<uint64_t>(n);
  }
  return out;
}

// ---- Opening, listing, rotating ------------------------------------------------------------

absl::StatusOr<CheckpointReader> OpenCheckpoint(const std::string& path) {
  return OpenCheckpoint(path, OpenCheckpointOptions{});
}

absl::StatusOr<CheckpointReader> OpenCheckpoint(const std::string& path_in, const OpenCheckpointOptions& options) {
  const std::string path = StripTrailingSlashes(path_in);
  if (!PathExists(path)) return absl::NotFoundError(absl::StrCat(path, ": no such checkpoint or save directory"));
  if (!IsDirectory(path)) return absl::InvalidArgumentError(absl::StrCat(path, ": not a directory"));
  if (PathExists(JoinPath(path, kLatestFile))) {
    ASSIGN_OR_RETURN(const Latest latest, ReadLatest(path));
    const std::string dir = JoinPath(path, latest.tag);
    if (!IsDirectory(dir)) {
      return absl::DataLossError(absl::StrCat(latest.path, " names ", latest.tag, ", but ", dir, " does not exist"));
    }
    return CheckpointReader::OpenStepDir(dir, latest.step, latest.path, options.verify_files);
  }
  const absl::string_view base = Basename(path);
  if (PathExists(JoinPath(path, kManifestFile)) || PathExists(JoinPath(path, kManifestCrcFile)) ||
      ParseStepDirName(base).has_value() || absl::StrContains(base, kTmpMarker)) {
    return CheckpointReader::OpenStepDir(path, ParseStepDirName(base), "", options.verify_files);
  }
  absl::StatusOr<std::vector<int64_t>> steps = ListCheckpointSteps(path);
  if (steps.ok() && !steps->empty()) {
    std::vector<std::string> names;
    for (const int64_t s : *steps) names.push_back(StepDirName(s));
    return absl::NotFoundError(absl::StrCat(path, ": no ", kLatestFile, " file; its complete checkpoints are ",
                                            absl::StrJoin(names, ", "), ": open one by its path"));
  }
  return absl::NotFoundError(absl::StrCat(path, ": neither a checkpoint step directory (no ", kManifestFile,
                                          ") nor a save directory (no ", kLatestFile, ")"));
}

}  // namespace zt::ckpt
