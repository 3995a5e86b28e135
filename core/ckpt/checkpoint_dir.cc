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
#include "core/util/crc32c.h"
#include "core/util/file_util.h"
#include "core/util/logging.h"
#include "core/util/status_macros.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace zt::ckpt {
namespace {

using Hook = std::function<void(absl::string_view)>;

// Marks every temporary name this file makes (files in a step directory, the step directory
// while it is built, `latest` while it is replaced); anything called global_step*.tmp-* or
// latest*.tmp-* in a save directory is a dead writer's debris.
constexpr char kTmpMarker[] = ".tmp-";
constexpr char kStepPrefix[] = "global_step";
constexpr char kOldMarker[] = ".old.tmp-";  // a replaced step directory, see Commit
constexpr std::size_t kIoChunk = std::size_t{1} << 20;
constexpr std::size_t kMaxWrite = std::size_t{1} << 30;  // Linux writes at most ~2 GiB per call
constexpr unsigned kRenameExchange = 1u << 1;            // RENAME_EXCHANGE of <linux/fs.h>

std::string JoinPath(const std::string& dir, absl::string_view name) { return absl::StrCat(dir, "/", name); }
std::string TmpSuffix() { return absl::StrCat(kTmpMarker, ::getpid()); }
std::string Hex(uint32_t v) { return absl::StrFormat("0x%08x", v); }

std::string StripTrailingSlashes(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

absl::string_view Basename(absl::string_view path) {
  const std::size_t slash = path.rfind('/');
  return slash == absl::string_view::npos ? path : path.substr(slash + 1);
}

absl::Status ErrnoError(int err, absl::string_view what, const std::string& path) {
  return absl::Status(absl::ErrnoToStatusCode(err), absl::StrCat(path, ": cannot ", what, ": ", std::strerror(err)));
}

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

void RunHook(const Hook& hook, absl::string_view what, const std::string& path, const std::string& to = "") {
  if (!hook) return;
  hook(to.empty() ? absl::StrCat(what, " ", path) : absl::StrCat(what, " ", path, " -> ", to));
}

// Makes a rename or create inside `dir` durable.
absl::Status FsyncDir(const std::string& dir, const Hook& hook) {
  RunHook(hook, "fsync", dir);
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.fd < 0) return ErrnoError(errno, "open directory", dir);
  // EINVAL: a filesystem that cannot sync directories (some FUSE mounts); nothing more to do.
  if (::fsync(fd.fd) != 0 && errno != EINVAL) return ErrnoError(errno, "fsync", dir);
  return absl::OkStatus();
}

absl::Status WriteAll(int fd, absl::string_view bytes, const std::string& path, const Hook& hook) {
  while (!bytes.empty()) {
    RunHook(hook, "write", path);
    const ssize_t n = ::write(fd, bytes.data(), std::min(bytes.size(), kMaxWrite));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, "write", path);
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return absl::OkStatus();
}

// The second half of every file write: fsync and close `fd` (written at tmp_path), rename it to
// dir/name and fsync dir.  Closes fd whatever happens; the caller removes tmp_path on failure.
absl::Status SyncAndRename(int fd, const std::string& tmp_path, const std::string& dir, absl::string_view name,
                           const Hook& hook) {
  Fd owned(fd);
  RunHook(hook, "fsync", tmp_path);
  if (::fsync(fd) != 0) return ErrnoError(errno, "fsync", tmp_path);
  owned.fd = -1;
  if (::close(fd) != 0) return ErrnoError(errno, "close", tmp_path);
  const std::string path = JoinPath(dir, name);
  RunHook(hook, "rename", tmp_path, path);
  if (std::rename(tmp_path.c_str(), path.c_str()) != 0) return ErrnoError(errno, "rename to " + path, tmp_path);
  return FsyncDir(dir, hook);
}

// dir/name replaced by `bytes` crash-safely: readers see the old file or the new one.
absl::Status WriteFileDurably(const std::string& dir, absl::string_view name, absl::string_view bytes,
                              const Hook& hook) {
  const std::string tmp = absl::StrCat(JoinPath(dir, name), TmpSuffix());
  RunHook(hook, "create", tmp);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError(errno, "create", tmp);
  absl::Status status = WriteAll(fd, bytes, tmp, hook);
  if (status.ok()) {
    status = SyncAndRename(fd, tmp, dir, name, hook);
  } else {
    ::close(fd);
  }
  if (!status.ok()) std::remove(tmp.c_str());
  return status;
}

bool IsCompleteStepDir(const std::string& dir) { return IsRegularFile(JoinPath(dir, kManifestFile)); }

bool IsDebrisName(absl::string_view name) {
  return (absl::StartsWith(name, kStepPrefix) || absl::StartsWith(name, kLatestFile)) &&
         absl::StrContains(name, kTmpMarker);
}

absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return ErrnoError(errno, "list", dir);
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(d)) {
    const absl::string_view n = e->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

// Removes the *.tmp-* leftovers of writers that died or gave up (see kTmpMarker) — except a
// complete global_stepN.old.tmp-* whose global_stepN is missing: a writer replacing step N by two
// renames (no RENAME_EXCHANGE) died between them, and that is the only copy; it is put back.
absl::Status RemoveDebris(const std::string& save_dir, const Hook& hook) {
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(save_dir));
  for (const std::string& name : names) {
    if (!IsDebrisName(name)) continue;
    const std::string path = JoinPath(save_dir, name);
    if (const std::size_t at = name.find(kOldMarker); at != std::string::npos) {
      const std::string step_dir = JoinPath(save_dir, name.substr(0, at));
      if (ParseStepDirName(name.substr(0, at)).has_value() && !PathExists(step_dir) && IsCompleteStepDir(path)) {
        RunHook(hook, "rename", path, step_dir);
        if (std::rename(path.c_str(), step_dir.c_str()) != 0) return ErrnoError(errno, "rename to " + step_dir, path);
        RETURN_IF_ERROR(FsyncDir(save_dir, hook));
        ZT_LOG(WARNING) << "restored " << step_dir << " from " << path << ", left by a writer that died replacing it";
        continue;
      }
    }
    RunHook(hook, "remove", path);
    if (IsDirectory(path)) {
      RETURN_IF_ERROR(RemoveFlatDir(path));
    } else if (std::remove(path.c_str()) != 0 && errno != ENOENT) {
      return ErrnoError(errno, "remove", path);
    }
  }
  return absl::OkStatus();
}

