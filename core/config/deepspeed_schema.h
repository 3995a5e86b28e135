// Every key DeepSpeed 0.19.8 reads from a training config, at every level, as a schema.h schema:
// types, defaults, ranges, aliases, deprecated names and removed keys.  Internal to core/config.
//
//   ASSIGN_OR_RETURN(Json canonical, Walk(DeepSpeedSchema(), doc, source));
//
// Where DeepSpeed has free-form dicts (optimizers other than Adam, torch schedulers, data
// efficiency's curriculum blocks, tensor-parallel partition configs) the schema is open there.
#ifndef ZEROTRAIN_CORE_CONFIG_DEEPSPEED_SCHEMA_H_
#define ZEROTRAIN_CORE_CONFIG_DEEPSPEED_SCHEMA_H_

#include <string>

#include "absl/strings/string_view.h"
#include "core/config/schema.h"

namespace zt {
namespace config_internal {

// The whole config.  Built once, never destroyed.
const ObjectSchema& DeepSpeedSchema();

// The schema of a top-level block ("zero_optimization", "checkpoint", ...); nullptr if unknown.
const ObjectSchema* BlockSchema(absl::string_view key);

// Optimizer names DeepSpeed builds itself, matched in any case (adam, adamw, lamb, ...).
bool IsDeepSpeedOptimizer(absl::string_view type);
// Names DeepSpeed looks up in torch.optim (case-sensitive): SGD, RMSprop, ...
bool IsTorchOptimizer(absl::string_view type);
// DeepSpeed's own schedulers (WarmupLR, ...), case-sensitive.
bool IsDeepSpeedScheduler(absl::string_view type);
// Names DeepSpeed looks up in torch.optim.lr_scheduler (case-sensitive): StepLR, ...
bool IsTorchScheduler(absl::string_view type);

}  // namespace config_internal
}  // namespace zt

#endif  // ZEROTRAIN_CORE_CONFIG_DEEPSPEED_SCHEMA_H_
