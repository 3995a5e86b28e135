// Compiled as release LibTorch is (see the header): RecordFunction's layout is the same with and
// without NDEBUG (the debug flag sits in padding), only the inline accessor's assertion differs.
#ifndef NDEBUG
#define NDEBUG
#endif

#include "core/profiler/record_function_inputs.h"

#include <ATen/record_function.h>

namespace zt::profiler::internal {

c10::ArrayRef<const c10::IValue> RecordFunctionInputs(const at::RecordFunction& fn) { return fn.inputs(); }

}  // namespace zt::profiler::internal