// Why `name` cannot be a checkpoint file's name; "" if it can.
std::string BadNameReason(absl::string_view name) {
  if (name.empty()) return "is empty";
  if (name == "." || name == "..") return "is not a file name";
  if (name.size() > 255) return "is longer than 255 bytes";
  if (name.find('/') != absl::string_view::npos) return "has a '/' (a step directory is flat)";
  if (name.find('\0') != absl::string_view::npos) return "has a NUL byte";
  if (absl::StrContains(name, kTmpMarker)) return "contains \".tmp-\", which marks temporary files";
  if (name == kManifestFile || name == kManifestCrcFile) return "is the manifest's own name";
  return "";
}

// Bytes per element of a safetensors dtype name; 0 for an unknown name.
int DtypeSize(absl::string_view dtype) {
  static const auto* const kSizes = new std::map<std::string, int, std::less<>>{
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
      {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4},     {"I64", 8},     {"U64", 8}, {"F64", 8}};
  const auto it = kSizes->find(dtype);
  return it == kSizes->end() ? 0 : it->second;
}

std::string TensorLabel(const TensorEntry& t) {
  return absl::StrCat("tensor \"", t.name(), "\" (rank ", t.rank(), ")");
}

// Whole-tensor element count, or -1 with *why set.
int64_t NumElements(const TensorEntry& t, std::string* why) {
  int64_t numel = 1;
  for (const int64_t d : t.shape()) {
    if (d < 0) {
      *why = absl::StrCat("has a negative dimension ", d);
      return -1;
    }
    if (__builtin_mul_overflow(numel, d, &numel)) {
      *why = "has more elements than an int64 holds";
      return -1;
    }
  }
  return numel;
}

// What is wrong with one tensor entry on its own; "" if nothing.
std::string TensorProblem(const TensorEntry& t, int32_t world_size) {
  if (t.name().empty()) return "a tensor entry has no name";
  const int element_size = DtypeSize(t.dtype());
  if (element_size == 0) return absl::StrCat(TensorLabel(t), " has unknown dtype \"", absl::CEscape(t.dtype()), "\"");
  if (t.rank() < -1 || t.rank() >= world_size) {
    return absl::StrCat(TensorLabel(t), " has a rank outside [-1, ", world_size, ")");
  }
  std::string why;
  const int64_t numel = NumElements(t, &why);
  if (numel < 0) return absl::StrCat(TensorLabel(t), " ", why);
  int64_t count = numel;
  if (t.has_partition()) {
    const int64_t begin = t.partition().begin(), end = t.partition().end();
    if (begin < 0 || begin > end || end > numel) {
      return absl::StrCat(TensorLabel(t), " has partition [", begin, ", ", end, ") outside its ", numel, " elements");
    }
    count = end - begin;
  }
  uint64_t want = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(count), static_cast<uint64_t>(element_size), &want) ||
      t.nbytes() != want) {
    return absl::StrCat(TensorLabel(t), " says nbytes ", t.nbytes(), ", but ", count, " elements of ", t.dtype(),
                        " take ", want);
  }
  uint64_t end_offset = 0;
  if (__builtin_add_overflow(t.offset(), t.nbytes(), &end_offset)) {
    return absl::StrCat(TensorLabel(t), " has an offset past any file");
  }
  return "";
}

