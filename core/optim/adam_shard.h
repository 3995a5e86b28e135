// Adam / AdamW state for one flat fp32 shard of the parameters (the rank's share under ZeRO,
// everything at stage 0), updated in place.
//
//   zt::AdamShard opt(master, config.optimizer.adam);   // master: fp32, updated in place
//   RETURN_IF_ERROR(opt.Step(grads, lr, beta1, beta2, /*grad_scale=*/1 / loss_scale));
//
// CPU shards run the reference kernel of ops/adam.h.  CUDA shards run the fused kernel of
// ops/cuda/fused_adam.h (one pass, bit-identical to the reference) in builds with CUDA, or the
// same arithmetic as ATen operations without it or with ZT_FUSED_ADAM=off.
#ifndef ZEROTRAIN_CORE_OPTIM_ADAM_SHARD_H_
#define ZEROTRAIN_CORE_OPTIM_ADAM_SHARD_H_

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "absl/status/status.h"
#include "core/config/config.h"
#include "ops/adam.h"

namespace zt {

// The kernel arguments of one step (ops/adam.h) from the optimizer config and this step's
// schedule: shared by AdamShard and the offloaded HostAdam, so both step alike.
ops::AdamStep MakeAdamStep(const AdamConfig& config, double lr, double beta1, double beta2, std::int64_t step,
                           float grad_scale);

class AdamShard {
 public:
  AdamShard(at::Tensor master, const AdamConfig& config);

  // One update with gradients `grad` (fp32, same size as master) multiplied by grad_scale.
  // `copy_out`, when defined (contiguous, master's size and device), receives the new weights
  // in its dtype: in the same pass as the update for bf16/fp16 on CUDA.  `device_scale`, when
  // defined (float32, one element, master's device), multiplies the gradients too and is read
  // where it lives: a factor computed on the GPU's stream costs the host no wait.
  [[nodiscard]] absl::Status Step(const at::Tensor& grad, double lr, double beta1, double beta2, float grad_scale,
                                  const at::Tensor& copy_out = at::Tensor(),
                                  const at::Tensor& device_scale = at::Tensor());

  const at::Tensor& master() const { return master_; }
  const at::Tensor& exp_avg() const { return exp_avg_; }
  const at::Tensor& exp_avg_sq() const { return exp_avg_sq_; }
  std::int64_t step_count() const { return step_; }
  // Resume from a checkpoint: the master weights, moments (fp32, the shard's size, any device)
  // and the number of updates taken.
  [[nodiscard]] absl::Status Restore(const at::Tensor& master, const at::Tensor& exp_avg, const at::Tensor& exp_avg_sq,
                                     std::int64_t step);

 private:
  at::Tensor master_;
  at::Tensor exp_avg_;
  at::Tensor exp_avg_sq_;
  AdamConfig config_;
  std::int64_t step_ = 0;
};

}  // namespace zt

#endif  // ZEROTRAIN_CORE_OPTIM_ADAM_SHARD_H_
