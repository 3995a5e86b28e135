#include "core/config/schema.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/util/spelling.h"
#include "core/util/status_macros.h"

namespace zt {
namespace config_internal {

// ---- KeySpec builders ----------------------------------------------------------------------

KeySpec KeySpec::Alias(std::string alias) && {
  aliases.push_back(std::move(alias));
  return std::move(*this);
}
KeySpec KeySpec::Nullable() && {
  nullable = true;
  return std::move(*this);
}
KeySpec KeySpec::Required() && {
  required = true;
  return std::move(*this);
}
KeySpec KeySpec::JobAuto() && {
  auto_mode = AutoMode::kJob;
  return std::move(*this);
}
KeySpec KeySpec::DefaultOnAuto() && {
  auto_mode = AutoMode::kDefault;
  return std::move(*this);
}
KeySpec KeySpec::Min(double bound, bool exclusive) && {
  min = bound;
  min_exclusive = exclusive;
  return std::move(*this);
}
KeySpec KeySpec::Max(double bound, bool exclusive) && {
  max = bound;
  max_exclusive = exclusive;
  return std::move(*this);
}
KeySpec KeySpec::OneOf(std::vector<std::int64_t> values) && {
  int_choices = std::move(values);
  return std::move(*this);
}
KeySpec KeySpec::Check(std::function<std::string(const Json&)> rule) && {
  check = std::move(rule);
  return std::move(*this);
}
KeySpec KeySpec::Deprecated(std::string replacement) && {
  deprecated = std::move(replacement);
  return std::move(*this);
}

namespace {
KeySpec Make(std::string name, Kind kind, Json default_value) {
  KeySpec k;
  k.name = std::move(name);
  k.kind = kind;
  k.default_value = std::move(default_value);
  return k;
}
}  // namespace

KeySpec Bool(std::string name, bool default_value) { return Make(std::move(name), Kind::kBool, default_value); }
KeySpec Int(std::string name, Json default_value) {
  return Make(std::move(name), Kind::kInt, std::move(default_value));
}
KeySpec StrictInt(std::string name, Json default_value) {
  return Make(std::move(name), Kind::kStrictInt, std::move(default_value));
}
KeySpec Number(std::string name, Json default_value) {
  return Make(std::move(name), Kind::kNumber, std::move(default_value));
}
KeySpec String(std::string name, Json default_value) {
  return Make(std::move(name), Kind::kString, std::move(default_value));
}
KeySpec Enum(std::string name, std::vector<std::string> choices, Json default_value, bool case_insensitive) {
  KeySpec k = Make(std::move(name), Kind::kEnum, std::move(default_value));
  k.choices = std::move(choices);
  k.case_insensitive = case_insensitive;
  return k;
}
KeySpec Object(std::string name, std::shared_ptr<const ObjectSchema> schema) {
  KeySpec k = Make(std::move(name), Kind::kObject, nullptr);
  k.object = std::move(schema);
  return k;
}
KeySpec DynamicObject(std::string name, std::function<const ObjectSchema*(const Json& parent)> chooser) {
  KeySpec k = Make(std::move(name), Kind::kObject, nullptr);
  k.object_for = std::move(chooser);
  return k;
}
KeySpec StringList(std::string name, Json default_value) {
  return Make(std::move(name), Kind::kStringList, std::move(default_value));
}
KeySpec NumberPair(std::string name, Json default_value) {
  return Make(std::move(name), Kind::kNumberPair, std::move(default_value));
}
KeySpec Any(std::string name, Json default_value) {
  return Make(std::move(name), Kind::kAny, std::move(default_value));
}
KeySpec Removed(std::string name, std::string reason) {
  KeySpec k = Make(std::move(name), Kind::kAny, nullptr);
  k.removed = std::move(reason);
  return k;
}

const KeySpec* ObjectSchema::Find(absl::string_view name) const {
  for (const KeySpec& k : keys) {
    if (k.name == name) return &k;
  }
  for (const KeySpec& k : keys) {
    for (const std::string& a : k.aliases) {
      if (a == name) return &k;
    }
  }
  return nullptr;
}

// ---- typo suggestions ----------------------------------------------------------------------

namespace {

constexpr double kTwoTo63 = 9223372036854775808.0;

std::string Quoted(absl::string_view s) { return absl::StrCat("\"", s, "\""); }

std::string FormatBound(double v) {
  if (std::floor(v) == v && std::fabs(v) < 1e15) return absl::StrCat(static_cast<std::int64_t>(v));
  return absl::StrCat(v);
}

std::string ChoicesPhrase(const KeySpec& k) {
  std::vector<std::string> quoted;
  for (const std::string& c : k.choices) quoted.push_back(Quoted(c));
  return absl::StrCat("one of ", absl::StrJoin(quoted, ", "), k.case_insensitive ? " (any case)" : "");
}

std::string KindPhrase(const KeySpec& k) {
  switch (k.kind) {
    case Kind::kBool:
      return "true or false";
    case Kind::kInt:
      return "an integer";
    case Kind::kStrictInt:
      return "an integer written without a decimal point or exponent (DeepSpeed refuses e.g. 1000.0 here)";
    case Kind::kNumber:
      return "a number";
    case Kind::kString:
      return "a string";
    case Kind::kEnum:
      return ChoicesPhrase(k);
    case Kind::kObject:
      return "an object";
    case Kind::kStringList:
      return "a list of strings";
    case Kind::kNumberPair:
      return "a list of two numbers";
    case Kind::kAny:
      return "a valid value";
  }
  return "a valid value";
}

// An int64 from an integer, or (unless strict) from an integral float such as 2e8.
bool ToInt64(const Json& v, bool strict, std::int64_t* out) {
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return false;
    *out = static_cast<std::int64_t>(u);
    return true;
  }
  if (v.is_number_integer()) {
    *out = v.get<std::int64_t>();
    return true;
  }
  if (strict || !v.is_number_float()) return false;
  const double d = v.get<double>();
  if (!std::isfinite(d) || std::floor(d) != d || d >= kTwoTo63 || d < -kTwoTo63) return false;
  *out = static_cast<std::int64_t>(d);
  return true;
}

// "" when `v` is within the key's bounds, else the bounds ("> 0", "between 0 and 1").
std::string RangeViolation(const KeySpec& k, double v) {
  const bool low = k.min && (k.min_exclusive ? v <= *k.min : v < *k.min);
  const bool high = k.max && (k.max_exclusive ? v >= *k.max : v > *k.max);
  if (!low && !high) return "";
  if (k.min && k.max && !k.min_exclusive && !k.max_exclusive) {
    return absl::StrCat("between ", FormatBound(*k.min), " and ", FormatBound(*k.max));
  }
  std::vector<std::string> parts;
  if (k.min) parts.push_back(absl::StrCat(k.min_exclusive ? "> " : ">= ", FormatBound(*k.min)));
  if (k.max) parts.push_back(absl::StrCat(k.max_exclusive ? "< " : "<= ", FormatBound(*k.max)));
  return absl::StrJoin(parts, " and ");
}

// Where else in the schema a key of this exact name lives, for keys put at the wrong level.
void FindKeyElsewhere(const ObjectSchema& schema, const std::string& path, absl::string_view name,
                      std::vector<std::string>* found) {
  for (const KeySpec& k : schema.keys) {
    if (!k.removed.empty() || !k.deprecated.empty()) continue;
    if (k.name == name) found->push_back(path.empty() ? "the top level" : Quoted(path));
    if (k.object) FindKeyElsewhere(*k.object, JoinPath(path, k.name), name, found);
  }
}

class Walker {
 public:
  Walker(const ObjectSchema& root, absl::string_view source) : root_(root), source_(source) {}

