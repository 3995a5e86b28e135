// Whole-file reads and atomic writes, with errors that name the path (configs, model files,
// tokenizers, results), and the few path helpers the jobs share.
//
//   ASSIGN_OR_RETURN(std::string text, zt::ReadFileToString(path));
//   RETURN_IF_ERROR(zt::WriteFileAtomically(dir + "/all_results.json", json));
#ifndef ZEROTRAIN_CORE_UTIL_FILE_UTIL_H_
#define ZEROTRAIN_CORE_UTIL_FILE_UTIL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace zt {

// "<path>: cannot open: <strerror>" as kNotFound (ENOENT), kPermissionDenied (EACCES) or
// kInvalidArgument (a directory, ...); a failed read is kDataLoss.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Writes `contents` to a temporary file beside `path`, flushes it to the disk and renames it
// into place: readers see the old file or the new one, never a part.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents);

bool PathExists(const std::string& path);
bool IsRegularFile(const std::string& path);
bool IsDirectory(const std::string& path);
// A directory with at least one entry.
bool IsNonEmptyDirectory(const std::string& path);
// mkdir -p.
absl::Status MakeDirs(const std::string& path);
// Removes a directory of plain files (a checkpoint a job wrote); a missing one is fine.
absl::Status RemoveFlatDir(const std::string& dir);
// A path the user typed, relative to where they ran `bazel run` (BUILD_WORKING_DIRECTORY), as
// the binary's own working directory is its runfiles tree there.
std::string UserPath(const std::string& path);

}  // namespace zt

#endif  // ZEROTRAIN_CORE_UTIL_FILE_UTIL_H_
