// Whole-file reads and atomic writes, with errors that name the path (configs, model files,
// tokenizers, results).
//
//   ASSIGN_OR_RETURN(std::string text, zt::ReadFileToString(path));
//   RETURN_IF_ERROR(zt::WriteFileAtomically(dir + "/all_results.json", json));
#ifndef ZEROTRAIN_CORE_UTIL_FILE_UTIL_H_
#define ZEROTRAIN_CORE_UTIL_FILE_UTIL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace zt {

// "<path>: cannot open: <strerror>" as kNotFound (ENOENT), kPermissionDenied (EACCES) or
// kInvalidArgument (a directory, ...); a failed read is kDataLoss.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Writes `contents` to a temporary file beside `path`, flushes it to the disk and renames it
// into place: readers see the old file or the new one, never a part.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents);

}  // namespace zt

#endif  // ZEROTRAIN_CORE_UTIL_FILE_UTIL_H_
