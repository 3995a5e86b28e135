// LibTorch's scalar type as the kernels' ElementType (element_type.h), for the autograd wrappers.
#ifndef ZEROTRAIN_OPS_CUDA_ELEMENT_TYPE_OF_H_
#define ZEROTRAIN_OPS_CUDA_ELEMENT_TYPE_OF_H_

#include <c10/core/ScalarType.h>

#include <optional>

#include "ops/cuda/element_type.h"

namespace zt::ops::cuda {

// float32, bfloat16 and float16; nullopt for every other type.
inline std::optional<ElementType> ElementTypeOf(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return ElementType::kFloat32;
    case at::kBFloat16:
      return ElementType::kBFloat16;
    case at::kHalf:
      return ElementType::kFloat16;
    default:
      return std::nullopt;
  }
}

}  // namespace zt::ops::cuda

#endif  // ZEROTRAIN_OPS_CUDA_ELEMENT_TYPE_OF_H_
