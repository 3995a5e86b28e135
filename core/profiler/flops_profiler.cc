#include "core/profiler/flops_profiler.h"

#include <ATen/ATen.h>
#include <ATen/record_function.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/nn/module.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <functional>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "core/profiler/module_scope.h"
#include "core/profiler/record_function_inputs.h"
#include "core/util/file_util.h"
#include "core/util/logging.h"

namespace zt::profiler {
namespace {

using Clock = std::chrono::steady_clock;

// ---- op formulas ----

enum class OpKind : std::uint8_t {
  kZero,           // known, 0 FLOPs (embedding, dropout): hides its inner ops
  kLinear,         // (input, weight, bias?)
  kMatmul,         // (a, b)
  kAddMatmul,      // (self, a, b, ...): matmul of a, b plus numel(self) adds
  kConv,           // (input, weight, bias?, ...), not transposed
  kConvTranspose,  // (input, weight, bias?, ...)
  kConvolution,    // aten::convolution / _convolution: arg 6 says whether transposed
  kAttention,      // (q, k, v, ...)
  kUnary,          // input numel (activations, softmax, pools, unary math, sum/mean)
  kElementwise,    // numel of the broadcast of args 0 and 1 (tensors or scalars)
  kNorm,           // numel x (weight ? 5 : 4); weight at `arg`
  kBatchNorm,      // training (arg 5) ? numel x (5 or 4) : numel x (2 or 1); weight at arg 1
  kRmsNorm,        // numel x (weight ? 4 : 3); weight at arg 2
};

struct OpRule {
  OpKind kind;
  int arg = -1;  // kNorm: where the weight is
};

const std::unordered_map<std::string_view, OpRule>& Rules() {
  static const auto* rules = [] {
    auto* r = new std::unordered_map<std::string_view, OpRule>;
    auto add = [&](std::initializer_list<std::string_view> names, OpRule rule) {
      for (std::string_view n : names) r->emplace(n, rule);
    };
    add({"aten::embedding", "aten::embedding_bag", "aten::_embedding_bag", "aten::dropout", "aten::dropout_",
         "aten::native_dropout", "aten::feature_dropout", "aten::feature_dropout_", "aten::alpha_dropout",
         "aten::alpha_dropout_", "aten::feature_alpha_dropout", "aten::feature_alpha_dropout_"},
        {OpKind::kZero});
    add({"aten::linear"}, {OpKind::kLinear});
    add({"aten::matmul", "aten::mm", "aten::bmm", "aten::mv", "aten::dot", "aten::vdot"}, {OpKind::kMatmul});
    add({"aten::addmm", "aten::addmm_", "aten::baddbmm", "aten::baddbmm_", "aten::addmv", "aten::addmv_",
         "aten::addbmm", "aten::addbmm_", "aten::_addmm_activation"},
        {OpKind::kAddMatmul});
    add({"aten::conv1d", "aten::conv2d", "aten::conv3d"}, {OpKind::kConv});
    add({"aten::conv_transpose1d", "aten::conv_transpose2d", "aten::conv_transpose3d"}, {OpKind::kConvTranspose});
    add({"aten::convolution", "aten::_convolution"}, {OpKind::kConvolution});
    add({"aten::scaled_dot_product_attention", "aten::_scaled_dot_product_attention_math",
         "aten::_scaled_dot_product_flash_attention", "aten::_scaled_dot_product_flash_attention_for_cpu",
         "aten::_scaled_dot_product_efficient_attention", "aten::_scaled_dot_product_cudnn_attention",
         "aten::_scaled_dot_product_fused_attention_overrideable"},
        {OpKind::kAttention});
    add({"aten::relu",
         "aten::relu_",
         "aten::gelu",
         "aten::gelu_",
         "aten::silu",
         "aten::silu_",
         "aten::sigmoid",
         "aten::sigmoid_",
         "aten::tanh",
         "aten::tanh_",
         "aten::elu",
         "aten::elu_",
         "aten::leaky_relu",
         "aten::leaky_relu_",
         "aten::hardtanh",
         "aten::hardtanh_",
         "aten::relu6",
         "aten::relu6_",
         "aten::prelu",
         "aten::mish",
         "aten::mish_",
         "aten::softplus",
         "aten::hardswish",
         "aten::hardswish_",
         "aten::hardsigmoid",
         "aten::hardsigmoid_",
         "aten::softmax",
         "aten::_softmax",
         "aten::log_softmax",
         "aten::_log_softmax",
         "aten::sqrt",
         "aten::sqrt_",
         "aten::rsqrt",
         "aten::rsqrt_",
         "aten::exp",
         "aten::exp_",
         "aten::log",
         "aten::log_",
         "aten::reciprocal",
         "aten::reciprocal_",
         "aten::sum",
         "aten::mean",
         "aten::avg_pool1d",
         "aten::avg_pool2d",
         "aten::avg_pool3d",
         "aten::max_pool1d",
         "aten::max_pool2d",
         "aten::max_pool3d",
         "aten::max_pool2d_with_indices",
         "aten::max_pool3d_with_indices",
         "aten::adaptive_avg_pool1d",
         "aten::adaptive_avg_pool2d",
         "aten::adaptive_avg_pool3d",
         "aten::adaptive_max_pool1d",
         "aten::adaptive_max_pool2d",
         "aten::adaptive_max_pool3d"},
        {OpKind::kUnary});
    add({"aten::add", "aten::add_", "aten::sub", "aten::sub_", "aten::rsub", "aten::mul", "aten::mul_", "aten::div",
         "aten::div_", "aten::pow", "aten::pow_"},
        {OpKind::kElementwise});
    add({"aten::layer_norm", "aten::native_layer_norm", "aten::group_norm"}, {OpKind::kNorm, 2});
    add({"aten::native_group_norm", "aten::instance_norm"}, {OpKind::kNorm, 1});
    add({"aten::batch_norm"}, {OpKind::kBatchNorm, 1});
    add({"aten::rms_norm", "aten::_fused_rms_norm"}, {OpKind::kRmsNorm, 2});
    return r;
  }();
  return *rules;
}

bool IsFloat(const at::Tensor& t) { return t.is_floating_point() || t.is_complex(); }

const at::Tensor* TensorArg(c10::ArrayRef<const c10::IValue> in, std::size_t i) {
  if (i >= in.size() || !in[i].isTensor()) return nullptr;
  const at::Tensor& t = in[i].toTensor();
  return t.defined() ? &t : nullptr;
}

std::int64_t Prod(c10::IntArrayRef dims) {
  std::int64_t p = 1;
  for (std::int64_t d : dims) p *= d;
  return p;
}

// batch x n x k x m of a @ b with torch.matmul's 1-D and broadcasting rules.
std::int64_t MatmulMacs(const at::Tensor& a, const at::Tensor& b) {
  if (a.dim() == 0 || b.dim() == 0) return 0;
  const std::int64_t n = a.dim() >= 2 ? a.size(-2) : 1;
  const std::int64_t k = a.size(-1);
  const std::int64_t m = b.dim() >= 2 ? b.size(-1) : 1;
  const c10::IntArrayRef ab = a.dim() > 2 ? a.sizes().slice(0, a.dim() - 2) : c10::IntArrayRef();
  const c10::IntArrayRef bb = b.dim() > 2 ? b.sizes().slice(0, b.dim() - 2) : c10::IntArrayRef();
  std::int64_t batch = 1;
  for (std::size_t i = 0; i < std::max(ab.size(), bb.size()); ++i) {
    const std::int64_t x = i < ab.size() ? ab[ab.size() - 1 - i] : 1;
    const std::int64_t y = i < bb.size() ? bb[bb.size() - 1 - i] : 1;
    batch *= std::max(x, y);
  }
  return batch * n * k * m;
}

// Elements of the broadcast of two operands; a scalar operand takes the other's shape.
std::int64_t BroadcastNumel(const at::Tensor* a, const at::Tensor* b) {
  if (a == nullptr && b == nullptr) return 1;
  if (a == nullptr) return b->numel();
  if (b == nullptr) return a->numel();
  std::int64_t n = 1;
  for (std::int64_t i = 0; i < std::max(a->dim(), b->dim()); ++i) {
    const std::int64_t x = i < a->dim() ? a->size(a->dim() - 1 - i) : 1;
    const std::int64_t y = i < b->dim() ? b->size(b->dim() - 1 - i) : 1;
    n *= x == 1 ? y : x;
  }
  return n;
}

struct Count {
  std::int64_t flops = 0;
  std::int64_t macs = 0;
};

// What a convolution's end callback needs (the output shape is known only then).
struct ConvPending {
  bool transposed = false;
  bool bias = false;
  std::int64_t input_numel = 0;
  std::int64_t per_element = 0;  // weight.size(1) x kernel elements: MACs per output (input) element
};

// FLOPs and MACs of an op from its inputs (every kind but the convolutions).
Count CountOp(const OpRule& rule, c10::ArrayRef<const c10::IValue> in) {
  const at::Tensor* x = TensorArg(in, 0);
  switch (rule.kind) {
    case OpKind::kZero:
      return {};
    case OpKind::kLinear: {
      const at::Tensor* w = TensorArg(in, 1);
      if (x == nullptr || w == nullptr) return {};
      const std::int64_t macs = x->numel() * (w->dim() == 2 ? w->size(0) : 1);
      return {2 * macs, macs};
    }
    case OpKind::kMatmul: {
      const at::Tensor* b = TensorArg(in, 1);
      if (x == nullptr || b == nullptr) return {};
      const std::int64_t macs = MatmulMacs(*x, *b);
      return {2 * macs, macs};
    }
    case OpKind::kAddMatmul: {
      const at::Tensor* a = TensorArg(in, 1);
      const at::Tensor* b = TensorArg(in, 2);
      if (a == nullptr || b == nullptr) return {};
      const std::int64_t macs = MatmulMacs(*a, *b);
      return {2 * macs + (x != nullptr ? x->numel() : 0), macs};
    }
    case OpKind::kAttention: {
      const at::Tensor* k = TensorArg(in, 1);
      const at::Tensor* v = TensorArg(in, 2);
      if (x == nullptr || k == nullptr || v == nullptr || x->dim() < 1 || k->dim() < 2 || v->dim() < 1) return {};
      const std::int64_t lk = k->size(-2);
      const std::int64_t rows = x->size(-1) == 0 ? 0 : x->numel() / x->size(-1);
      const std::int64_t macs = x->numel() * lk + rows * lk * v->size(-1);
      return {2 * macs, macs};
    }
    case OpKind::kUnary:
      if (x == nullptr || !IsFloat(*x)) return {};
      return {x->numel(), 0};
    case OpKind::kElementwise: {
      const at::Tensor* y = TensorArg(in, 1);
      if (!((x != nullptr && IsFloat(*x)) || (y != nullptr && IsFloat(*y)))) return {};
      return {BroadcastNumel(x, y), 0};
    }
    case OpKind::kNorm:
      if (x == nullptr || !IsFloat(*x)) return {};
      return {x->numel() * (TensorArg(in, rule.arg) != nullptr ? 5 : 4), 0};
    case OpKind::kBatchNorm: {
      if (x == nullptr || !IsFloat(*x)) return {};
      const bool affine = TensorArg(in, rule.arg) != nullptr;
      const bool training = in.size() > 5 && in[5].isBool() && in[5].toBool();
      return {x->numel() * (training ? (affine ? 5 : 4) : (affine ? 2 : 1)), 0};
    }
    case OpKind::kRmsNorm:
      if (x == nullptr || !IsFloat(*x)) return {};
      return {x->numel() * (TensorArg(in, rule.arg) != nullptr ? 4 : 3), 0};
    case OpKind::kConv:
    case OpKind::kConvTranspose:
    case OpKind::kConvolution:
      break;
  }
  return {};
}

bool StartConv(const OpRule& rule, c10::ArrayRef<const c10::IValue> in, ConvPending* out) {
  const at::Tensor* x = TensorArg(in, 0);
  const at::Tensor* w = TensorArg(in, 1);
  if (x == nullptr || w == nullptr || w->dim() < 3) return false;
  out->transposed = rule.kind == OpKind::kConvTranspose ||
                    (rule.kind == OpKind::kConvolution && in.size() > 6 && in[6].isBool() && in[6].toBool());
  out->bias = TensorArg(in, 2) != nullptr;
  out->input_numel = x->numel();
  out->per_element = w->size(1) * Prod(w->sizes().slice(2));
  return true;
}

// DeepSpeed's _conv_flops_compute / _conv_trans_flops_compute in terms of element counts:
// every output element sums C_in/groups x kernel products (transposed: every input element
// feeds C_out/groups x kernel outputs); the bias adds one per output element.
Count FinishConv(const ConvPending& c, const std::vector<c10::IValue>& outputs) {
  if (outputs.empty() || !outputs[0].isTensor()) return {};
  const std::int64_t out_numel = outputs[0].toTensor().numel();
  const std::int64_t macs = (c.transposed ? c.input_numel : out_numel) * c.per_element;
  return {2 * macs + (c.bias ? out_numel : 0), macs};
}

// "zt::Unit<zt::nlp::t5::EncoderBlock>" -> "Unit<EncoderBlock>"; "torch::nn::LinearImpl" -> "Linear".
std::string ShortClassName(const std::string& demangled) {
  const std::string full = absl::StrReplaceAll(demangled, {{"(anonymous namespace)::", ""}});
  std::string out;
  std::size_t token_start = 0;
  for (std::size_t i = 0; i < full.size(); ++i) {
    if (full.compare(i, 2, "::") == 0) {
      out.resize(token_start);  // drop the namespace just written
      ++i;
      continue;
    }
    const char c = full[i];
    out.push_back(c);
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) token_start = out.size();
  }
  if (out.size() > 4 && out.compare(out.size() - 4, 4, "Impl") == 0) out.resize(out.size() - 4);
  return out;
}

}  // namespace

