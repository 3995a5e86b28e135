// Adam and AdamW over flat fp32 buffers: the reference kernel every faster one (SIMD CPU Adam,
// fused CUDA Adam) is tested against, and what the engine runs on its optimizer shard.
//
//   zt::ops::AdamStep s{.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
//                       .weight_decay = 0.01f, .decoupled = true, .step = t};
//   zt::ops::AdamReference(param, grad, exp_avg, exp_avg_sq, n, s);
//
// The arithmetic is PyTorch's single-tensor torch.optim.Adam / AdamW, element by element in
// float with the step's scalars computed in double and rounded once:
//   AdamW: p *= 1 - lr*wd                     Adam (L2): g += wd*p
//   m = lerp(m, g, 1 - beta1)                 (PyTorch's lerp formula)
//   v = v*beta2 + (1 - beta2)*g*g
//   p += -(lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// `grad_scale` multiplies g first (unscaling and clipping folded into the update).
#ifndef ZEROTRAIN_OPS_ADAM_H_
#define ZEROTRAIN_OPS_ADAM_H_

#include <cstdint>

namespace zt::ops {

struct AdamStep {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
  bool decoupled = true;  // AdamW; false: Adam with L2 weight decay
  bool bias_correction = true;
  std::int64_t step = 1;  // this update's number, from 1
  float grad_scale = 1.0f;
};

void AdamReference(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, std::int64_t n,
                   const AdamStep& s);

}  // namespace zt::ops

#endif  // ZEROTRAIN_OPS_ADAM_H_
