#include "core/optim/adam_shard.h"

#include <ATen/ATen.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/util/torch_status.h"
#include "ops/adam.h"

namespace zt {

AdamShard::AdamShard(at::Tensor master, const AdamConfig& config)
    : master_(std::move(master)),
      exp_avg_(at::zeros_like(master_)),
      exp_avg_sq_(at::zeros_like(master_)),
      config_(config) {}

ops::AdamStep MakeAdamStep(const AdamConfig& config, double lr, double beta1, double beta2, std::int64_t step,
                           float grad_scale) {
  ops::AdamStep s;
  s.lr = static_cast<float>(lr);
  s.beta1 = static_cast<float>(beta1);
  s.beta2 = static_cast<float>(beta2);
  s.eps = static_cast<float>(config.eps);
  s.weight_decay = static_cast<float>(config.weight_decay);
  s.decoupled = config.decoupled_weight_decay;
  s.bias_correction = config.bias_correction;
  s.step = step;
  s.grad_scale = grad_scale;
  return s;
}

absl::Status AdamShard::Restore(const at::Tensor& master, const at::Tensor& exp_avg, const at::Tensor& exp_avg_sq,
                                std::int64_t step) {
  for (const at::Tensor* t : {&master, &exp_avg, &exp_avg_sq}) {
    if (t->numel() != master_.numel()) {
      return absl::InvalidArgumentError(
          absl::StrCat("AdamShard: restoring ", t->numel(), " values into a shard of ", master_.numel()));
    }
  }
  if (step < 0) return absl::InvalidArgumentError(absl::StrCat("AdamShard: restoring step ", step));
  absl::Status s = CallTorch("restore the optimizer state", [&] {
    master_.copy_(master.reshape({-1}));
    exp_avg_.copy_(exp_avg.reshape({-1}));
    exp_avg_sq_.copy_(exp_avg_sq.reshape({-1}));
  });
  if (s.ok()) step_ = step;
  return s;
}

absl::Status AdamShard::Step(const at::Tensor& grad, double lr, double beta1, double beta2, float grad_scale) {
  if (grad.numel() != master_.numel() || grad.scalar_type() != at::kFloat || !grad.is_contiguous()) {
    return absl::InvalidArgumentError(absl::StrCat("AdamShard: gradient of ", grad.numel(), " ",
                                                   c10::toString(grad.scalar_type()), " for a shard of ",
                                                   master_.numel(), " float"));
  }
  ++step_;
  const ops::AdamStep s = MakeAdamStep(config_, lr, beta1, beta2, step_, grad_scale);
  if (master_.device().is_cpu()) {
    ops::AdamReference(master_.data_ptr<float>(), grad.data_ptr<float>(), exp_avg_.data_ptr<float>(),
                       exp_avg_sq_.data_ptr<float>(), master_.numel(), s);
    return absl::OkStatus();
  }
  // The reference arithmetic as ATen operations, for device shards.
  return CallTorch("Adam step", [&] {
    at::Tensor g = grad_scale != 1.0f ? grad * grad_scale : grad;
    if (!s.decoupled && s.weight_decay != 0.0f) g = g + master_ * s.weight_decay;
    if (s.decoupled && s.weight_decay != 0.0f) master_.mul_(1.0 - lr * config_.weight_decay);
    exp_avg_.lerp_(g, 1.0 - beta1);
    exp_avg_sq_.mul_(beta2).addcmul_(g, g, 1.0 - beta2);
    const double bc1 = s.bias_correction ? 1.0 - std::pow(beta1, static_cast<double>(step_)) : 1.0;
    const double bc2 = s.bias_correction ? 1.0 - std::pow(beta2, static_cast<double>(step_)) : 1.0;
    at::Tensor denom = (exp_avg_sq_.sqrt() / std::sqrt(bc2)).add_(s.eps);
    master_.addcdiv_(exp_avg_, denom, -(lr / bc1));
  });
}

}  // namespace zt
