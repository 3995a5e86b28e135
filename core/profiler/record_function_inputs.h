// at::RecordFunction::inputs() for the flops profiler's start callback, usable in builds
// without NDEBUG (fastbuild, dbg).  Private to //core/profiler:flops_profiler.
//
// The header's inline inputs() asserts a debug-only flag (inputs_valid_) that a release LibTorch
// (the pip wheel, built with NDEBUG) never sets, so in our debug builds it throws even inside a
// start callback.  record_function_inputs.cc alone is compiled as LibTorch was.
#ifndef ZEROTRAIN_CORE_PROFILER_RECORD_FUNCTION_INPUTS_H_
#define ZEROTRAIN_CORE_PROFILER_RECORD_FUNCTION_INPUTS_H_

#include <ATen/core/ivalue.h>
#include <c10/util/ArrayRef.h>

namespace at {
class RecordFunction;
}  // namespace at

namespace zt::profiler::internal {

// The op's inputs; valid only inside a start callback of a callback with needsInputs(true).
c10::ArrayRef<const c10::IValue> RecordFunctionInputs(const at::RecordFunction& fn);

}  // namespace zt::profiler::internal

#endif  // ZEROTRAIN_CORE_PROFILER_RECORD_FUNCTION_INPUTS_H_
