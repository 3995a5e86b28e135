// CheckpointWriter, FileSink and the staged files of multi-process writers.
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

// ---- FileSink ------------------------------------------------------------------------------

FileSink::FileSink(FileSink&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      dir_(std::move(other.dir_)),
      name_(std::move(other.name_)),
      tmp_path_(std::exchange(other.tmp_path_, "")),
      rank_(other.rank_),
      size_(other.size_),
      crc_(other.crc_),
      error_(std::move(other.error_)),
      before_each_write_step_(std::move(other.before_each_write_step_)) {}

FileSink& FileSink::operator=(FileSink&& other) noexcept {
  if (this != &other) {
    Discard();
    fd_ = std::exchange(other.fd_, -1);
    dir_ = std::move(other.dir_);
    name_ = std::move(other.name_);
    tmp_path_ = std::exchange(other.tmp_path_, "");
    rank_ = other.rank_;
    size_ = other.size_;
    crc_ = other.crc_;
    error_ = std::move(other.error_);
    before_each_write_step_ = std::move(other.before_each_write_step_);
  }
  return *this;
}

FileSink::~FileSink() { Discard(); }

void FileSink::Discard() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!tmp_path_.empty()) std::remove(tmp_path_.c_str());
  tmp_path_.clear();
}

absl::Status FileSink::Append(absl::string_view bytes) {
  if (!error_.ok()) return error_;
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat("checkpoint file \"", name_, "\" is finished"));
  error_ = WriteAll(fd_, bytes, tmp_path_, before_each_write_step_);
  if (!error_.ok()) return error_;
  size_ += bytes.size();
  crc_ = crc32c::Extend(crc_, bytes);
  return absl::OkStatus();
}

// ---- CheckpointWriter ----------------------------------------------------------------------

absl::StatusOr<CheckpointWriter> CheckpointWriter::Begin(const std::string& save_dir, int64_t step,
                                                         CheckpointWriterOptions options) {
  if (step < 0) return absl::InvalidArgumentError(absl::StrCat("checkpoint step ", step, " is negative"));
  if (options.world_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("checkpoint world_size ", options.world_size, " is not positive"));
  }
  if (options.zero_stage < 0 || options.zero_stage > 3) {
    return absl::InvalidArgumentError(absl::StrCat("checkpoint zero_stage ", options.zero_stage, " is not 0..3"));
  }
  if (save_dir.empty()) return absl::InvalidArgumentError("checkpoint save directory is empty");
  CheckpointWriter w;
  w.save_dir_ = StripTrailingSlashes(save_dir);
  w.step_ = step;
  w.step_dir_ = JoinPath(w.save_dir_, StepDirName(step));
  w.staging_dir_ = absl::StrCat(w.step_dir_, TmpSuffix());
  w.options_ = std::move(options);

  RETURN_IF_ERROR(MakeDirs(w.save_dir_));
  RETURN_IF_ERROR(RemoveDebris(w.save_dir_, w.options_.before_each_write_step));
  if (PathExists(w.step_dir_) && !IsCompleteStepDir(w.step_dir_)) {
    return absl::FailedPreconditionError(absl::StrCat(w.step_dir_, ": exists but is not a complete checkpoint (no ",
                                                      kManifestFile, "); remove it or save another step"));
  }
  w.Point("mkdir", w.staging_dir_);
  if (::mkdir(w.staging_dir_.c_str(), 0755) != 0) return ErrnoError(errno, "create directory", w.staging_dir_);

  w.manifest_.set_format_version(kManifestFormatVersion);
  w.manifest_.set_world_size(w.options_.world_size);
  w.manifest_.set_zero_stage(w.options_.zero_stage);
  w.manifest_.set_global_step(step);
  w.active_ = true;
  return w;
}

CheckpointWriter::CheckpointWriter(CheckpointWriter&& other) noexcept
    : save_dir_(std::move(other.save_dir_)),
      staging_dir_(std::move(other.staging_dir_)),
      step_dir_(std::move(other.step_dir_)),
      step_(other.step_),
      options_(std::move(other.options_)),
      manifest_(std::move(other.manifest_)),
      active_(std::exchange(other.active_, false)) {}

CheckpointWriter& CheckpointWriter::operator=(CheckpointWriter&& other) noexcept {
  if (this != &other) {
    WarnIfAbandoned();
    save_dir_ = std::move(other.save_dir_);
    staging_dir_ = std::move(other.staging_dir_);
    step_dir_ = std::move(other.step_dir_);
    step_ = other.step_;
    options_ = std::move(other.options_);
    manifest_ = std::move(other.manifest_);
    active_ = std::exchange(other.active_, false);
  }
  return *this;
}

CheckpointWriter::~CheckpointWriter() { WarnIfAbandoned(); }

void CheckpointWriter::WarnIfAbandoned() const {
  if (active_) {
    ZT_LOG(WARNING) << "checkpoint " << step_dir_ << " abandoned without Commit or Abort; " << staging_dir_
                    << " is left for the next writer to remove";
  }
}

