#include "core/config/overrides.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/config/deepspeed_schema.h"
#include "core/config/json_text.h"
#include "core/config/schema.h"
#include "core/util/status_macros.h"

namespace zt {

using config_internal::Json;

absl::StatusOr<std::string> ApplyConfigOverrides(const std::string& text, const std::string& source,
                                                 const std::vector<std::string>& assignments) {
  ASSIGN_OR_RETURN(Json doc, config_internal::ParseStrictJson(text, source));
  if (!doc.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": a DeepSpeed config must be a JSON object"));
  }
  for (const std::string& assignment : assignments) {
    const std::string where = absl::StrCat("--set ", assignment);
    const std::size_t eq = assignment.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": expected key.path=value"));
    }
    const std::string path = assignment.substr(0, eq);
    const std::string raw = assignment.substr(eq + 1);
    RETURN_IF_ERROR(config_internal::CheckPath(config_internal::DeepSpeedSchema(), doc, path, where));
    // A value that is not JSON is a string, so `--set scheduler.type=WarmupLR` needs no quotes.
    Json value = Json::parse(raw, nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded()) value = raw;
    Json* node = &doc;
    std::string walked;
    for (const std::string& part : std::vector<std::string>(absl::StrSplit(path, '.'))) {
      if (node->is_null()) *node = Json::object();
      if (!node->is_object()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": \"", walked, "\" is ", node->dump(), " in ", source, ", not an object"));
      }
      walked = config_internal::JoinPath(walked, part);
      node = &(*node)[part];
    }
    *node = std::move(value);
  }
  return doc.dump(2);
}

}  // namespace zt
