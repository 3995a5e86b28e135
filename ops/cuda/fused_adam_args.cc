#include <cmath>

#include "ops/adam.h"
#include "ops/cuda/fused_adam.h"

namespace zt::ops::cuda {

FusedAdamArgs MakeFusedAdamArgs(const AdamStep& s) {
  const double lr = s.lr;
  const double bc1 =
      s.bias_correction ? 1.0 - std::pow(static_cast<double>(s.beta1), static_cast<double>(s.step)) : 1.0;
  const double bc2 =
      s.bias_correction ? 1.0 - std::pow(static_cast<double>(s.beta2), static_cast<double>(s.step)) : 1.0;
  FusedAdamArgs a;
  a.neg_step_size = static_cast<float>(-(lr / bc1));
  a.bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  a.decay = static_cast<float>(1.0 - lr * static_cast<double>(s.weight_decay));
  a.lerp_weight = 1.0f - s.beta1;
  a.beta2 = s.beta2;
  a.one_minus_beta2 = 1.0f - s.beta2;
  a.eps = s.eps;
  a.weight_decay = s.weight_decay;
  a.grad_scale = s.grad_scale;
  a.l2 = !s.decoupled && s.weight_decay != 0.0f;
  a.decay_param = s.decoupled && s.weight_decay != 0.0f;
  return a;
}

}  // namespace zt::ops::cuda