  absl::Status WalkObject(const ObjectSchema& schema, const Json& in, const std::string& path, Json* out) {
    *out = Json::object();
    std::map<std::string, std::string> spelled;  // canonical name -> the spelling used
    for (const auto& item : in.items()) {
      const std::string& key = item.key();
      const Json& value = item.value();
      const std::string key_path = JoinPath(path, key);
      const KeySpec* spec = schema.Find(key);
      if (spec == nullptr) {
        if (schema.open) {
          (*out)[key] = value;
          continue;
        }
        return UnknownKey(schema, key, path);
      }
      if (!spec->removed.empty()) {
        return Error(absl::StrCat(Quoted(key_path), " is no longer accepted: ", spec->removed));
      }
      auto [it, fresh] = spelled.emplace(spec->name, key);
      if (!fresh) {
        return Error(absl::StrCat(Quoted(JoinPath(path, it->second)), " and ", Quoted(key_path),
                                  " are the same setting; give only one"));
      }
      if (value.is_null() && spec->nullable) continue;
      if (value.is_string() && value.get<std::string>() == "auto") {
        if (spec->auto_mode == AutoMode::kJob) {
          (*out)[spec->name] = value;
          continue;
        }
        if (spec->auto_mode == AutoMode::kDefault || schema.auto_drops) continue;
      }
      Json canonical;
      RETURN_IF_ERROR(WalkValue(*spec, value, in, JoinPath(path, spec->name), &canonical));
      (*out)[spec->name] = std::move(canonical);
    }
    for (const KeySpec& k : schema.keys) {
      if (k.required && !out->contains(k.name)) {
        return Error(absl::StrCat(Quoted(JoinPath(path, k.name)), " is required",
                                  schema.what.empty() ? "" : absl::StrCat(" by ", schema.what)));
      }
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Error(const std::string& message) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": ", message));
  }

