// Early-return helpers for absl::Status and absl::StatusOr<T>, the error model of core/ and io/.
//
//   absl::Status Load(const std::string& path) {
//     RETURN_IF_ERROR(CheckReadable(path));
//     ASSIGN_OR_RETURN(std::string text, ReadFile(path));
//     ASSIGN_OR_RETURN(auto config, Parse(text), _.WithPrefix(path));   // optional: rewrite the error
//     ...
//   }
//
// Abseil 20220623 has no status macros of its own; these follow XLA's TF_RETURN_IF_ERROR /
// TF_ASSIGN_OR_RETURN.  The optional last argument of either macro is an expression that may
// use `_`, a StatusBuilder holding the failed status, to add context before returning it.
#ifndef ZEROTRAIN_CORE_UTIL_STATUS_MACROS_H_
#define ZEROTRAIN_CORE_UTIL_STATUS_MACROS_H_

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace zt {

// Holds a failed status on its way out of a function and lets the caller add context.
class StatusBuilder {
 public:
  explicit StatusBuilder(absl::Status status) : status_(std::move(status)) {}

  // "prefix: original message", same code.
  StatusBuilder& WithPrefix(absl::string_view prefix) {
    status_ = absl::Status(status_.code(), absl::StrCat(prefix, ": ", status_.message()));
    return *this;
  }
  // "original message; suffix", same code.
  StatusBuilder& WithSuffix(absl::string_view suffix) {
    status_ = absl::Status(status_.code(), absl::StrCat(status_.message(), "; ", suffix));
    return *this;
  }

  operator absl::Status() const& { return status_; }         // NOLINT: implicit by design
  operator absl::Status() && { return std::move(status_); }  // NOLINT
  template <typename T>
  operator absl::StatusOr<T>() const {  // NOLINT
    return absl::StatusOr<T>(status_);
  }

 private:
  absl::Status status_;
};

namespace status_internal {
inline const absl::Status& AsStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& AsStatus(const absl::StatusOr<T>& s) {
  return s.status();
}
}  // namespace status_internal

}  // namespace zt

#define ZT_STATUS_CONCAT_INNER_(a, b) a##b
#define ZT_STATUS_CONCAT_(a, b) ZT_STATUS_CONCAT_INNER_(a, b)

// RETURN_IF_ERROR(expr) or RETURN_IF_ERROR(expr, context-expression using `_`).
#define RETURN_IF_ERROR(...) ZT_RIE_SELECT_(__VA_ARGS__, ZT_RIE_2_, ZT_RIE_1_)(__VA_ARGS__)
#define ZT_RIE_SELECT_(_1, _2, NAME, ...) NAME
#define ZT_RIE_1_(expr)                                                      \
  do {                                                                       \
    const absl::Status zt_status_ = ::zt::status_internal::AsStatus((expr)); \
    if (!zt_status_.ok()) return zt_status_;                                 \
  } while (false)
#define ZT_RIE_2_(expr, context)                                             \
  do {                                                                       \
    const absl::Status zt_status_ = ::zt::status_internal::AsStatus((expr)); \
    if (!zt_status_.ok()) {                                                  \
      ::zt::StatusBuilder _(zt_status_);                                     \
      return (context);                                                      \
    }                                                                        \
  } while (false)

// ASSIGN_OR_RETURN(lhs, expr) or ASSIGN_OR_RETURN(lhs, expr, context-expression using `_`).
// lhs may declare a variable (`auto x`, `std::unique_ptr<T> p`) or name an existing one.
// It expands to several statements: put it in braces under an `if`.
#define ASSIGN_OR_RETURN(...) ZT_AOR_SELECT_(__VA_ARGS__, ZT_AOR_3_, ZT_AOR_2_)(__VA_ARGS__)
#define ZT_AOR_SELECT_(_1, _2, _3, NAME, ...) NAME
#define ZT_AOR_2_(lhs, expr) ZT_AOR_IMPL_(ZT_STATUS_CONCAT_(zt_statusor_, __LINE__), lhs, expr, _)
#define ZT_AOR_3_(lhs, expr, context) ZT_AOR_IMPL_(ZT_STATUS_CONCAT_(zt_statusor_, __LINE__), lhs, expr, context)
#define ZT_AOR_IMPL_(statusor, lhs, expr, context) \
  auto statusor = (expr);                          \
  if (!statusor.ok()) {                            \
    ::zt::StatusBuilder _(statusor.status());      \
    return (context);                              \
  }                                                \
  lhs = std::move(statusor).value()

#endif  // ZEROTRAIN_CORE_UTIL_STATUS_MACROS_H_
