// DeepSpeed's flops profiler, natively: the parameters, forward MACs/FLOPs and forward latency of
// a model and of each of its submodules over one forward pass, and DeepSpeed's report of them
// ("DeepSpeed Flops Profiler": the summary, "Aggregated Profile per GPU", "Detailed Profile per
// GPU").  The engine runs it on rank 0 at the config's flops_profiler.profile_step:
//
//   zt::profiler::FlopsProfiler prof;
//   RETURN_IF_ERROR(prof.Start(*model, device));          // just before the step's forward
//   at::Tensor loss = model->Forward(batch);
//   RETURN_IF_ERROR(prof.Stop());                          // before backward (its ops are not counted)
//   ... backward, step; the engine measures fwd/bwd/step latency ...
//   zt::profiler::ProfileSummary s;  s.profile_step = step;  s.fwd_latency_s = ...;  ...
//   RETURN_IF_ERROR(zt::profiler::WriteReport(prof.Report(s), config.flops_profiler.output_file));
//
// How it counts.  Start() installs a thread-local at::RecordFunction callback (FUNCTION scope,
// with inputs; outputs for convolutions) that sees every ATen op the thread dispatches, and
// makes itself the thread's module-scope listener (module_scope.h): models put
// ZT_PROFILE_MODULE(this) at the top of their submodules' forward.  Each op's FLOPs/MACs come from its input shapes
// (formulas below) and go to the innermost module scope open on the thread (the root when none is); a module's totals
// are its own plus its submodules' (DeepSpeed's get_module_flops).  An op counted by a formula hides the ops it runs
// inside (aten::linear's addmm, aten::matmul's bmm, aten::layer_norm's native_layer_norm, aten::dropout's mul): each
// piece of work is counted once.  Ops without a formula let their inner ops be counted (aten::einsum's bmm,
// aten::cross_entropy_loss's log_softmax).  Modules without a scope (torch::nn::Linear, plain containers) get no ops of
// their own: what they run lands in the enclosing scope; their totals are their scoped
// submodules'.
//
// Counted, as DeepSpeed (profiler.py) counts the torch functions (MACs; FLOPs):
//   linear                      input.numel x out_features; 2 x MACs (no bias adds, as DeepSpeed)
//                               (C++'s torch::nn::Linear runs addmm on 2-D input with a bias,
//                               else matmul and add_: it counts as those)
//   matmul, mm, bmm, mv, dot    batch x n x k x m (batch dims broadcast); 2 x MACs
//   addmm, baddbmm, addmv, addbmm   as matmul of the two factors; 2 x MACs + numel(self)
//   conv{1,2,3}d, convolution, conv_transpose{1,2,3}d   kernel x C_in/groups x C_out per output
//                               position (transposed: per input position); 2 x MACs + bias adds
//   scaled_dot_product_attention (and its flash/efficient/cudnn/math/CPU kernels when called
//                               directly)   q.numel x L_k + q.numel/d x L_k x d_v; 2 x MACs
//   relu, gelu, silu, sigmoid, tanh, elu, leaky_relu, hardtanh, prelu, mish, softplus,
//   hardswish, hardsigmoid      0; input numel
//   softmax, log_softmax        0; input numel
//   layer_norm, group_norm, instance_norm   0; numel x 5 (affine) or 4
//   batch_norm                  0; training: numel x 5 or 4; eval: numel x 2 or 1
//   rms_norm (ours; DeepSpeed has none)   0; numel x 4 (weight) or 3
//   add, sub, rsub, mul, div (and in-place forms)   0; numel of the broadcast result
//   pow, sqrt, rsqrt, exp, log, reciprocal, sum, mean   0; input numel (RMS norms written out:
//                               pow, mean, add, rsqrt, mul)
//   avg/max/adaptive pools      0; input numel
//   embedding, dropout          0; 0 (their inner ops are not counted either)
// Numel-based ops count only on floating-point tensors (index arithmetic is not FLOPs).
// Differences from DeepSpeed: `a + b` and `a * b` count like torch.add/torch.mul (at the ATen
// level they are the same op; DeepSpeed sees only the torch.add/mul calls); sub, div and the
// unary math ops count; matmul broadcasts batch dims.
// Not counted: every other op (copies, casts, views, cat, indexing, where/masked_fill, clamp,
// comparisons, losses' own work, upsampling, RNN modules, einsum as such: its bmm counts), work
// that is not an ATen op (custom CUDA kernels such as the fused pair-bias attention, NCCL/Gloo
// communication), ops on other threads, and the backward pass: DeepSpeed's report assumes
// bwd FLOPs = 2 x fwd FLOPs (plus recompute_fwd_factor x fwd with activation checkpointing).
//
// Latency: a scope's wall time between entering and leaving (on CUDA the device is synchronised
// at both ends, as DeepSpeed's hooks do), summed over its calls in the profiled forward; a module
// never entered shows the sum of its children (DeepSpeed's get_module_duration); the root, when
// not entered, is timed from Start() to Stop().  Synchronising slows the profiled step.
#ifndef ZEROTRAIN_CORE_PROFILER_FLOPS_PROFILER_H_
#define ZEROTRAIN_CORE_PROFILER_FLOPS_PROFILER_H_

