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

void RunHook(const Hook& hook, absl::string_view what, const std::string& path, const std::string& to) {
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

std::string TensorLabel(const TensorEntry& t) {
  return absl::StrCat("tensor \"", t.name(), "\" (rank ", t.rank(), ")");
}

namespace {

// Bytes per element of a safetensors dtype name; 0 for an unknown name.
int DtypeSize(absl::string_view dtype) {
  static const auto* const kSizes = new std::map<std::string, int, std::less<>>{
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
      {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4},     {"I64", 8},     {"U64", 8}, {"F64", 8}};
  const auto it = kSizes->find(dtype);
  return it == kSizes->end() ? 0 : it->second;
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

}  // namespace

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
