// Deprecated names, "auto" values and batch sizes: the parts of a config that are resolved rather
// than read.  "auto" follows HF transformers' integration/deepspeed.py (trainer_config_process and
// trainer_config_finalize); batch sizes follow DeepSpeed's runtime/config.py.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/config/config.h"
#include "core/config/config_internal.h"
#include "core/util/status_macros.h"

namespace zt {
namespace config_internal {
namespace {

std::string Quoted(absl::string_view s) { return absl::StrCat("\"", s, "\""); }

absl::Status Invalid(absl::string_view source, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": ", message));
}

Json* MutableLookup(Json* doc, absl::string_view path) { return const_cast<Json*>(Lookup(*doc, path)); }

// Moves the deprecated key `old_key` of `block` to `new_key`, transformed by `convert` (which may
// return null: "no value").  Both keys present is an error, as in DeepSpeed.
absl::Status Replace(Json* block, absl::string_view block_path, const std::string& old_key, const std::string& new_key,
                     const std::function<Json(const Json&)>& convert, std::vector<std::string>* warnings,
                     absl::string_view source) {
  if (!block->is_object() || !block->contains(old_key)) return absl::OkStatus();
  const std::string old_path = JoinPath(block_path, old_key);
  const std::string new_path = JoinPath(block_path, new_key);
  if (block->contains(new_key)) {
    return Invalid(source, absl::StrCat(Quoted(old_path), " is the deprecated name of ", Quoted(new_path),
                                        "; both are set, keep only ", Quoted(new_path)));
  }
  warnings->push_back(absl::StrCat(Quoted(old_path), " is deprecated; use ", Quoted(new_path), " instead"));
  Json value = convert((*block)[old_key]);
  block->erase(old_key);
  if (!value.is_null()) (*block)[new_key] = std::move(value);
  return absl::OkStatus();
}

Json Same(const Json& v) { return v; }
Json CpuIfTrue(const Json& v) { return v.get<bool>() ? Json{{"device", "cpu"}} : Json(nullptr); }

}  // namespace

void RewriteLegacyZeroBool(Json* doc, std::vector<std::string>* warnings) {
  if (!doc->is_object()) return;
  const auto zero = doc->find("zero_optimization");
  const auto allgather = doc->find("allgather_size");
  if (zero == doc->end() || !zero->is_boolean()) {
    if (allgather != doc->end()) {
      warnings->push_back(
          "\"allgather_size\" is read only with the legacy boolean \"zero_optimization\" and is ignored; set "
          "\"zero_optimization.allgather_bucket_size\" instead");
    }
    return;
  }
  const int stage = zero->get<bool>() ? 1 : 0;
  Json block = {{"stage", stage}};
  if (stage == 1) {
    block["allgather_bucket_size"] = allgather != doc->end() && allgather->is_number() ? *allgather : Json(500000000);
  }
  warnings->push_back(absl::StrCat("\"zero_optimization\": ", stage == 1 ? "true" : "false",
                                   " is DeepSpeed's deprecated form; write {\"stage\": ", stage, "} instead"));
  *zero = std::move(block);
}

