#include "core/util/torch_status.h"

#include <c10/util/Exception.h>

#include <new>
#include <string>

#include "absl/strings/str_cat.h"

namespace zt {

absl::Status StatusFromException(const std::exception& e, absl::string_view what) {
  if (const auto* carried = dynamic_cast<const StatusException*>(&e)) {
    const absl::Status& s = carried->status();
    return what.empty() ? s : absl::Status(s.code(), absl::StrCat(what, ": ", s.message()));
  }
  absl::StatusCode code = absl::StatusCode::kUnknown;
  std::string message = e.what();
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) {
    message = c10_error->what_without_backtrace();
    if (dynamic_cast<const c10::OutOfMemoryError*>(&e)) {
      code = absl::StatusCode::kResourceExhausted;
    } else if (dynamic_cast<const c10::ValueError*>(&e) || dynamic_cast<const c10::TypeError*>(&e)) {
      code = absl::StatusCode::kInvalidArgument;
    } else if (dynamic_cast<const c10::IndexError*>(&e)) {
      code = absl::StatusCode::kOutOfRange;
    } else if (dynamic_cast<const c10::NotImplementedError*>(&e)) {
      code = absl::StatusCode::kUnimplemented;
    } else if (dynamic_cast<const c10::DistError*>(&e)) {
      code = absl::StatusCode::kUnavailable;
    } else {
      code = absl::StatusCode::kInternal;
    }
  } else if (dynamic_cast<const std::bad_alloc*>(&e)) {
    code = absl::StatusCode::kResourceExhausted;
  }
  // LibTorch messages often end in a newline; a Status message is one clean line.
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  return absl::Status(code, what.empty() ? message : absl::StrCat(what, ": ", message));
}

}  // namespace zt
