// The steps of Config's parse, one concern per file (internal to core/config):
//
//   config.cc          the pipeline: parse, walk the schema, the steps below, logging
//   config_resolve.cc  deprecated names, "auto" filled from the job (HF's rules), leftovers, batch sizes
//   config_fields.cc   the JSON path <-> record field table: reading the record, ToJson
//   config_checks.cc   rules across keys, and what this build does not implement yet
#ifndef ZEROTRAIN_CORE_CONFIG_CONFIG_INTERNAL_H_
#define ZEROTRAIN_CORE_CONFIG_CONFIG_INTERNAL_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/config/config.h"
#include "core/config/json_text.h"

namespace zt {
namespace config_internal {

// FromJson resolves every "auto"; ParseUnresolved keeps the ones a job would fill.
enum class ParseMode { kJob, kCheck };

// ---- JSON paths ----
// The value at dotted `path`, or nullptr.
const Json* Lookup(const Json& doc, absl::string_view path);
// Sets the value at dotted `path`, creating objects on the way.
void SetAt(Json* doc, absl::string_view path, Json value);
// Removes the key at dotted `path` if present.
void EraseAt(Json* doc, absl::string_view path);

// ---- config_resolve.cc ----
// zero_optimization written as a bool (DeepSpeed's legacy form), before the schema walk.
void RewriteLegacyZeroBool(Json* doc, std::vector<std::string>* warnings);
// Deprecated names to their replacements, one warning each; old and new together is an error.
absl::Status RewriteDeprecated(Json* doc, std::vector<std::string>* warnings, absl::string_view source);
// Checks the job's own values (negative batch sizes and such).
absl::Status CheckAutoValues(const AutoValues& job);
// HF's trainer_config_process/finalize: fills "auto" from `job`, and fails listing every explicit
// value that contradicts a job value.
absl::Status FillFromJob(Json* doc, const AutoValues& job, absl::string_view source);

// Which batch keys were "auto" with nothing to fill them (treated as absent).
struct BatchAutos {
  bool train_batch_size = false;
  bool micro_batch = false;
  bool accumulation = false;
  bool any() const { return train_batch_size || micro_batch || accumulation; }
};
// The "auto"s the job left: DeepSpeed's default where there is one (kJob), or kept as unresolved
// (kCheck, listed in `unresolved`).  Batch keys are removed and reported in `batch`.
absl::Status ResolveLeftoverAuto(Json* doc, ParseMode mode, BatchAutos* batch, std::vector<std::string>* unresolved,
                                 std::vector<std::string>* warnings, absl::string_view source);
// DeepSpeed's batch inference and checks (runtime/config.py), on config->train_batch_size etc.
absl::Status ResolveBatch(const Json& doc, const BatchAutos& batch, int world_size, ParseMode mode, Config* config);
// Warns when the batch the config settles on is not the job's (a key absent from the config is
// neither filled nor compared, as in HF, so DeepSpeed's inference decides it).
void WarnIfBatchDiffersFromJob(const AutoValues& job, Config* config);

// ---- config_fields.cc ----
// The record from the canonical document (every value already checked by the schema walk).
void ReadRecord(const Json& doc, Config* config);
// The record as canonical DeepSpeed JSON; "auto" at the paths of config.unresolved_auto.
Json WriteRecord(const Config& config);

// ---- config_checks.cc ----
// Rules that involve more than one key (fp16 with bf16, offload needs a stage, ...).
absl::Status CheckCrossKeys(const Json& doc, const Config& config);
// DeepSpeed's warnings (vocabulary_size alignment, total steps below warmup, ...).
void AddWarnings(const Json& doc, const Config& config, std::vector<std::string>* warnings);
// Valid DeepSpeed that this build does not run yet, one readable line each.
std::vector<std::string> ListNotImplemented(const Json& doc, const Config& config);

}  // namespace config_internal
}  // namespace zt

#endif  // ZEROTRAIN_CORE_CONFIG_CONFIG_INTERNAL_H_
