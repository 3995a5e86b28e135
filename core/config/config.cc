// The parse pipeline.  Each step is in the file config_internal.h names; the order matters:
//
//   strict JSON -> legacy zero bool -> schema walk (types, unknown/removed keys, aliases, "auto"
//   that means a default) -> deprecated names -> "auto" from the job (HF) -> leftover "auto"s ->
//   record -> batch sizes -> rules across keys -> warnings and not-implemented features.
#include "core/config/config.h"

#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/config/config_internal.h"
#include "core/config/deepspeed_schema.h"
#include "core/config/json_text.h"
#include "core/config/schema.h"
#include "core/util/file_util.h"
#include "core/util/logging.h"
#include "core/util/status_macros.h"

namespace zt {
namespace {

using config_internal::AddWarnings;
using config_internal::BatchAutos;
using config_internal::CheckAutoValues;
using config_internal::CheckCrossKeys;
using config_internal::DeepSpeedSchema;
using config_internal::FillFromJob;
using config_internal::Json;
using config_internal::ListNotImplemented;
using config_internal::ParseMode;
using config_internal::ParseStrictJson;
using config_internal::ReadRecord;
using config_internal::ResolveBatch;
using config_internal::ResolveLeftoverAuto;
using config_internal::RewriteDeprecated;
using config_internal::RewriteLegacyZeroBool;
using config_internal::WarnIfBatchDiffersFromJob;

// Each distinct warning is logged once per process, however often configs are parsed (every rank
// and every tool that reads the same file would otherwise repeat it).
void LogWarningsOnce(const Config& config) {
  static auto* mu = new std::mutex();
  static auto* seen = new std::set<std::string>();
  std::lock_guard<std::mutex> lock(*mu);
  for (const std::string& w : config.warnings) {
    if (seen->insert(w).second) ZT_LOG(WARNING) << config.source << ": " << w;
  }
}

absl::StatusOr<Config> Parse(const std::string& text, const std::string& source, const AutoValues& job,
                             ParseMode mode) {
  RETURN_IF_ERROR(CheckAutoValues(job), _.WithPrefix(source));
  ASSIGN_OR_RETURN(Json raw, ParseStrictJson(text, source));
  Config config;
  config.source = source;
  RewriteLegacyZeroBool(&raw, &config.warnings);
  // An optimizer or scheduler without params still has to meet its params' required keys.
  for (const char* block : {"optimizer", "scheduler"}) {
    const auto it = raw.is_object() ? raw.find(block) : raw.end();
    if (it != raw.end() && it->is_object() && !it->contains("params")) (*it)["params"] = Json::object();
  }
  ASSIGN_OR_RETURN(Json doc, config_internal::Walk(DeepSpeedSchema(), raw, source));
  RETURN_IF_ERROR(RewriteDeprecated(&doc, &config.warnings, source));
  RETURN_IF_ERROR(FillFromJob(&doc, job, source));
  BatchAutos batch;
  RETURN_IF_ERROR(ResolveLeftoverAuto(&doc, mode, &batch, &config.unresolved_auto, &config.warnings, source));
  ReadRecord(doc, &config);
  RETURN_IF_ERROR(ResolveBatch(doc, batch, job.world_size, mode, &config));
  WarnIfBatchDiffersFromJob(job, &config);
  RETURN_IF_ERROR(CheckCrossKeys(doc, config));
  AddWarnings(doc, config, &config.warnings);
  config.not_implemented = ListNotImplemented(doc, config);
  return config;
}

}  // namespace

absl::StatusOr<Config> Config::FromJson(const std::string& text, const std::string& source, const AutoValues& job) {
  ASSIGN_OR_RETURN(Config config, Parse(text, source, job, ParseMode::kJob));
  LogWarningsOnce(config);
  return config;
}

absl::StatusOr<Config> Config::FromFile(const std::string& path, const AutoValues& job) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": is a directory, not a DeepSpeed config file"));
  }
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  return FromJson(*text, path, job);
}

absl::StatusOr<Config> ParseUnresolved(const std::string& text, const std::string& source, const AutoValues& job) {
  // Not logged: the caller (ds_config check) prints the warnings itself.
  return Parse(text, source, job, ParseMode::kCheck);
}

absl::Status Config::RequireImplemented() const {
  if (!unresolved_auto.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(source, ": \"auto\" values are still unresolved (", absl::StrJoin(unresolved_auto, ", "),
                     "); a job reads its config with Config::FromFile/FromJson and its own AutoValues"));
  }
  if (not_implemented.empty()) return absl::OkStatus();
  std::vector<std::string> lines;
  for (const std::string& item : not_implemented)
    lines.push_back(absl::StrCat(item, " is not supported yet by zerotrain"));
  return absl::UnimplementedError(absl::StrCat(source, ": ", absl::StrJoin(lines, "; ")));
}

std::string Config::ToJson(int indent) const { return config_internal::WriteRecord(*this).dump(indent); }

}  // namespace zt