// What is wrong with a whole manifest, the format version aside; "" if nothing.  A reader can
// trust a manifest that passes: file names are safe to join to the directory, every tensor lies
// inside its file, and a tensor's entries agree and cover it exactly once.
std::string ManifestProblem(const Manifest& m) {
  if (m.world_size() < 1) return absl::StrCat("world_size ", m.world_size(), " is not positive");
  if (m.zero_stage() < 0 || m.zero_stage() > 3) return absl::StrCat("zero_stage ", m.zero_stage(), " is not 0..3");
  if (m.global_step() < 0) return absl::StrCat("global_step ", m.global_step(), " is negative");
  std::map<absl::string_view, const FileEntry*> files;
  for (const FileEntry& f : m.files()) {
    if (const std::string why = BadNameReason(f.name()); !why.empty()) {
      return absl::StrCat("file name \"", absl::CEscape(f.name()), "\" ", why);
    }
    if (!files.emplace(f.name(), &f).second) return absl::StrCat("file \"", f.name(), "\" is listed twice");
    if (f.rank() < -1 || f.rank() >= m.world_size()) {
      return absl::StrCat("file \"", f.name(), "\" has rank ", f.rank(), " outside [-1, ", m.world_size(), ")");
    }
  }
  std::map<absl::string_view, std::vector<const TensorEntry*>> by_name;
  for (const TensorEntry& t : m.tensors()) {
    if (std::string why = TensorProblem(t, m.world_size()); !why.empty()) return why;
    const auto file = files.find(t.file());
    if (file == files.end()) return absl::StrCat(TensorLabel(t), " is in file \"", t.file(), "\", which is not listed");
    if (t.offset() + t.nbytes() > file->second->size()) {
      return absl::StrCat(TensorLabel(t), " at [", t.offset(), ", ", t.offset() + t.nbytes(),
                          ") runs past the end of \"", t.file(), "\" (", file->second->size(), " bytes)");
    }
    by_name[t.name()].push_back(&t);
  }
  for (auto& [name, entries] : by_name) {
    const TensorEntry& first = *entries.front();
    for (const TensorEntry* t : entries) {
      if (t->dtype() != first.dtype() ||
          !std::equal(t->shape().begin(), t->shape().end(), first.shape().begin(), first.shape().end())) {
        return absl::StrCat("the entries of tensor \"", name, "\" disagree on its dtype or shape");
      }
      if (!t->has_partition() && entries.size() > 1) {
        return absl::StrCat("tensor \"", name, "\" has ", entries.size(), " entries, one of them whole");
      }
    }
    if (!first.has_partition()) continue;
    std::sort(entries.begin(), entries.end(), [](const TensorEntry* a, const TensorEntry* b) {
      return std::make_pair(a->partition().begin(), a->partition().end()) <
             std::make_pair(b->partition().begin(), b->partition().end());
    });
    std::string why;
    const int64_t numel = NumElements(first, &why);
    int64_t covered = 0;
    for (const TensorEntry* t : entries) {
      if (t->partition().begin() != covered) {
        return absl::StrCat("the slices of tensor \"", name, "\" ",
                            t->partition().begin() < covered ? "overlap" : "leave a gap", " at element ",
                            std::min(covered, t->partition().begin()));
      }
      covered = t->partition().end();
    }
    if (covered != numel) {
      return absl::StrCat("the slices of tensor \"", name, "\" cover ", covered, " of its ", numel, " elements");
    }
  }
  return "";
}

std::string ManifestCrcLine(uint32_t crc, uint64_t size) { return absl::StrFormat("%08x %d\n", crc, size); }