absl::Status RewriteDeprecated(Json* doc, std::vector<std::string>* warnings, absl::string_view source) {
  if (doc->contains("bfloat16")) {
    if (doc->contains("bf16")) {
      // DeepSpeed would silently ignore "bfloat16" here; two blocks for one setting is a mistake.
      return Invalid(source, "\"bfloat16\" is the deprecated name of \"bf16\"; both are set, keep only \"bf16\"");
    }
    warnings->push_back("\"bfloat16\" is deprecated; use \"bf16\" instead");
    (*doc)["bf16"] = (*doc)["bfloat16"];
    doc->erase("bfloat16");
  }
  if (Json* zero = MutableLookup(doc, "zero_optimization"); zero != nullptr) {
    const absl::string_view z = "zero_optimization";
    RETURN_IF_ERROR(Replace(zero, z, "cpu_offload", "offload_optimizer", CpuIfTrue, warnings, source));
    RETURN_IF_ERROR(Replace(zero, z, "cpu_offload_param", "offload_param", CpuIfTrue, warnings, source));
    RETURN_IF_ERROR(Replace(zero, z, "stage3_gather_fp16_weights_on_model_save",
                            "stage3_gather_16bit_weights_on_model_save", Same, warnings, source));
    if (zero->contains("cpu_offload_use_pin_memory")) {
      warnings->push_back(
          "\"zero_optimization.cpu_offload_use_pin_memory\" is deprecated and ignored; set \"pin_memory\" in "
          "\"offload_optimizer\" or \"offload_param\" instead");
      zero->erase("cpu_offload_use_pin_memory");
    }
  }
  if (Json* aio = MutableLookup(doc, "aio"); aio != nullptr) {
    // Current DeepSpeed ignores thread_count silently; its docs still show it, so honour it.
    RETURN_IF_ERROR(Replace(aio, "aio", "thread_count", "intra_op_parallelism", Same, warnings, source));
  }
  return absl::OkStatus();
}

absl::Status CheckAutoValues(const AutoValues& job) {
  std::vector<std::string> bad;
  auto need = [&bad](bool ok, absl::string_view what) {
    if (!ok) bad.push_back(std::string(what));
  };
  need(job.world_size >= 1, absl::StrCat("world_size must be >= 1, got ", job.world_size));
  if (job.micro_batch) need(*job.micro_batch > 0, absl::StrCat("micro_batch must be > 0, got ", *job.micro_batch));
  if (job.gradient_accumulation_steps) {
    need(*job.gradient_accumulation_steps > 0,
         absl::StrCat("gradient_accumulation_steps must be > 0, got ", *job.gradient_accumulation_steps));
  }
  if (job.lr) need(*job.lr >= 0, absl::StrCat("lr must be >= 0, got ", *job.lr));
  if (job.betas) {
    const auto [b1, b2] = *job.betas;
    need(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1, absl::StrCat("betas must be in [0, 1), got ", b1, ", ", b2));
  }
  if (job.eps) need(*job.eps >= 0, absl::StrCat("eps must be >= 0, got ", *job.eps));
  if (job.weight_decay) {
    need(*job.weight_decay >= 0, absl::StrCat("weight_decay must be >= 0, got ", *job.weight_decay));
  }
  if (job.max_grad_norm) {
    need(*job.max_grad_norm >= 0, absl::StrCat("max_grad_norm must be >= 0, got ", *job.max_grad_norm));
  }
  if (job.warmup_steps) {
    need(*job.warmup_steps >= 0, absl::StrCat("warmup_steps must be >= 0, got ", *job.warmup_steps));
  }
  if (job.total_steps) need(*job.total_steps >= 0, absl::StrCat("total_steps must be >= 0, got ", *job.total_steps));
  if (job.hidden_size) {
    need(*job.hidden_size > 0 && *job.hidden_size <= 3000000000LL,
         absl::StrCat("hidden_size must be in 1..3e9, got ", *job.hidden_size));
  }
  if (bad.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("job values for \"auto\": ", absl::StrJoin(bad, "; ")));
}

