// Module scopes: a model marks "this submodule's forward runs now" so that the flops profiler
// (core/profiler/flops_profiler.h) can attribute the ops in between to it and time it.
//
//   at::Tensor Attention::forward(const at::Tensor& x) {
//     ZT_PROFILE_MODULE(this);   // first line of the forward
//     ...
//   }
//
// Without a profiler running on this thread a scope costs one thread-local load and a branch (a
// constant-initialised, initial-exec TLS pointer: no wrapper call, no allocation); the header
// includes nothing from LibTorch.  While a profiler runs on the thread, the scope tells it
// "entering M" on construction and "leaving M" on destruction (also when the forward throws).
// Scopes are per thread: a forward running on another thread is not seen.
#ifndef ZEROTRAIN_CORE_PROFILER_MODULE_SCOPE_H_
#define ZEROTRAIN_CORE_PROFILER_MODULE_SCOPE_H_

namespace torch::nn {
class Module;
}  // namespace torch::nn

namespace zt::profiler {

// Told about module scopes on the thread it is installed on (FlopsProfiler is one).
class ModuleScopeListener {
 public:
  virtual void EnterModule(const torch::nn::Module* module) noexcept = 0;
  virtual void ExitModule(const torch::nn::Module* module) noexcept = 0;

 protected:
  ~ModuleScopeListener() = default;
};

// Installs `listener` (not owned; nullptr removes it) for the calling thread and returns the
// one it replaces.
ModuleScopeListener* SetThreadModuleScopeListener(ModuleScopeListener* listener);
// The calling thread's listener, or nullptr.
ModuleScopeListener* ThreadModuleScopeListener();

namespace scope_internal {
// GNU __thread rather than thread_local: constant initialisation is guaranteed, so reads need no
// TLS wrapper function; initial-exec makes a read one %fs-relative load even in shared objects.
extern __thread ModuleScopeListener* active_listener __attribute__((tls_model("initial-exec")));
}  // namespace scope_internal

class ModuleScope {
 public:
  explicit ModuleScope(const torch::nn::Module* module) : listener_(scope_internal::active_listener) {
    if (__builtin_expect(listener_ != nullptr, 0)) {
      module_ = module;
      listener_->EnterModule(module);
    }
  }
  ~ModuleScope() {
    if (__builtin_expect(listener_ != nullptr, 0)) listener_->ExitModule(module_);
  }
  ModuleScope(const ModuleScope&) = delete;
  ModuleScope& operator=(const ModuleScope&) = delete;

 private:
  ModuleScopeListener* const listener_;
  const torch::nn::Module* module_ = nullptr;
};

}  // namespace zt::profiler

#define ZT_PROFILE_MODULE_CONCAT_INNER(a, b) a##b
#define ZT_PROFILE_MODULE_CONCAT(a, b) ZT_PROFILE_MODULE_CONCAT_INNER(a, b)
// Marks the rest of the enclosing block as `module`'s forward (a pointer to a torch::nn::Module
// or a class derived from it, usually `this`).
#define ZT_PROFILE_MODULE(module) \
  const ::zt::profiler::ModuleScope ZT_PROFILE_MODULE_CONCAT(zt_profile_module_scope_, __LINE__)(module)

#endif  // ZEROTRAIN_CORE_PROFILER_MODULE_SCOPE_H_
