#include "ops/adam.h"

#include <cmath>

namespace zt::ops {

void AdamReference(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, std::int64_t n,
                   const AdamStep& s) {
  const double lr = s.lr;
  const double bc1 =
      s.bias_correction ? 1.0 - std::pow(static_cast<double>(s.beta1), static_cast<double>(s.step)) : 1.0;
  const double bc2 =
      s.bias_correction ? 1.0 - std::pow(static_cast<double>(s.beta2), static_cast<double>(s.step)) : 1.0;
  const float neg_step_size = static_cast<float>(-(lr / bc1));
  const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  const float decay = static_cast<float>(1.0 - lr * static_cast<double>(s.weight_decay));
  const float w = 1.0f - s.beta1;  // lerp weight
  const float one_minus_beta2 = 1.0f - s.beta2;
  const bool l2 = !s.decoupled && s.weight_decay != 0.0f;
  const bool decay_param = s.decoupled && s.weight_decay != 0.0f;
  for (std::int64_t i = 0; i < n; ++i) {
    float g = grad[i];
    if (s.grad_scale != 1.0f) g *= s.grad_scale;
    float p = param[i];
    if (l2) g = g + s.weight_decay * p;
    if (decay_param) p = p * decay;
    float m = exp_avg[i];
    m = std::fabs(w) < 0.5f ? m + w * (g - m) : g - (g - m) * (1.0f - w);
    float v = exp_avg_sq[i] * s.beta2 + one_minus_beta2 * g * g;
    const float denom = std::sqrt(v) / bc2_sqrt + s.eps;
    param[i] = p + neg_step_size * (m / denom);
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
  }
}

}  // namespace zt::ops