#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace torch::nn {
class Module;
}  // namespace torch::nn

namespace zt::profiler {

// One module of the profiled model.  Totals include the module's submodules.
struct ModuleProfile {
  std::string name;        // qualified name, "encoder.block.0.module" ("" for the root)
  std::string class_name;  // without namespaces or "Impl": "EncoderBlock", "Linear", "Module"
  int depth = 0;           // the root is 0
  int parent = -1;         // index into FlopsProfiler::modules(); -1 for the root
  std::vector<int> children;
  std::int64_t params = 0;     // elements of its parameters and its submodules' (each tensor once)
  std::int64_t flops = 0;      // forward FLOPs, its own and its submodules'
  std::int64_t macs = 0;       // forward MACs, its own and its submodules'
  std::int64_t own_flops = 0;  // of the ops run while it was the innermost open scope
  std::int64_t own_macs = 0;
  double latency_s = 0.0;  // forward wall time (see above)
  std::int64_t calls = 0;  // times its scope was entered
};

// Calls, FLOPs and MACs per ATen op (by name, "aten::linear") as the profiler counted them.
struct OpCount {
  std::int64_t calls = 0;
  std::int64_t flops = 0;
  std::int64_t macs = 0;
};

// What the engine knows about the profiled step, and the config's report options.
struct ProfileSummary {
  std::int64_t profile_step = 1;
  int world_size = 1;
  int data_parallel_size = 1;
  int model_parallel_size = 1;  // always 1 in zerotrain (no tensor parallelism)
  std::int64_t micro_batch_size_per_gpu = 0;
  // The engine's timings of the profiled step.  fwd 0: the profiler's own root latency.  bwd 0:
  // the bwd, step, iter and samples/second lines are left out (DeepSpeed without
  // wall_clock_breakdown).
  double fwd_latency_s = 0.0;
  double bwd_latency_s = 0.0;
  double step_latency_s = 0.0;
  // 0: micro_batch_size_per_gpu x world_size / iter latency, as DeepSpeed computes it.
  double samples_per_second = 0.0;
  // flops_profiler.recompute_fwd_factor: bwd FLOPs = (2 + factor) x fwd FLOPs.
  double recompute_fwd_factor = 0.0;
  // flops_profiler.module_depth: the deepest level shown in both profiles (-1: all).
  std::int64_t module_depth = -1;
  std::int64_t top_modules = 1;  // flops_profiler.top_modules
  bool detailed = true;          // flops_profiler.detailed: add the module tree
};

class FlopsProfiler {
 public:
  FlopsProfiler();
  ~FlopsProfiler();  // stops a profile still running (on its thread)
  FlopsProfiler(const FlopsProfiler&) = delete;
  FlopsProfiler& operator=(const FlopsProfiler&) = delete;

  // Maps root and every submodule to its name, depth and parameter count, and starts counting
  // on the calling thread.  `device` is where the model runs (CUDA: scopes synchronise it).
  // Errors: kFailedPrecondition when a profile is already running (this or another profiler on
  // this thread), RecordFunction is disabled on this thread, or a probe op was not seen with its
  // input shapes (a LibTorch built without RecordFunction).  Drops the previous profile's numbers.
  [[nodiscard]] absl::Status Start(const torch::nn::Module& root, c10::Device device);
  // Stops counting and removes the callback; the numbers below are final.  Call it on Start's
  // thread, after the forward and before the backward.  kFailedPrecondition when not running or
  // called on another thread.
  [[nodiscard]] absl::Status Stop();
  bool running() const;

  // The profile (after Stop): the root's totals and every module in depth-first order, the root
  // first.  Empty before the first Start.
  std::int64_t total_flops() const;
  std::int64_t total_macs() const;
  std::int64_t total_params() const;
  double total_latency_s() const;
  const std::vector<ModuleProfile>& modules() const;
  // The module of that qualified name ("" is the root), or nullptr.
  const ModuleProfile* Find(absl::string_view name) const;
  const std::map<std::string, OpCount, std::less<>>& op_counts() const;

  // DeepSpeed's report of the profile (print_model_profile's text).
  std::string Report(const ProfileSummary& summary) const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Writes a report to stdout (empty output_file) or to the file (its directory is created, as
// DeepSpeed does); errors name the file.
[[nodiscard]] absl::Status WriteReport(const std::string& text, const std::string& output_file);

// DeepSpeed's human units (number_to_string and friends): two decimals at most, in T/G/M/K/
// (none)/m/u.  "1.23 G" "45.6 ms" "12.3 TFLOPS" "3.14 GMACs"; params use B for G: "1.3 B".
std::string NumberToString(double value);
std::string MacsToString(double macs);
std::string FlopsToString(double flops_per_second);
std::string ParamsToString(double params);
std::string DurationToString(double seconds);

}  // namespace zt::profiler

#endif  // ZEROTRAIN_CORE_PROFILER_FLOPS_PROFILER_H_