// ---- state ----

struct FlopsProfiler::State final : ModuleScopeListener {
  struct OpFrame {
    enum Kind : std::uint8_t { kIgnored, kUncounted, kCounted } kind = kIgnored;
    bool conv = false;
    const char* name = nullptr;
    ConvPending pending;
  };
  struct Scope {
    int module;  // index, -1 for a module outside the profiled model
    int target;  // where ops inside it go
  };

  // The profile.
  std::vector<ModuleProfile> modules;
  std::map<std::string, OpCount, std::less<>> ops;
  // A running profile.
  bool running = false;
  std::thread::id thread;
  c10::Device device{c10::kCPU};
  at::CallbackHandle handle = 0;
  std::unordered_map<const torch::nn::Module*, int> index;
  std::vector<Scope> scopes;
  std::vector<OpFrame> op_stack;
  int counted_depth = 0;  // counted ops open on the stack
  std::vector<int> open;  // per module: its scopes open now (recursion times the outermost)
  std::vector<Clock::time_point> entered;
  Clock::time_point started;
  bool probing = false;
  bool probe_seen = false;

  // The profile running on this thread, for the RecordFunction callbacks.
  static thread_local State* current;
  static std::unique_ptr<at::ObserverContext> OnOpStart(const at::RecordFunction& fn) {
    if (State* s = current) s->OpStart(fn);
    return nullptr;
  }
  static void OnOpEnd(const at::RecordFunction& fn, at::ObserverContext*) {
    if (State* s = current) s->OpEnd(fn);
  }