absl::Status FillFromJob(Json* doc, const AutoValues& job, absl::string_view source) {
  std::vector<std::string> mismatches;
  // HF's fill_match / fill_only: only a key already present is touched; "auto" takes the job's
  // value; an explicit value that differs is a mismatch when must_match.
  auto fill = [&](absl::string_view path, const Json& value, absl::string_view job_name, bool must_match) {
    Json* node = MutableLookup(doc, path);
    if (node == nullptr) return;
    if (*node == "auto") {
      *node = value;
    } else if (must_match && *node != value) {
      mismatches.push_back(
          absl::StrCat("- ds ", path, "=", ShortJson(*node), " vs job ", job_name, "=", ShortJson(value)));
    }
  };
  // trainer_config_process
  if (job.micro_batch) fill("train_micro_batch_size_per_gpu", *job.micro_batch, "micro_batch", true);
  if (job.gradient_accumulation_steps) {
    fill("gradient_accumulation_steps", *job.gradient_accumulation_steps, "gradient_accumulation_steps", true);
  }
  if (job.micro_batch && job.gradient_accumulation_steps) {
    const __int128 product =
        static_cast<__int128>(job.world_size) * *job.micro_batch * *job.gradient_accumulation_steps;
    if (product > std::numeric_limits<std::int64_t>::max()) {
      return Invalid(source, "the job's world_size x micro_batch x gradient_accumulation_steps overflows");
    }
    fill("train_batch_size", static_cast<std::int64_t>(product), "world_size*micro_batch*gradient_accumulation_steps",
         true);
  }
  if (job.max_grad_norm) fill("gradient_clipping", *job.max_grad_norm, "max_grad_norm", true);
  if (job.lr) fill("optimizer.params.lr", *job.lr, "lr", true);
  if (job.betas) fill("optimizer.params.betas", Json::array({job.betas->first, job.betas->second}), "betas", true);
  if (job.eps) fill("optimizer.params.eps", *job.eps, "eps", true);
  if (job.weight_decay) fill("optimizer.params.weight_decay", *job.weight_decay, "weight_decay", true);
  fill("scheduler.params.warmup_min_lr", 0, "", false);
  if (job.lr) fill("scheduler.params.warmup_max_lr", *job.lr, "lr", true);
  if (job.fp16) fill("fp16.enabled", *job.fp16, "fp16", true);
  if (job.bf16) fill("bf16.enabled", *job.bf16, "bf16", true);
  // trainer_config_finalize
  if (job.hidden_size) {
    const std::int64_t h = *job.hidden_size;
    fill("zero_optimization.reduce_bucket_size", h * h, "", false);
    const Json* stage = Lookup(*doc, "zero_optimization.stage");
    if (stage != nullptr && *stage == 3) {
      // int(0.9 * hidden_size * hidden_size): evaluated left to right in double, then truncated.
      fill("zero_optimization.stage3_prefetch_bucket_size", static_cast<std::int64_t>(0.9 * h * h), "", false);
      fill("zero_optimization.stage3_param_persistence_threshold", 10 * h, "", false);
    }
  }
  if (job.total_steps) fill("scheduler.params.total_num_steps", *job.total_steps, "total_steps", true);
  if (job.warmup_steps) {
    fill("scheduler.params.warmup_num_steps", std::max<std::int64_t>(1, *job.warmup_steps), "max(1, warmup_steps)",
         true);
  }
  if (mismatches.empty()) return absl::OkStatus();
  return Invalid(source, absl::StrCat("DeepSpeed config values contradict the job's values (set them to \"auto\" to "
                                      "take the job's):\n",
                                      absl::StrJoin(mismatches, "\n")));
}

