#include "core/profiler/module_scope.h"

namespace zt::profiler {
namespace scope_internal {

__thread ModuleScopeListener* active_listener __attribute__((tls_model("initial-exec"))) = nullptr;

}  // namespace scope_internal

ModuleScopeListener* SetThreadModuleScopeListener(ModuleScopeListener* listener) {
  ModuleScopeListener* previous = scope_internal::active_listener;
  scope_internal::active_listener = listener;
  return previous;
}

ModuleScopeListener* ThreadModuleScopeListener() { return scope_internal::active_listener; }

}  // namespace zt::profiler