  // Called from noexcept scope hooks: a failing device (reported again by the model's next
  // CUDA call) only costs the timing.
  void Sync() const noexcept {
    if (!device.is_cuda()) return;
    try {
      c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->synchronizeDevice(device.index());
    } catch (const std::exception& e) {
      ZT_LOG_FIRST(WARNING) << "flops profiler: cannot synchronise " << device.str() << ": " << e.what();
    }
  }

  int Target() const { return scopes.empty() ? 0 : scopes.back().target; }

  void EnterModule(const torch::nn::Module* m) noexcept override {
    if (!running) return;
    const auto it = index.find(m);
    const int idx = it == index.end() ? -1 : it->second;
    scopes.push_back({idx, idx >= 0 ? idx : Target()});
    if (idx < 0) return;
    ++modules[idx].calls;
    if (open[idx]++ == 0) {
      Sync();
      entered[idx] = Clock::now();
    }
  }

  void ExitModule(const torch::nn::Module*) noexcept override {
    if (!running || scopes.empty()) return;
    const int idx = scopes.back().module;
    scopes.pop_back();
    if (idx < 0 || open[idx] == 0) return;
    if (--open[idx] == 0) {
      Sync();
      modules[idx].latency_s += std::chrono::duration<double>(Clock::now() - entered[idx]).count();
    }
  }

