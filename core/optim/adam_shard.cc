#include "core/optim/adam_shard.h"

#include <ATen/ATen.h>

#include <cmath>

#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/util/torch_status.h"
#include "ops/adam.h"
#ifdef ZT_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "ops/cuda/fused_adam.h"
#endif

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

#ifdef ZT_CUDA
namespace {

// ZT_FUSED_ADAM=off runs device shards through ATen operations (for comparisons); read once.
bool FusedAdamDisabled() {
  static const bool off = [] {
    const char* v = std::getenv("ZT_FUSED_ADAM");
    return v != nullptr && (std::strcmp(v, "off") == 0 || std::strcmp(v, "0") == 0);
  }();
  return off;
}

}  // namespace
#endif  // ZT_CUDA

absl::Status AdamShard::Step(const at::Tensor& grad, double lr, double beta1, double beta2, float grad_scale,
                             const at::Tensor& copy_out, const at::Tensor& device_scale) {
  if (device_scale.defined() && (device_scale.numel() != 1 || device_scale.scalar_type() != at::kFloat ||
                                 device_scale.device() != master_.device())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "AdamShard: gradient scale tensor of ", device_scale.numel(), " ", c10::toString(device_scale.scalar_type()),
        " on ", device_scale.device().str(), "; wants one float on ", master_.device().str()));
  }
  if (grad.numel() != master_.numel() || grad.scalar_type() != at::kFloat || !grad.is_contiguous()) {
    return absl::InvalidArgumentError(absl::StrCat("AdamShard: gradient of ", grad.numel(), " ",
                                                   c10::toString(grad.scalar_type()), " for a shard of ",
                                                   master_.numel(), " float"));
  }
  if (copy_out.defined() &&
      (copy_out.numel() != master_.numel() || !copy_out.is_contiguous() || copy_out.device() != master_.device())) {
    return absl::InvalidArgumentError(absl::StrCat("AdamShard: copy-out of ", copy_out.numel(), " elements on ",
                                                   copy_out.device().str(), " for a shard of ", master_.numel(), " on ",
                                                   master_.device().str()));
  }
  // On the CPU the factor is read in place (no device to wait for).
  if (device_scale.defined() && master_.device().is_cpu()) grad_scale *= device_scale.item<float>();
  ++step_;
  const ops::AdamStep s = MakeAdamStep(config_, lr, beta1, beta2, step_, grad_scale);
  if (master_.device().is_cpu()) {
    ops::AdamReference(master_.data_ptr<float>(), grad.data_ptr<float>(), exp_avg_.data_ptr<float>(),
                       exp_avg_sq_.data_ptr<float>(), master_.numel(), s);
    if (copy_out.defined()) return CallTorch("copy out the updated weights", [&] { copy_out.copy_(master_); });
    return absl::OkStatus();
  }
#ifdef ZT_CUDA
  const bool out16 =
      copy_out.defined() && (copy_out.scalar_type() == at::kBFloat16 || copy_out.scalar_type() == at::kHalf);
  if (master_.is_cuda() && grad.is_cuda() && (!copy_out.defined() || out16) && !FusedAdamDisabled()) {
    ops::cuda::AdamChunk c;
    c.param = master_.data_ptr<float>();
    c.grad = grad.data_ptr<float>();
    c.exp_avg = exp_avg_.data_ptr<float>();
    c.exp_avg_sq = exp_avg_sq_.data_ptr<float>();
    c.out16 = out16 ? copy_out.data_ptr() : nullptr;
    c.n = master_.numel();
    const ops::cuda::AdamCopyOut kind = !out16                                ? ops::cuda::AdamCopyOut::kNone
                                        : copy_out.scalar_type() == at::kHalf ? ops::cuda::AdamCopyOut::kFloat16
                                                                              : ops::cuda::AdamCopyOut::kBFloat16;
    ops::cuda::FusedAdamArgs args = ops::cuda::MakeFusedAdamArgs(s);
    if (device_scale.defined()) args.device_grad_scale = device_scale.data_ptr<float>();
    const c10::cuda::CUDAGuard guard(master_.device());
    const cudaError_t e =
        ops::cuda::LaunchFusedAdam(&c, 1, kind, args, nullptr, nullptr, c10::cuda::getCurrentCUDAStream().stream());
    if (e != cudaSuccess) {
      return absl::InternalError(absl::StrCat("fused Adam step on ", master_.device().str(), " (", master_.numel(),
                                              " elements): ", cudaGetErrorString(e)));
    }
    return absl::OkStatus();
  }
#endif
  // The reference arithmetic as ATen operations, for device shards.
  return CallTorch("Adam step", [&] {
    at::Tensor g = grad_scale != 1.0f ? grad * grad_scale : grad;
    if (device_scale.defined()) g = g * device_scale;
    if (!s.decoupled && s.weight_decay != 0.0f) g = g + master_ * s.weight_decay;
    if (s.decoupled && s.weight_decay != 0.0f) master_.mul_(1.0 - lr * config_.weight_decay);
    exp_avg_.lerp_(g, 1.0 - beta1);
    exp_avg_sq_.mul_(beta2).addcmul_(g, g, 1.0 - beta2);
    const double bc1 = s.bias_correction ? 1.0 - std::pow(beta1, static_cast<double>(step_)) : 1.0;
    const double bc2 = s.bias_correction ? 1.0 - std::pow(beta2, static_cast<double>(step_)) : 1.0;
    at::Tensor denom = (exp_avg_sq_.sqrt() / std::sqrt(bc2)).add_(s.eps);
    master_.addcdiv_(exp_avg_, denom, -(lr / bc1));
    if (copy_out.defined()) copy_out.copy_(master_);
  });
}

}  // namespace zt