  absl::Status TypeError(const KeySpec& spec, const std::string& path, const Json& value,
                         const std::string& expected) const {
    std::string message = absl::StrCat(Quoted(path), " must be ", expected, ", got ", ShortJson(value));
    if (spec.kind == Kind::kEnum && value.is_string()) {
      const std::string near = ClosestMatch(value.get<std::string>(), spec.choices);
      if (!near.empty()) absl::StrAppend(&message, "; did you mean ", Quoted(near), "?");
    }
    return Error(message);
  }

  absl::Status UnknownKey(const ObjectSchema& schema, const std::string& key, const std::string& path) const {
    std::vector<std::string> names;
    for (const KeySpec& k : schema.keys) {
      if (!k.removed.empty()) continue;
      names.push_back(k.name);
      for (const std::string& a : k.aliases) names.push_back(a);
    }
    std::string message = absl::StrCat("unknown key ", Quoted(JoinPath(path, key)));
    const std::string near = ClosestMatch(key, names);
    if (!near.empty()) {
      absl::StrAppend(&message, "; did you mean ", Quoted(near), "?");
    } else {
      std::vector<std::string> elsewhere;
      FindKeyElsewhere(root_, "", key, &elsewhere);
      if (!elsewhere.empty()) {
        absl::StrAppend(&message, "; ", Quoted(key), " is a key of ", absl::StrJoin(elsewhere, " and of "));
      }
    }
    if (!schema.what.empty()) {
      std::vector<std::string> valid;
      for (const KeySpec& k : schema.keys) {
        if (k.removed.empty()) valid.push_back(k.name);
      }
      absl::StrAppend(&message, " (", schema.what, " takes ", absl::StrJoin(valid, ", "), ")");
    }
    return Error(message);
  }

  absl::Status WalkValue(const KeySpec& spec, const Json& value, const Json& parent, const std::string& path,
                         Json* out) {
    const std::string expected = KindPhrase(spec);
    switch (spec.kind) {
      case Kind::kBool:
        if (!value.is_boolean()) return TypeError(spec, path, value, expected);
        *out = value;
        break;
      case Kind::kInt:
      case Kind::kStrictInt: {
        std::int64_t i = 0;
        if (!ToInt64(value, spec.kind == Kind::kStrictInt, &i)) return TypeError(spec, path, value, expected);
        if (!spec.int_choices.empty() &&
            std::find(spec.int_choices.begin(), spec.int_choices.end(), i) == spec.int_choices.end()) {
          return TypeError(spec, path, value, absl::StrCat("one of ", absl::StrJoin(spec.int_choices, ", ")));
        }
        const std::string range = RangeViolation(spec, static_cast<double>(i));
        if (!range.empty()) return TypeError(spec, path, value, range);
        *out = i;
        break;
      }
      case Kind::kNumber: {
        if (!value.is_number()) return TypeError(spec, path, value, expected);
        const std::string range = RangeViolation(spec, value.get<double>());
        if (!range.empty()) return TypeError(spec, path, value, range);
        *out = value;
        break;
      }
      case Kind::kString:
        if (!value.is_string()) return TypeError(spec, path, value, expected);
        *out = value;
        break;
      case Kind::kEnum: {
        if (!value.is_string()) return TypeError(spec, path, value, expected);
        const std::string s = value.get<std::string>();
        auto match = std::find_if(spec.choices.begin(), spec.choices.end(), [&](const std::string& c) {
          return spec.case_insensitive ? absl::EqualsIgnoreCase(c, s) : c == s;
        });
        if (match == spec.choices.end()) return TypeError(spec, path, value, expected);
        *out = *match;
        break;
      }
      case Kind::kObject: {
        if (!value.is_object()) return TypeError(spec, path, value, expected);
        const ObjectSchema* child = spec.object       ? spec.object.get()
                                    : spec.object_for ? spec.object_for(parent)
                                                      : nullptr;
        if (child == nullptr) {
          *out = value;
        } else {
          RETURN_IF_ERROR(WalkObject(*child, value, path, out));
        }
        break;
      }
      case Kind::kStringList:
        if (!value.is_array() ||
            !std::all_of(value.begin(), value.end(), [](const Json& e) { return e.is_string(); })) {
          return TypeError(spec, path, value, expected);
        }
        *out = value;
        break;
      case Kind::kNumberPair:
        if (!value.is_array() || value.size() != 2 || !value[0].is_number() || !value[1].is_number()) {
          return TypeError(spec, path, value, expected);
        }
        *out = value;
        break;
      case Kind::kAny:
        *out = value;
        break;
    }
    if (spec.check) {
      const std::string rule = spec.check(*out);
      if (!rule.empty()) return TypeError(spec, path, value, rule);
    }
    return absl::OkStatus();
  }

