// Strict JSON text to a JSON tree, with the errors a config user needs: a syntax error names the
// line and column, and a duplicate key (which nlohmann-json would silently collapse to the last
// value, and which DeepSpeed rejects) names its JSON path.  Internal to core/config.
//
//   ASSIGN_OR_RETURN(Json doc, ParseStrictJson(text, "ds_config.json"));
//   // "ds_config.json: invalid JSON at line 3, column 1: syntax error while parsing object ..."
//   // "ds_config.json: duplicate key "zero_optimization.stage" (DeepSpeed refuses duplicate keys)"
#ifndef ZEROTRAIN_CORE_CONFIG_JSON_TEXT_H_
#define ZEROTRAIN_CORE_CONFIG_JSON_TEXT_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace zt {
namespace config_internal {

// Keys keep the order they had in the file, so errors and printed configs follow the user's order.
using Json = nlohmann::ordered_json;

// Parses `text` as one strict JSON value (no comments, no trailing commas, no duplicate keys).
// Errors are kInvalidArgument and start with `source`.
absl::StatusOr<Json> ParseStrictJson(absl::string_view text, absl::string_view source);

// "line L, column C" of the 1-based byte index nlohmann-json reports for a parse error.
std::string LineColumn(absl::string_view text, std::size_t byte);

// A JSON value as it would appear in the file, shortened for messages.
std::string ShortJson(const Json& value);

// "a.b" + "c" -> "a.b.c"; "" + "c" -> "c".
std::string JoinPath(absl::string_view parent, absl::string_view key);

}  // namespace config_internal
}  // namespace zt

#endif  // ZEROTRAIN_CORE_CONFIG_JSON_TEXT_H_