void CheckpointWriter::Point(absl::string_view what, const std::string& path, const std::string& to) const {
  RunHook(options_.before_each_write_step, what, path, to);
}

absl::Status CheckpointWriter::CheckActive() const {
  if (active_) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("checkpoint writer for ", step_dir_, " is finished (committed, aborted or failed)"));
}

absl::Status CheckpointWriter::AddFile(const std::string& name, absl::string_view bytes, int32_t rank) {
  ASSIGN_OR_RETURN(FileSink file, OpenFile(name, rank));
  RETURN_IF_ERROR(file.Append(bytes));
  return FinishFile(std::move(file));
}

absl::StatusOr<FileSink> CheckpointWriter::OpenFile(const std::string& name, int32_t rank) {
  RETURN_IF_ERROR(CheckActive());
  if (const std::string why = BadNameReason(name); !why.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("checkpoint file name \"", absl::CEscape(name), "\" ", why));
  }
  if (rank < -1 || rank >= options_.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint file \"", name, "\": rank ", rank, " outside [-1, ", options_.world_size, ")"));
  }
  for (const FileEntry& f : manifest_.files()) {
    if (f.name() == name) {
      return absl::AlreadyExistsError(absl::StrCat(JoinPath(staging_dir_, name), ": written already"));
    }
  }
  FileSink file;
  file.dir_ = staging_dir_;
  file.name_ = name;
  file.rank_ = rank;
  file.before_each_write_step_ = options_.before_each_write_step;
  const std::string tmp = absl::StrCat(JoinPath(staging_dir_, name), TmpSuffix());
  Point("create", tmp);
  // O_EXCL: two sinks of one name would write the same temporary file.
  file.fd_ = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (file.fd_ < 0 && errno == EEXIST) {
    return absl::AlreadyExistsError(absl::StrCat(tmp, ": checkpoint file \"", name, "\" is being written already"));
  }
  if (file.fd_ < 0) return ErrnoError(errno, "create", tmp);
  file.tmp_path_ = tmp;
  return file;
}

absl::Status CheckpointWriter::FinishFile(FileSink file) {
  RETURN_IF_ERROR(CheckActive());
  if (file.dir_ != staging_dir_) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint file \"", file.name_, "\" belongs to another checkpoint writer (", file.dir_, ")"));
  }
  RETURN_IF_ERROR(file.error_);
  if (file.fd_ < 0) {
    return absl::FailedPreconditionError(absl::StrCat("checkpoint file \"", file.name_, "\" is finished already"));
  }
  const int fd = std::exchange(file.fd_, -1);
  RETURN_IF_ERROR(SyncAndRename(fd, file.tmp_path_, staging_dir_, file.name_, options_.before_each_write_step));
  file.tmp_path_.clear();  // renamed: nothing left for the sink to remove
  FileEntry* entry = manifest_.add_files();
  entry->set_name(file.name_);
  entry->set_size(file.size_);
  entry->set_crc32c(file.crc_);
  entry->set_rank(file.rank_);
  return absl::OkStatus();
}

absl::Status CheckpointWriter::AddWrittenFile(const FileEntry& file) {
  RETURN_IF_ERROR(CheckActive());
  if (const std::string why = BadNameReason(file.name()); !why.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("checkpoint file name \"", absl::CEscape(file.name()), "\" ", why));
  }
  if (file.rank() < -1 || file.rank() >= options_.world_size) {
    return absl::InvalidArgumentError(absl::StrCat("checkpoint file \"", file.name(), "\": rank ", file.rank(),
                                                   " outside [-1, ", options_.world_size, ")"));
  }
  for (const FileEntry& f : manifest_.files()) {
    if (f.name() == file.name()) {
      return absl::AlreadyExistsError(absl::StrCat(JoinPath(staging_dir_, file.name()), ": written already"));
    }
  }
  const std::string path = JoinPath(staging_dir_, file.name());
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return ErrnoError(errno, "stat", path);
  if (static_cast<uint64_t>(st.st_size) != file.size()) {
    return absl::DataLossError(absl::StrCat(path, ": ", st.st_size, " bytes on disk, but its writer (rank ",
                                            file.rank(), ") sent ", file.size()));
  }
  *manifest_.add_files() = file;
  return absl::OkStatus();
}

std::string StagingDirName(const std::string& save_dir, int64_t step, int64_t writer_pid) {
  return absl::StrCat(JoinPath(StripTrailingSlashes(save_dir), StepDirName(step)), kTmpMarker, writer_pid);
}

absl::StatusOr<FileSink> OpenStagedFile(const std::string& staging_dir, const std::string& name, int32_t rank,
                                        std::function<void(absl::string_view)> before_each_write_step) {
  if (const std::string why = BadNameReason(name); !why.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("checkpoint file name \"", absl::CEscape(name), "\" ", why));
  }
  if (!IsDirectory(staging_dir)) {
    return absl::NotFoundError(absl::StrCat(staging_dir, ": no such staging directory (rank 0 creates it)"));
  }
  FileSink file;
  file.dir_ = staging_dir;
  file.name_ = name;
  file.rank_ = rank;
  file.before_each_write_step_ = std::move(before_each_write_step);
  const std::string tmp = absl::StrCat(JoinPath(staging_dir, name), TmpSuffix());
  RunHook(file.before_each_write_step_, "create", tmp);
  file.fd_ = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (file.fd_ < 0) return ErrnoError(errno, "create", tmp);
  file.tmp_path_ = tmp;
  return file;
}

