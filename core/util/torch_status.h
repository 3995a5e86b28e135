// The one boundary where LibTorch's exceptions become absl::Status.
//
// LibTorch reports errors by throwing c10::Error (TORCH_CHECK) and its subclasses; core/ and io/
// report them as absl::Status.  Wrap calls into LibTorch that may fail on user input:
//
//   absl::StatusOr<at::Tensor> t = zt::CallTorch("reshape embeddings", [&] { return w.view({v, d}); });
//   absl::Status s = zt::CallTorch("copy to device", [&] { dst.copy_(src); });
//
// The message is LibTorch's own, without its C++ backtrace, prefixed with `what`.
#ifndef ZEROTRAIN_CORE_UTIL_TORCH_STATUS_H_
#define ZEROTRAIN_CORE_UTIL_TORCH_STATUS_H_

#include <exception>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace zt {

// An absl::Status carried through code that can only throw (LibTorch module forwards, autograd
// hooks); StatusFromException gives it back unchanged but for `what`.
class StatusException : public std::runtime_error {
 public:
  explicit StatusException(absl::Status status)
      : std::runtime_error(std::string(status.message())), status_(std::move(status)) {}
  const absl::Status& status() const { return status_; }

 private:
  absl::Status status_;
};

// Maps an exception to a Status with `what` as context:
//   zt::StatusException                           -> its own status
//   c10::OutOfMemoryError, std::bad_alloc        -> kResourceExhausted
//   c10::ValueError, c10::TypeError               -> kInvalidArgument
//   c10::IndexError                               -> kOutOfRange
//   c10::NotImplementedError                      -> kUnimplemented
//   c10::DistError and its subclasses             -> kUnavailable
//   any other c10::Error (a failed TORCH_CHECK)   -> kInternal
//   any other std::exception                      -> kUnknown
absl::Status StatusFromException(const std::exception& e, absl::string_view what);

// Runs f(), returning its result (or OkStatus() for void) or the Status of what it threw.
template <typename F, typename R = std::invoke_result_t<F&>>
std::conditional_t<std::is_void_v<R>, absl::Status, absl::StatusOr<R>> CallTorch(absl::string_view what, F&& f) {
  try {
    if constexpr (std::is_void_v<R>) {
      f();
      return absl::OkStatus();
    } else {
      return absl::StatusOr<R>(f());
    }
  } catch (const std::exception& e) {
    return StatusFromException(e, what);
  }
}

}  // namespace zt

#endif  // ZEROTRAIN_CORE_UTIL_TORCH_STATUS_H_