  const ObjectSchema& root_;
  std::string source_;
};

}  // namespace

absl::StatusOr<Json> Walk(const ObjectSchema& root, const Json& doc, absl::string_view source) {
  if (!doc.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": a DeepSpeed config must be a JSON object, got ", ShortJson(doc)));
  }
  Walker walker(root, source);
  Json out;
  absl::Status status = walker.WalkObject(root, doc, "", &out);
  if (!status.ok()) return status;
  return out;
}

absl::Status CheckPath(const ObjectSchema& root, const Json& doc, absl::string_view path, absl::string_view source) {
  const std::vector<std::string> parts = absl::StrSplit(path, '.');
  const ObjectSchema* schema = &root;
  const Json* node = &doc;
  const Json empty = Json::object();
  std::string walked;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const std::string& part = parts[i];
    if (part.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": ", Quoted(path), " is not a dotted key path"));
    }
    if (schema == nullptr) return absl::OkStatus();  // free-form below this point
    const KeySpec* spec = schema->Find(part);
    if (spec == nullptr) {
      if (schema->open) return absl::OkStatus();
      std::vector<std::string> names;
      for (const KeySpec& k : schema->keys) {
        if (!k.removed.empty()) continue;
        names.push_back(k.name);
        for (const std::string& a : k.aliases) names.push_back(a);
      }
      std::string message = absl::StrCat(source, ": unknown key ", Quoted(JoinPath(walked, part)));
      const std::string near = ClosestMatch(part, names);
      if (!near.empty()) absl::StrAppend(&message, "; did you mean ", Quoted(near), "?");
      return absl::InvalidArgumentError(message);
    }
    if (!spec->removed.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": ", Quoted(JoinPath(walked, part)), " is no longer accepted: ", spec->removed));
    }
    walked = JoinPath(walked, part);
    if (i + 1 == parts.size()) return absl::OkStatus();
    if (spec->kind != Kind::kObject) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": ", Quoted(walked), " is not an object, so ", Quoted(path), " cannot be set"));
    }
    const Json& here = node != nullptr && node->is_object() ? *node : empty;
    schema = spec->object ? spec->object.get() : spec->object_for ? spec->object_for(here) : nullptr;
    const auto child = here.find(part);
    node = child != here.end() ? &*child : nullptr;
  }
  return absl::OkStatus();
}

std::vector<std::string> NonDefaultKeys(const ObjectSchema& schema, const Json& obj, const std::string& path) {
  std::vector<std::string> lines;
  if (!obj.is_object()) return lines;
  for (const auto& item : obj.items()) {
    const std::string key_path = JoinPath(path, item.key());
    const KeySpec* spec = schema.Find(item.key());
    if (spec == nullptr) {
      lines.push_back(absl::StrCat(key_path, "=", ShortJson(item.value())));
      continue;
    }
    if (spec->kind == Kind::kObject && item.value().is_object()) {
      if (spec->object) {
        std::vector<std::string> inner = NonDefaultKeys(*spec->object, item.value(), key_path);
        lines.insert(lines.end(), inner.begin(), inner.end());
      } else if (!item.value().empty()) {
        lines.push_back(absl::StrCat(key_path, "=", ShortJson(item.value())));
      }
      continue;
    }
    if (item.value() != spec->default_value) lines.push_back(absl::StrCat(key_path, "=", ShortJson(item.value())));
  }
  return lines;
}

}  // namespace config_internal
}  // namespace zt
