// The element types the ops/cuda kernels take, as their host launch functions name them (plain
// C++: the .cu files include it without LibTorch).  element_type_of.h maps LibTorch's.
#ifndef ZEROTRAIN_OPS_CUDA_ELEMENT_TYPE_H_
#define ZEROTRAIN_OPS_CUDA_ELEMENT_TYPE_H_

#include <cstdint>

namespace zt::ops::cuda {

enum class ElementType : std::int32_t { kFloat32, kBFloat16, kFloat16 };

}  // namespace zt::ops::cuda

#endif  // ZEROTRAIN_OPS_CUDA_ELEMENT_TYPE_H_