  void Attribute(const char* name, Count c) {
    ModuleProfile& m = modules[Target()];
    m.own_flops += c.flops;
    m.own_macs += c.macs;
    auto it = ops.find(std::string_view(name));
    if (it == ops.end()) it = ops.emplace(name, OpCount{}).first;
    ++it->second.calls;
    it->second.flops += c.flops;
    it->second.macs += c.macs;
  }

  void OpStart(const at::RecordFunction& fn) {
    OpFrame frame;
    const char* name = fn.name();
    if (probing) {
      const auto in = internal::RecordFunctionInputs(fn);
      if (std::string_view(name) == "aten::add" && in.size() >= 2 && in[0].isTensor() &&
          in[0].toTensor().sizes() == c10::IntArrayRef({3, 2})) {
        probe_seen = true;
      }
    } else if (counted_depth > 0) {
      frame.kind = OpFrame::kIgnored;  // inside a counted op: its decomposition
    } else {
      const auto& rules = Rules();
      const auto it = rules.find(std::string_view(name));
      if (it == rules.end()) {
        frame.kind = OpFrame::kUncounted;
      } else {
        frame.kind = OpFrame::kCounted;
        frame.name = name;
        ++counted_depth;
        const OpRule& rule = it->second;
        try {
          if (rule.kind == OpKind::kConv || rule.kind == OpKind::kConvTranspose || rule.kind == OpKind::kConvolution) {
            frame.conv = StartConv(rule, internal::RecordFunctionInputs(fn), &frame.pending);
            if (!frame.conv) Attribute(name, {});
          } else {
            Attribute(name, CountOp(rule, internal::RecordFunctionInputs(fn)));
          }
        } catch (const std::exception& e) {  // sizes of an unusual tensor (nested, symbolic)
          ZT_LOG_FIRST(WARNING) << "flops profiler: cannot count " << name << ": " << e.what();
          frame.conv = false;
        }
      }
    }
    op_stack.push_back(frame);
  }

