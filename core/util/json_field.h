// One optional field of a JSON object into a typed C++ field, with an error that names the
// source and the key (model configs: config.json).
//
//   RETURN_IF_ERROR(zt::ReadJsonField(j, "hidden", config.hidden, path));
#ifndef ZEROTRAIN_CORE_UTIL_JSON_FIELD_H_
#define ZEROTRAIN_CORE_UTIL_JSON_FIELD_H_

#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace zt {

// Leaves `field` as it is when `key` is absent; bool needs a JSON boolean, integers a JSON
// integer, floating point any number.
template <typename T>
absl::Status ReadJsonField(const nlohmann::json& j, const char* key, T& field, absl::string_view source) {
  if (!j.contains(key)) return absl::OkStatus();
  const nlohmann::json& v = j.at(key);
  const bool ok = std::is_same_v<T, bool>       ? v.is_boolean()
                  : std::is_integral_v<T>       ? v.is_number_integer()
                  : std::is_floating_point_v<T> ? v.is_number()
                                                : false;
  if (!ok) return absl::InvalidArgumentError(absl::StrCat(source, ": \"", key, "\" has the wrong type: ", v.dump()));
  field = v.get<T>();
  return absl::OkStatus();
}

}  // namespace zt

#endif  // ZEROTRAIN_CORE_UTIL_JSON_FIELD_H_