// Parses ManifestCrcLine's output exactly.
bool ParseManifestCrcLine(absl::string_view text, uint32_t* crc, uint64_t* size) {
  if (!absl::ConsumeSuffix(&text, "\n")) return false;
  const std::vector<absl::string_view> parts = absl::StrSplit(text, ' ');
  if (parts.size() != 2 || parts[0].size() != 8 || parts[1].empty()) return false;
  for (const char c : parts[0]) {
    if (!absl::ascii_isxdigit(c)) return false;
  }
  for (const char c : parts[1]) {
    if (!absl::ascii_isdigit(c)) return false;
  }
  return absl::SimpleHexAtoi(parts[0], crc) && absl::SimpleAtoi(parts[1], size);
}

struct Latest {
  std::string path;  // SAVE_DIR/latest
  std::string tag;   // global_stepN
  int64_t step = 0;
};

absl::StatusOr<Latest> ReadLatest(const std::string& save_dir) {
  Latest latest;
  latest.path = JoinPath(save_dir, kLatestFile);
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(latest.path));
  latest.tag = std::string(absl::StripAsciiWhitespace(text));
  const std::optional<int64_t> step = ParseStepDirName(latest.tag);
  if (!step.has_value()) {
    return absl::DataLossError(absl::StrCat(latest.path, ": holds \"", absl::CHexEscape(text.substr(0, 64)),
                                            text.size() > 64 ? "..." : "",
                                            "\", not the name of a step directory like global_step100"));
  }
  latest.step = *step;
  return latest;
}

}  // namespace

std::string StepDirName(int64_t step) { return absl::StrCat(kStepPrefix, step); }

std::optional<int64_t> ParseStepDirName(absl::string_view name) {
  if (!absl::ConsumePrefix(&name, kStepPrefix) || name.empty() || name.size() > 19) return std::nullopt;
  if (name.size() > 1 && name[0] == '0') return std::nullopt;
  for (const char c : name) {
    if (!absl::ascii_isdigit(c)) return std::nullopt;
  }
  int64_t step = 0;
  if (!absl::SimpleAtoi(name, &step)) return std::nullopt;
  return step;
}

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

absl::StatusOr<std::vector<int64_t>> ListCheckpointSteps(const std::string& save_dir) {
  const std::string dir = StripTrailingSlashes(save_dir);
  ASSIGN_OR_RETURN(const std::vector<std::string> names, ListDir(dir));
  std::vector<int64_t> steps;
  for (const std::string& name : names) {
    const std::optional<int64_t> step = ParseStepDirName(name);
    if (step.has_value() && IsCompleteStepDir(JoinPath(dir, name))) steps.push_back(*step);
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

absl::Status RotateCheckpoints(const std::string& save_dir_in, int keep) {
  if (keep < 1) return absl::InvalidArgumentError(absl::StrCat("checkpoint rotation keeps ", keep, ", not >= 1"));
  const std::string save_dir = StripTrailingSlashes(save_dir_in);
  if (!IsDirectory(save_dir)) return absl::NotFoundError(absl::StrCat(save_dir, ": no such save directory"));
  std::optional<int64_t> latest_step;
  if (PathExists(JoinPath(save_dir, kLatestFile))) {
    ASSIGN_OR_RETURN(const Latest latest, ReadLatest(save_dir), _.WithSuffix("no checkpoint was deleted"));
    latest_step = latest.step;
  }
  RETURN_IF_ERROR(RemoveDebris(save_dir, nullptr));
  ASSIGN_OR_RETURN(const std::vector<int64_t> steps, ListCheckpointSteps(save_dir));
  std::set<int64_t> kept(steps.end() - std::min<std::size_t>(steps.size(), keep), steps.end());
  if (latest_step.has_value()) kept.insert(*latest_step);

  // Renamed to debris names first, all together, so a crash part-way through a deletion leaves
  // debris rather than a global_stepN with files missing.
  std::vector<std::string> doomed;
  for (const int64_t step : steps) {
    if (kept.count(step) != 0) continue;
    const std::string dir = JoinPath(save_dir, StepDirName(step));
    const std::string to = absl::StrCat(dir, TmpSuffix());
    if (std::rename(dir.c_str(), to.c_str()) != 0) return ErrnoError(errno, "rename to " + to, dir);
    doomed.push_back(to);
  }
  if (doomed.empty()) return absl::OkStatus();
  RETURN_IF_ERROR(FsyncDir(save_dir, nullptr));
  for (const std::string& dir : doomed) RETURN_IF_ERROR(RemoveFlatDir(dir));
  return absl::OkStatus();
}

}  // namespace zt::ckpt