  void OpEnd(const at::RecordFunction& fn) {
    if (op_stack.empty()) return;
    const OpFrame frame = op_stack.back();
    op_stack.pop_back();
    if (frame.kind != OpFrame::kCounted) return;
    --counted_depth;
    if (frame.conv) Attribute(frame.name, FinishConv(frame.pending, fn.outputs()));
  }

  void Build(const torch::nn::Module& m, std::string name, int depth, int parent) {
    const int idx = static_cast<int>(modules.size());
    modules.emplace_back();
    ModuleProfile& p = modules.back();
    p.name = std::move(name);
    p.class_name = ShortClassName(m.name());
    p.depth = depth;
    p.parent = parent;
    std::unordered_set<const c10::TensorImpl*> seen;
    for (const at::Tensor& t : m.parameters(/*recurse=*/true)) {
      if (t.defined() && seen.insert(t.unsafeGetTensorImpl()).second) p.params += t.numel();
    }
    index.emplace(&m, idx);  // the first place a shared module appears gets its ops
    if (parent >= 0) modules[parent].children.push_back(idx);
    const std::string prefix = modules[idx].name.empty() ? "" : modules[idx].name + ".";
    for (const auto& child : m.named_children()) Build(*child.value(), prefix + child.key(), depth + 1, idx);
  }
};

thread_local FlopsProfiler::State* FlopsProfiler::State::current = nullptr;

namespace {

const std::vector<ModuleProfile>& NoModules() {
  static const auto* none = new std::vector<ModuleProfile>;
  return *none;
}

}  // namespace

FlopsProfiler::FlopsProfiler() = default;

FlopsProfiler::~FlopsProfiler() {
  if (!running()) return;
  if (std::this_thread::get_id() == state_->thread) {
    (void)Stop();
  } else {
    // The callback and the scope listener are thread-local to Start's thread: they cannot be
    // removed from here.
    ZT_LOG(ERROR) << "flops profiler destroyed on another thread while running; call Stop() on its thread first";
  }
}

bool FlopsProfiler::running() const { return state_ != nullptr && state_->running; }