absl::Status ResolveLeftoverAuto(Json* doc, ParseMode mode, BatchAutos* batch, std::vector<std::string>* unresolved,
                                 std::vector<std::string>* warnings, absl::string_view source) {
  const Json* stage = Lookup(*doc, "zero_optimization.stage");
  const bool stage3 = stage != nullptr && *stage == 3;
  std::vector<std::string> defaulted;
  const std::vector<std::string> paths = {
      "train_batch_size",
      "train_micro_batch_size_per_gpu",
      "gradient_accumulation_steps",
      "gradient_clipping",
      "optimizer.params.lr",
      "optimizer.params.betas",
      "optimizer.params.eps",
      "optimizer.params.weight_decay",
      "scheduler.params.warmup_min_lr",
      "scheduler.params.warmup_max_lr",
      "scheduler.params.warmup_num_steps",
      "scheduler.params.total_num_steps",
      "fp16.enabled",
      "bf16.enabled",
      "zero_optimization.reduce_bucket_size",
      "zero_optimization.stage3_prefetch_bucket_size",
      "zero_optimization.stage3_param_persistence_threshold",
  };
  for (const std::string& path : paths) {
    const Json* v = Lookup(*doc, path);
    if (v == nullptr || *v != "auto") continue;
    EraseAt(doc, path);
    const bool batch_key =
        path == "train_batch_size" || path == "train_micro_batch_size_per_gpu" || path == "gradient_accumulation_steps";
    if (batch_key) {
      // No default: the batch inference below works from the others.
      if (path == "train_batch_size") batch->train_batch_size = true;
      if (path == "train_micro_batch_size_per_gpu") batch->micro_batch = true;
      if (path == "gradient_accumulation_steps") batch->accumulation = true;
      if (mode == ParseMode::kCheck) unresolved->push_back(path);
      continue;
    }
    // HF fills the stage-3 sizes only for stage 3; otherwise DeepSpeed drops "auto" for its default.
    if (!stage3 && (path == "zero_optimization.stage3_prefetch_bucket_size" ||
                    path == "zero_optimization.stage3_param_persistence_threshold")) {
      continue;
    }
    if (mode == ParseMode::kCheck) {
      unresolved->push_back(path);
    } else if (path == "scheduler.params.total_num_steps") {
      const Json* type = Lookup(*doc, "scheduler.type");
      return Invalid(
          source, absl::StrCat("\"scheduler.params.total_num_steps\" is \"auto\" and the job gave no "
                               "total_steps to fill it; ",
                               type != nullptr ? type->get<std::string>() : "the scheduler", " has no default for it"));
    } else {
      defaulted.push_back(path);
    }
  }
  if (!defaulted.empty()) {
    warnings->push_back(absl::StrCat("\"auto\" values the job did not fill take DeepSpeed's defaults: ",
                                     absl::StrJoin(defaulted, ", ")));
  }
  return absl::OkStatus();
}

