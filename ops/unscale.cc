#include "ops/unscale.h"

#include <cmath>

namespace zt::ops {

bool NonFiniteCheckAndUnscale(float* data, std::int64_t n, float inv_scale) {
  bool found = false;
  for (std::int64_t i = 0; i < n; ++i) {
    found |= !std::isfinite(data[i]);
    if (inv_scale != 1.0f) data[i] *= inv_scale;
  }
  return found;
}

}  // namespace zt::ops
