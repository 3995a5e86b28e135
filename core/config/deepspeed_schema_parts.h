// Pieces shared by deepspeed_schema.cc (the blocks of a config) and deepspeed_schema_optim.cc
// (optimizer and scheduler, whose params depend on their type).  Internal to core/config.
#ifndef ZEROTRAIN_CORE_CONFIG_DEEPSPEED_SCHEMA_PARTS_H_
#define ZEROTRAIN_CORE_CONFIG_DEEPSPEED_SCHEMA_PARTS_H_

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "core/config/schema.h"

namespace zt {
namespace config_internal {

using Schema = std::shared_ptr<ObjectSchema>;

inline Schema Obj(std::vector<KeySpec> keys) {
  auto s = std::make_shared<ObjectSchema>();
  s->keys = std::move(keys);
  return s;
}

// Pydantic-model blocks: DeepSpeed drops every "auto" among their immediate keys.
inline Schema PydanticObj(std::vector<KeySpec> keys) {
  Schema s = Obj(std::move(keys));
  s->auto_drops = true;
  return s;
}

inline bool Contains(const std::vector<std::string>& names, absl::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// "optimizer" and "scheduler" (deepspeed_schema_optim.cc).
Schema OptimizerSchema();
Schema SchedulerSchema();

}  // namespace config_internal
}  // namespace zt

#endif  // ZEROTRAIN_CORE_CONFIG_DEEPSPEED_SCHEMA_PARTS_H_
