// The "optimizer" and "scheduler" blocks: their params are the keyword arguments of the class
// their type names (deepspeed/runtime/engine.py, ops/adam/fused_adam.py, runtime/lr_schedules.py).
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/string_view.h"
#include "core/config/deepspeed_schema.h"
#include "core/config/deepspeed_schema_parts.h"

namespace zt {
namespace config_internal {
namespace {

const char kMaxGradNorm[] =
    "DeepSpeed refuses max_grad_norm as an optimizer parameter; set the top-level \"gradient_clipping\" instead.";

// Adam and AdamW: FusedAdam / DeepSpeedCPUAdam / torch.optim.Adam(W) keyword arguments, plus the
// keys DeepSpeed's engine pops before building one.
Schema AdamParamsSchema() {
  Schema s = Obj({
      Number("lr", 1e-3).Min(0).JobAuto(),
      NumberPair("betas", Json::array({0.9, 0.999})).JobAuto().Check([](const Json& v) -> std::string {
        for (const Json& b : v) {
          if (b.get<double>() < 0 || b.get<double>() >= 1) return "two numbers in [0, 1)";
        }
        return "";
      }),
      Number("eps", 1e-8).Min(0).JobAuto(),
      Number("weight_decay", 0.0).Min(0).JobAuto(),
      Bool("bias_correction", true),
      Bool("amsgrad", false),
      Bool("adam_w_mode", true),
      Bool("torch_adam", false),
      Bool("fp32_optimizer_states", true).Nullable(),
      Bool("set_grad_none", true),
      Bool("foreach", false).Nullable(),
      Removed("max_grad_norm", kMaxGradNorm),
  });
  s->what = "Adam/AdamW";
  return s;
}

// Other optimizers take their own keyword arguments; only HF's "auto" keys are known here.
Schema OtherOptimizerParamsSchema() {
  Schema s = Obj({
      Number("lr").JobAuto(),
      NumberPair("betas").JobAuto(),
      Number("eps").JobAuto(),
      Number("weight_decay").JobAuto(),
      Removed("max_grad_norm", kMaxGradNorm),
  });
  s->open = true;
  return s;
}

// An unknown warmup_type is an error here; DeepSpeed logs a warning and falls back to "log",
// which would hide a typo such as "liner" for a whole run.
KeySpec WarmupType() { return Enum("warmup_type", {"log", "linear"}, "log"); }
KeySpec WarmupNumSteps() { return StrictInt("warmup_num_steps", 1000).Min(0, true).JobAuto(); }
KeySpec LastBatchIteration() { return Int("last_batch_iteration", -1); }

Schema Named(std::string what, std::vector<KeySpec> keys) {
  Schema s = Obj(std::move(keys));
  s->what = std::move(what);
  return s;
}

Schema WarmupLRSchema() {
  return Named("WarmupLR", {Number("warmup_min_lr", 0.0).JobAuto(), Number("warmup_max_lr").Nullable().JobAuto(),
                            WarmupNumSteps(), WarmupType(), LastBatchIteration()});
}

Schema WarmupDecayLRSchema() {
  // warmup_max_lr is not nullable here: null would mean the optimizer's lr, absent means 0.001.
  return Named("WarmupDecayLR",
               {Int("total_num_steps").Required().JobAuto(), Number("warmup_min_lr", 0.0).JobAuto(),
                Number("warmup_max_lr", 0.001).JobAuto(), WarmupNumSteps(), WarmupType(), LastBatchIteration()});
}

Schema WarmupCosineLRSchema() {
  return Named("WarmupCosineLR",
               {Int("total_num_steps").Required().JobAuto(), Number("warmup_min_ratio", 0.0), WarmupNumSteps(),
                Number("cos_min_ratio", 0.0001), WarmupType(), LastBatchIteration()});
}

Schema LRRangeTestSchema() {
  return Named("LRRangeTest",
               {Number("lr_range_test_min_lr", 1e-3), StrictInt("lr_range_test_step_size", 2000).Min(0, true),
                Number("lr_range_test_step_rate", 1.0), Bool("lr_range_test_staircase", false), LastBatchIteration()});
}

Schema OneCycleSchema() {
  return Named("OneCycle",
               {Number("cycle_min_lr").Required(), Number("cycle_max_lr").Required(), Number("decay_lr_rate", 0.0),
                Number("cycle_first_step_size", 2000).Min(0, true), Number("cycle_second_step_size").Nullable().Min(0),
                Int("cycle_first_stair_count", 0), Int("cycle_second_stair_count").Nullable(),
                Number("decay_step_size", 0), Bool("cycle_momentum", true), Number("cycle_min_mom", 0.8),
                Number("cycle_max_mom", 0.9), Number("decay_mom_rate", 0.0), LastBatchIteration()});
}

const std::vector<std::string>& DeepSpeedOptimizers() {
  static const auto* names =
      new std::vector<std::string>{"adagrad", "adam", "adamw", "lamb", "muadam", "muadamw", "musgd", "lion", "muon"};
  return *names;
}
const std::vector<std::string>& TorchOptimizers() {
  static const auto* names =
      new std::vector<std::string>{"ASGD", "Adadelta", "Adafactor", "Adagrad", "Adam",  "AdamW", "Adamax",    "LBFGS",
                                   "Muon", "NAdam",    "RAdam",     "RMSprop", "Rprop", "SGD",   "SparseAdam"};
  return *names;
}
const std::vector<std::string>& DeepSpeedSchedulers() {
  static const auto* names =
      new std::vector<std::string>{"WarmupLR", "WarmupDecayLR", "WarmupCosineLR", "OneCycle", "LRRangeTest"};
  return *names;
}
const std::vector<std::string>& TorchSchedulers() {
  static const auto* names = new std::vector<std::string>{"LambdaLR",
                                                          "MultiplicativeLR",
                                                          "StepLR",
                                                          "MultiStepLR",
                                                          "ConstantLR",
                                                          "LinearLR",
                                                          "ExponentialLR",
                                                          "SequentialLR",
                                                          "CosineAnnealingLR",
                                                          "ChainedScheduler",
                                                          "ReduceLROnPlateau",
                                                          "CyclicLR",
                                                          "CosineAnnealingWarmRestarts",
                                                          "OneCycleLR",
                                                          "PolynomialLR",
                                                          "LRScheduler"};
  return *names;
}

std::string TypeOf(const Json& parent) {
  const auto it = parent.find("type");
  return it != parent.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

Schema OptimizerSchema() {
  static const ObjectSchema* adam = new ObjectSchema(*AdamParamsSchema());
  static const ObjectSchema* other = new ObjectSchema(*OtherOptimizerParamsSchema());
  return Obj({
      String("type").Required().Check([](const Json& v) -> std::string {
        const std::string t = v.get<std::string>();
        if (IsDeepSpeedOptimizer(t) || IsTorchOptimizer(t)) return "";
        return "Adam, AdamW, Adagrad, Lamb, Lion, Muon, MuAdam, MuAdamW or MuSGD (any case), or a torch.optim "
               "class name such as SGD or RMSprop";
      }),
      DynamicObject("params",
                    [](const Json& parent) -> const ObjectSchema* {
                      const std::string t = absl::AsciiStrToLower(TypeOf(parent));
                      return t == "adam" || t == "adamw" ? adam : other;
                    }),
      Bool("legacy_fusion", false),
  });
}

Schema SchedulerSchema() {
  static const ObjectSchema* warmup = new ObjectSchema(*WarmupLRSchema());
  static const ObjectSchema* decay = new ObjectSchema(*WarmupDecayLRSchema());
  static const ObjectSchema* cosine = new ObjectSchema(*WarmupCosineLRSchema());
  static const ObjectSchema* range = new ObjectSchema(*LRRangeTestSchema());
  static const ObjectSchema* cycle = new ObjectSchema(*OneCycleSchema());
  return Obj({
      String("type").Required().Check([](const Json& v) -> std::string {
        const std::string t = v.get<std::string>();
        if (IsDeepSpeedScheduler(t) || IsTorchScheduler(t)) return "";
        return "one of \"WarmupLR\", \"WarmupDecayLR\", \"WarmupCosineLR\", \"OneCycle\", \"LRRangeTest\" "
               "(exact case) or a torch.optim.lr_scheduler class name";
      }),
      DynamicObject("params",
                    [](const Json& parent) -> const ObjectSchema* {
                      const std::string t = TypeOf(parent);
                      if (t == "WarmupLR") return warmup;
                      if (t == "WarmupDecayLR") return decay;
                      if (t == "WarmupCosineLR") return cosine;
                      if (t == "LRRangeTest") return range;
                      if (t == "OneCycle") return cycle;
                      return nullptr;  // torch schedulers take their own arguments
                    }),
  });
}

bool IsDeepSpeedOptimizer(absl::string_view type) {
  return Contains(DeepSpeedOptimizers(), absl::AsciiStrToLower(type));
}
bool IsTorchOptimizer(absl::string_view type) { return Contains(TorchOptimizers(), type); }
bool IsDeepSpeedScheduler(absl::string_view type) { return Contains(DeepSpeedSchedulers(), type); }
bool IsTorchScheduler(absl::string_view type) { return Contains(TorchSchedulers(), type); }

}  // namespace config_internal
}  // namespace zt
