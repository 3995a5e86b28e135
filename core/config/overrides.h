// Command-line overrides of a DeepSpeed config, as `ds_config check --set key.path=value` takes
// them: each value is read as JSON when it parses as JSON, else as a string, and is set at its
// dotted path before the config is resolved.  A path the DeepSpeed schema does not know is an
// error naming the closest valid key.
//
//   ASSIGN_OR_RETURN(std::string text, ApplyConfigOverrides(file_text, "ds_config.json",
//                                                           {"optimizer.params.lr=1e-4",
//                                                            "scheduler.type=WarmupLR"}));
//   ASSIGN_OR_RETURN(Config config, ParseUnresolved(text, "ds_config.json", job));
#ifndef ZEROTRAIN_CORE_CONFIG_OVERRIDES_H_
#define ZEROTRAIN_CORE_CONFIG_OVERRIDES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace zt {

// Returns the config text with every "key.path=value" of `assignments` applied in order.
absl::StatusOr<std::string> ApplyConfigOverrides(const std::string& text, const std::string& source,
                                                 const std::vector<std::string>& assignments);

}  // namespace zt

#endif  // ZEROTRAIN_CORE_CONFIG_OVERRIDES_H_