namespace {

// Python's floor division, which DeepSpeed's batch inference uses.
std::int64_t FloorDiv(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

std::optional<std::int64_t> Get(const Json& doc, const char* key) {
  const Json* v = Lookup(doc, key);
  if (v == nullptr) return std::nullopt;
  return v->get<std::int64_t>();
}

}  // namespace

absl::Status ResolveBatch(const Json& doc, const BatchAutos& batch, int world_size, ParseMode mode, Config* config) {
  const std::string& source = config->source;
  std::optional<std::int64_t> tb = Get(doc, "train_batch_size");
  std::optional<std::int64_t> mb = Get(doc, "train_micro_batch_size_per_gpu");
  std::optional<std::int64_t> ga = Get(doc, "gradient_accumulation_steps");
  const std::int64_t w = world_size;

  // Given values must be positive before any arithmetic (DeepSpeed would divide by zero).
  for (const auto& [name, value] : {std::pair<const char*, std::optional<std::int64_t>>{"train_batch_size", tb},
                                    {"train_micro_batch_size_per_gpu", mb},
                                    {"gradient_accumulation_steps", ga}}) {
    if (value && *value <= 0) return Invalid(source, absl::StrCat(name, " must be > 0, got ", *value));
  }
  if (mode == ParseMode::kCheck && batch.any()) {
    // The job fills the "auto" ones at run time; the arithmetic waits until then.
    config->train_batch_size = tb.value_or(0);
    config->train_micro_batch_size_per_gpu = mb.value_or(0);
    config->gradient_accumulation_steps = ga.value_or(0);
    return absl::OkStatus();
  }

  std::string inferred;  // how a value was worked out, for the error messages
  if (tb && mb && ga) {
    // all given
  } else if (tb && mb) {
    ga = FloorDiv(FloorDiv(*tb, *mb), w);
    inferred = absl::StrCat("gradient_accumulation_steps inferred as (train_batch_size ", *tb,
                            " // train_micro_batch_size_per_gpu ", *mb, ") // world size ", w);
  } else if (tb && ga) {
    mb = FloorDiv(FloorDiv(*tb, w), *ga);
    inferred = absl::StrCat("train_micro_batch_size_per_gpu inferred as (train_batch_size ", *tb, " // world size ", w,
                            ") // gradient_accumulation_steps ", *ga);
  } else if (mb && ga) {
    const __int128 product = static_cast<__int128>(*mb) * *ga * w;
    if (product > std::numeric_limits<std::int64_t>::max()) {
      return Invalid(source, "train_micro_batch_size_per_gpu x gradient_accumulation_steps x world size overflows");
    }
    tb = static_cast<std::int64_t>(product);
  } else if (tb) {
    ga = 1;
    mb = FloorDiv(*tb, w);
    inferred = absl::StrCat("train_micro_batch_size_per_gpu inferred as train_batch_size ", *tb, " // world size ", w);
  } else if (mb) {
    if (static_cast<__int128>(*mb) * w > std::numeric_limits<std::int64_t>::max()) {
      return Invalid(source, "train_micro_batch_size_per_gpu x world size overflows");
    }
    tb = *mb * w;
    ga = 1;
  } else {
    auto describe = [](const char* name, bool was_auto, const char* filler) {
      return was_auto ? absl::StrCat(name, " is \"auto\" and the job gave no ", filler, " to fill it")
                      : absl::StrCat(name, " is not set");
    };
    return Invalid(
        source, absl::StrCat(
                    "cannot work out the batch size: ",
                    describe("train_batch_size", batch.train_batch_size, "micro_batch and gradient_accumulation_steps"),
                    "; ", describe("train_micro_batch_size_per_gpu", batch.micro_batch, "micro_batch"),
                    " (DeepSpeed needs train_batch_size or train_micro_batch_size_per_gpu)"));
  }
  const std::string why = inferred.empty() ? "" : absl::StrCat(" (", inferred, ")");
  if (*mb <= 0) return Invalid(source, absl::StrCat("train_micro_batch_size_per_gpu must be > 0, got ", *mb, why));
  if (*ga <= 0) return Invalid(source, absl::StrCat("gradient_accumulation_steps must be > 0, got ", *ga, why));
  const __int128 product = static_cast<__int128>(*mb) * *ga * w;
  if (product != *tb) {
    return Invalid(source, absl::StrCat("train_batch_size ", *tb, " != train_micro_batch_size_per_gpu ", *mb,
                                        " x gradient_accumulation_steps ", *ga, " x world size ", w, why));
  }
  config->train_batch_size = *tb;
  config->train_micro_batch_size_per_gpu = *mb;
  config->gradient_accumulation_steps = *ga;
  return absl::OkStatus();
}

void WarnIfBatchDiffersFromJob(const AutoValues& job, Config* config) {
  if (config->train_batch_size == 0) return;  // unresolved (ParseUnresolved)
  if (job.micro_batch && *job.micro_batch != config->train_micro_batch_size_per_gpu) {
    config->warnings.push_back(absl::StrCat("the job's micro_batch is ", *job.micro_batch,
                                            " but the config gives train_micro_batch_size_per_gpu ",
                                            config->train_micro_batch_size_per_gpu, "; the config's value is used"));
  }
  if (job.gradient_accumulation_steps && *job.gradient_accumulation_steps != config->gradient_accumulation_steps) {
    config->warnings.push_back(absl::StrCat("the job's gradient_accumulation_steps is ",
                                            *job.gradient_accumulation_steps, " but the config gives ",
                                            config->gradient_accumulation_steps, "; the config's value is used"));
  }
}

}  // namespace config_internal
}  // namespace zt
