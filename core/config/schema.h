// A strict schema for JSON configs and the walker that checks a document against it.  Internal to
// core/config: deepspeed_schema.h describes DeepSpeed's keys with it, config.cc walks user files.
//
//   auto fp16 = std::make_shared<ObjectSchema>();
//   fp16->keys = {Bool("enabled", false).JobAuto(), Int("loss_scale_window", 1000)};
//   ObjectSchema root;
//   root.keys = {Object("fp16", fp16), Int("train_batch_size").Nullable().JobAuto()};
//   ASSIGN_OR_RETURN(Json canonical, Walk(root, doc, "ds_config.json"));
//
// The walker refuses unknown keys (naming the closest valid key), wrong types (naming the path,
// the expected type and the value), removed keys (with the reason) and out-of-range values.
// Its output is canonical: aliases renamed to the key's name, integral numbers written as 2e8
// turned into integers, case-insensitive enum values spelled as the schema spells them, nulls of
// nullable keys (null means "not set") and "auto"s that mean "the default" dropped.
#ifndef ZEROTRAIN_CORE_CONFIG_SCHEMA_H_
#define ZEROTRAIN_CORE_CONFIG_SCHEMA_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/config/json_text.h"

namespace zt {
namespace config_internal {

enum class Kind {
  kBool,        // true or false (not 0/1: one spelling, so configs read the same everywhere)
  kInt,         // an integer; integral floats such as 2e8 are accepted and stored as integers
  kStrictInt,   // an integer written as one (DeepSpeed's isinstance(int) checks refuse 1000.0)
  kNumber,      // any number
  kString,      // any string (see `check` for further rules)
  kEnum,        // one of `choices`
  kObject,      // an object described by `object` (or chosen by `object_for`)
  kStringList,  // a list of strings
  kNumberPair,  // a list of exactly two numbers (Adam's betas)
  kAny,         // any JSON value (see `check`)
};

// What the string "auto" means for a key.
enum class AutoMode {
  kNone,     // nothing special: "auto" is checked like any other value
  kDefault,  // "auto" means the default: the key is dropped (DeepSpeed's pydantic models do this)
  kJob,      // the job fills "auto" from its own values (HF's integration); the walker keeps it
};

struct ObjectSchema;

// One key of an object.  Built with the factory functions below and the chained modifiers.
struct KeySpec {
  std::string name;  // canonical name, as printed
  Kind kind = Kind::kAny;
  std::vector<std::string> aliases;  // other accepted spellings, renamed to `name`
  bool nullable = false;             // null means "not set" and is dropped
  bool required = false;             // must be present (after aliases)
  AutoMode auto_mode = AutoMode::kNone;
  std::vector<std::string> choices;       // kEnum
  bool case_insensitive = false;          // kEnum
  std::vector<std::int64_t> int_choices;  // kInt: the only accepted values, when not empty
  std::optional<double> min, max;
  bool min_exclusive = false, max_exclusive = false;
  std::shared_ptr<const ObjectSchema> object;                  // kObject
  std::function<const ObjectSchema*(const Json&)> object_for;  // kObject chosen from the parent object
  std::string removed;                                         // not empty: the key is refused, this says why
  std::string deprecated;  // not empty: the replacement; the caller rewrites such keys
  // Further rule: returns "" when `value` is fine, else what it must be ("a list of strings").
  std::function<std::string(const Json& value)> check;
  Json default_value;  // the default, for "is this block non-default?"; null when none or None

  KeySpec Alias(std::string alias) &&;
  KeySpec Nullable() &&;
  KeySpec Required() &&;
  KeySpec JobAuto() &&;
  KeySpec DefaultOnAuto() &&;
  KeySpec Min(double bound, bool exclusive = false) &&;
  KeySpec Max(double bound, bool exclusive = false) &&;
  KeySpec OneOf(std::vector<std::int64_t> values) &&;
  KeySpec Check(std::function<std::string(const Json&)> rule) &&;
  KeySpec Deprecated(std::string replacement) &&;
};

KeySpec Bool(std::string name, bool default_value);
KeySpec Int(std::string name, Json default_value = nullptr);
KeySpec StrictInt(std::string name, Json default_value = nullptr);
KeySpec Number(std::string name, Json default_value = nullptr);
KeySpec String(std::string name, Json default_value = nullptr);
KeySpec Enum(std::string name, std::vector<std::string> choices, Json default_value = nullptr,
             bool case_insensitive = false);
KeySpec Object(std::string name, std::shared_ptr<const ObjectSchema> schema);
// An object whose schema depends on its parent (optimizer.params on optimizer.type); the chooser
// returns nullptr for "any keys".
KeySpec DynamicObject(std::string name, std::function<const ObjectSchema*(const Json& parent)> chooser);
KeySpec StringList(std::string name, Json default_value = nullptr);
KeySpec NumberPair(std::string name, Json default_value = nullptr);
KeySpec Any(std::string name, Json default_value = nullptr);
KeySpec Removed(std::string name, std::string reason);

struct ObjectSchema {
  // Not empty for objects whose valid keys depend on a choice elsewhere ("WarmupLR"): unknown-key
  // errors then list the valid keys, "(WarmupLR takes warmup_min_lr, ...)".
  std::string what;
  std::vector<KeySpec> keys;
  bool open = false;        // unknown keys are kept as they are (DeepSpeed's free-form dicts)
  bool auto_drops = false;  // "auto" on any key not marked JobAuto means its default (pydantic)

  // The key named `name` or with `name` as an alias; nullptr if none.
  const KeySpec* Find(absl::string_view name) const;
};

// Checks `doc` (which must be an object) against `root`; returns the canonical document.
// Errors are kInvalidArgument "<source>: <what is wrong>".
absl::StatusOr<Json> Walk(const ObjectSchema& root, const Json& doc, absl::string_view source);

// Checks that the dotted `path` (e.g. "optimizer.params.lr") names a key the schema knows, for
// command-line overrides; `doc` chooses dynamic schemas (optimizer.params by optimizer.type).
absl::Status CheckPath(const ObjectSchema& root, const Json& doc, absl::string_view path, absl::string_view source);

// The keys under `obj` (canonical, at `path`) whose values differ from the schema's defaults, as
// "path=value" lines; a non-empty free-form object counts as non-default.
std::vector<std::string> NonDefaultKeys(const ObjectSchema& schema, const Json& obj, const std::string& path);

}  // namespace config_internal
}  // namespace zt

#endif  // ZEROTRAIN_CORE_CONFIG_SCHEMA_H_