absl::StatusOr<FileEntry> FinishStagedFile(FileSink file) {
  RETURN_IF_ERROR(file.error_);
  if (file.fd_ < 0) {
    return absl::FailedPreconditionError(absl::StrCat("checkpoint file \"", file.name_, "\" is finished already"));
  }
  const int fd = std::exchange(file.fd_, -1);
  RETURN_IF_ERROR(SyncAndRename(fd, file.tmp_path_, file.dir_, file.name_, file.before_each_write_step_));
  file.tmp_path_.clear();
  FileEntry entry;
  entry.set_name(file.name_);
  entry.set_size(file.size_);
  entry.set_crc32c(file.crc_);
  entry.set_rank(file.rank_);
  return entry;
}

absl::Status CheckpointWriter::AddTensor(TensorEntry tensor) {
  RETURN_IF_ERROR(CheckActive());
  if (const std::string why = TensorProblem(tensor, options_.world_size); !why.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("checkpoint ", step_dir_, ": ", why));
  }
  *manifest_.add_tensors() = std::move(tensor);
  return absl::OkStatus();
}

void CheckpointWriter::SetMeta(const std::string& key, const std::string& value) {
  (*manifest_.mutable_meta())[key] = value;
}

absl::Status CheckpointWriter::Commit() {
  RETURN_IF_ERROR(CheckActive());
  // A caller's mistake (a tensor in a file never added, slices that leave a gap) leaves the
  // writer open to be put right.
  if (const std::string why = ManifestProblem(manifest_); !why.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot commit checkpoint ", step_dir_, ": ", why));
  }
  active_ = false;
  manifest_.set_created_unix_s(static_cast<int64_t>(std::time(nullptr)));
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream out(&bytes);
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.SetSerializationDeterministic(true);  // the same checkpoint, the same bytes (meta is a map)
    if (!manifest_.SerializeToCodedStream(&coded)) {
      return absl::InternalError(absl::StrCat(step_dir_, ": cannot serialize the manifest"));
    }
  }
  const Hook& hook = options_.before_each_write_step;
  RETURN_IF_ERROR(
      WriteFileDurably(staging_dir_, kManifestCrcFile, ManifestCrcLine(crc32c::Value(bytes), bytes.size()), hook));
  RETURN_IF_ERROR(WriteFileDurably(staging_dir_, kManifestFile, bytes, hook));

  // The step directory appears complete, in one rename.
  std::string old_dir;  // a replaced checkpoint of the same step, to delete at the end
  if (IsDirectory(step_dir_)) {
    Point("exchange", staging_dir_, step_dir_);
    if (::syscall(SYS_renameat2, AT_FDCWD, staging_dir_.c_str(), AT_FDCWD, step_dir_.c_str(), kRenameExchange) == 0) {
      old_dir = staging_dir_;
    } else if (errno == EINVAL || errno == ENOSYS) {
      // No RENAME_EXCHANGE here (NFS): two renames.  If we die between them, the next writer's
      // RemoveDebris puts the *.old.tmp-* directory back.
      old_dir = absl::StrCat(step_dir_, ".old", TmpSuffix());
      Point("rename", step_dir_, old_dir);
      if (std::rename(step_dir_.c_str(), old_dir.c_str()) != 0) {
        return ErrnoError(errno, "rename to " + old_dir, step_dir_);
      }
      Point("rename", staging_dir_, step_dir_);
      if (std::rename(staging_dir_.c_str(), step_dir_.c_str()) != 0) {
        return ErrnoError(errno, "rename to " + step_dir_, staging_dir_);
      }
    } else {
      return ErrnoError(errno, "exchange with " + step_dir_, staging_dir_);
    }
  } else {
    Point("rename", staging_dir_, step_dir_);
    if (std::rename(staging_dir_.c_str(), step_dir_.c_str()) != 0) {
      return ErrnoError(errno, "rename to " + step_dir_, staging_dir_);
    }
  }
  RETURN_IF_ERROR(FsyncDir(save_dir_, hook));

  // Only now may `latest` name it.
  if (options_.update_latest) RETURN_IF_ERROR(WriteFileDurably(save_dir_, kLatestFile, StepDirName(step_), hook));

  if (!old_dir.empty()) {
    Point("remove", old_dir);
    if (const absl::Status removed = RemoveFlatDir(old_dir); !removed.ok()) {
      ZT_LOG(WARNING) << "checkpoint " << step_dir_ << " committed, but the one it replaced stays: " << removed;
    }
  }
  return absl::OkStatus();
}

absl::Status CheckpointWriter::Abort() {
  RETURN_IF_ERROR(CheckActive());
  active_ = false;
  Point("remove", staging_dir_);
  return RemoveFlatDir(staging_dir_);
}

}  // namespace zt::ckpt