absl::Status FlopsProfiler::Start(const torch::nn::Module& root, c10::Device device) {
  if (running()) return absl::FailedPreconditionError("flops profiler: Start() while already running");
  if (State::current != nullptr || ThreadModuleScopeListener() != nullptr) {
    return absl::FailedPreconditionError("flops profiler: another profile is running on this thread");
  }
  if (!at::isRecordFunctionEnabled()) {
    return absl::FailedPreconditionError(
        "flops profiler: RecordFunction is disabled on this thread (at::RecordFunctionGuard(false)?), so ops "
        "cannot be counted");
  }
  if (device.is_cuda()) {
    if (!c10::impl::hasDeviceGuardImpl(c10::DeviceType::CUDA)) {
      return absl::FailedPreconditionError(
          absl::StrCat("flops profiler: device ", device.str(), " but this LibTorch has no CUDA"));
    }
    if (!device.has_index()) {
      device = c10::Device(c10::kCUDA, c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->getDevice().index());
    }
  }
  auto state = std::make_unique<State>();
  state->device = device;
  state->thread = std::this_thread::get_id();
  state->Build(root, "", 0, -1);
  state->open.assign(state->modules.size(), 0);
  state->entered.resize(state->modules.size());
  state_ = std::move(state);
  State& st = *state_;
  st.running = true;
  State::current = &st;
  st.handle = at::addThreadLocalCallback(at::RecordFunctionCallback(&State::OnOpStart, &State::OnOpEnd)
                                             .needsInputs(true)
                                             .needsOutputs(true)
                                             .scopes({at::RecordScope::FUNCTION}));
  // A probe op: some LibTorch builds (mobile, lite interpreter) compile RecordFunction out, and
  // the profile would then be silently empty.
  st.probing = true;
  try {
    const at::Tensor a = at::ones({3, 2});
    (void)at::add(a, a);
  } catch (const std::exception& e) {
    ZT_LOG(WARNING) << "flops profiler: probe op failed: " << e.what();
  }
  st.probing = false;
  st.op_stack.clear();
  if (!st.probe_seen) {
    at::removeCallback(st.handle);
    State::current = nullptr;
    st.running = false;
    return absl::FailedPreconditionError(
        "flops profiler: RecordFunction callbacks do not see ATen ops with their input shapes in this LibTorch "
        "build; cannot count FLOPs");
  }
  SetThreadModuleScopeListener(&st);
  st.Sync();
  st.started = Clock::now();
  return absl::OkStatus();
}

absl::Status FlopsProfiler::Stop() {
  if (!running()) return absl::FailedPreconditionError("flops profiler: Stop() without a running profile");
  State& st = *state_;
  if (std::this_thread::get_id() != st.thread) {
    return absl::FailedPreconditionError("flops profiler: Stop() must run on the thread that called Start()");
  }
  st.Sync();
  const double wall = std::chrono::duration<double>(Clock::now() - st.started).count();
  at::removeCallback(st.handle);
  State::current = nullptr;
  SetThreadModuleScopeListener(nullptr);
  st.running = false;
  st.index.clear();
  st.scopes.clear();
  st.op_stack.clear();
  st.counted_depth = 0;
  // Totals: children follow their parent in depth-first order, so walking backwards finishes
  // every module before its parent.
  for (int i = static_cast<int>(st.modules.size()) - 1; i >= 0; --i) {
    ModuleProfile& m = st.modules[i];
    m.flops += m.own_flops;
    m.macs += m.own_macs;
    if (m.calls == 0) {
      if (i == 0) {
        m.latency_s = wall;
      } else {
        for (int c : m.children) m.latency_s += st.modules[c].latency_s;
      }
    }
    if (m.parent >= 0) {
      st.modules[m.parent].flops += m.flops;
      st.modules[m.parent].macs += m.macs;
    }
  }
  return absl::OkStatus();
}

const std::vector<ModuleProfile>& FlopsProfiler::modules() const {
  return state_ != nullptr ? state_->modules : NoModules();
}

std::int64_t FlopsProfiler::total_flops() const { return modules().empty() ? 0 : modules()[0].flops; }
std::int64_t FlopsProfiler::total_macs() const { return modules().empty() ? 0 : modules()[0].macs; }
std::int64_t FlopsProfiler::total_params() const { return modules().empty() ? 0 : modules()[0].params; }
double FlopsProfiler::total_latency_s() const { return modules().empty() ? 0.0 : modules()[0].latency_s; }

const ModuleProfile* FlopsProfiler::Find(absl::string_view name) const {
  for (const ModuleProfile& m : modules()) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

const std::map<std::string, OpCount, std::less<>>& FlopsProfiler::op_counts() const {
  static const auto* none = new std::map<std::string, OpCount, std::less<>>;
  return state_ != nullptr ? state_->ops : *none;
}

}  // namespace zt::profiler
