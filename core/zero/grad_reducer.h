// Gradient synchronisation of ZeRO stages 0-2: gradients land in flat fp32 buffers as autograd
// produces them, and buckets are reduced across ranks while backward is still running.
//
//   ASSIGN_OR_RETURN(auto reducer, zt::GradReducer::Create(params, layout, comm, options));
//   reducer->BeginMicroStep(/*boundary=*/true);
//   loss.backward();                           // hooks fill buckets and start their reductions
//   RETURN_IF_ERROR(reducer->FinishBackward());  // remaining buckets, then wait for all
//   at::Tensor g = reducer->OptimizerGrads();  // this rank's averaged fp32 gradients
//   ... update ...;  reducer->ZeroGrads();
//
// Two storage modes:
//  - full: one fp32 buffer for every parameter (stage 0 and 1, and stage 2 with gradient
//    accumulation).  fp32 parameters get views of it as their .grad, so autograd accumulates in
//    place; 16-bit parameters' gradients are added into it by a hook and freed.
//  - partitioned (stage 2 without accumulation): a hook copies each gradient into its bucket's
//    staging buffer and frees it; a finished bucket is reduced to the rank owning its range and
//    freed, so a rank holds only its own shard plus the buckets in flight.  A bucket this rank
//    owns stages in its shard itself.
// Hooks queue the gradients they add and add them in batches, one kernel per batch on CUDA
// (ops/accumulate.h); a batch is added before any bucket is reduced and in FinishBackward().
// Buckets (partition.h) are started strictly in backward order, the same on every rank, whatever
// order hooks fire in.  Nothing is communicated on micro-steps that are not accumulation
// boundaries.  Hooks run inside autograd and cannot return errors: the first one is kept and
// returned by FinishBackward().
#ifndef ZEROTRAIN_CORE_ZERO_GRAD_REDUCER_H_
#define ZEROTRAIN_CORE_ZERO_GRAD_REDUCER_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/comm/communicator.h"
#include "core/zero/partition.h"
#include "ops/accumulate.h"

namespace torch::autograd {
struct Node;
}  // namespace torch::autograd

namespace zt {

struct GradReducerOptions {
  // Each rank updates only its shard (stage >= 1); else every rank updates everything (stage 0).
  bool sharded_optimizer = false;
  // Reduce each bucket to the rank that owns it (stage 1/2 with reduce_scatter) instead of
  // all-reducing it to every rank.  Buckets then never cross a shard edge.
  bool reduce_to_owner = false;
  // Keep only this rank's shard (stage 2 without accumulation), see the header comment.
  bool partitioned = false;
  // Start a bucket's reduction as soon as it is complete (overlap_comm) rather than after
  // backward.
  bool overlap = true;
  std::int64_t bucket_elems = 500000000;  // reduce_bucket_size
  // The dtype buckets travel in (communication_data_type); accumulation is always fp32.
  at::ScalarType comm_dtype = at::kFloat;
  // Averaging: mean divides by the world size (after the reduction, or before it with
  // prescale); predivide_factor splits that division around the reduction (DeepSpeed's
  // gradient_predivide_factor).  sum leaves the sum.
  bool mean = true;
  bool prescale = false;
  double predivide_factor = 1.0;
  // Called when a range of OptimizerGrads() holds its final values of this step (in the
  // device's stream order), with offsets relative to optimizer_range(): ZeRO-Offload starts
  // copying it to the host there.  Runs under the reducer's lock, maybe on an autograd thread;
  // it must not call back into the reducer.  An error fails the backward.
  std::function<absl::Status(Range)> on_final;
};

class GradReducer {
 public:
  // params: leaf tensors in model order, laid out by `layout`; all on one device.
  static absl::StatusOr<std::unique_ptr<GradReducer>> Create(std::vector<at::Tensor> params, const FlatLayout& layout,
                                                             Communicator& comm, const GradReducerOptions& options);
  ~GradReducer();

  // Before each micro-step's backward: whether it ends an accumulation (reduce) or not.
  void BeginMicroStep(bool boundary);
  // After backward on a boundary: reduce what is left, wait for every bucket, scale.
  [[nodiscard]] absl::Status FinishBackward();

  // The fp32 gradients this rank updates: its shard (sharded_optimizer), else the whole padded
  // buffer.
  at::Tensor OptimizerGrads() const;
  // The range of the flat buffer OptimizerGrads() covers.
  Range optimizer_range() const { return optimizer_range_; }
  // This rank's shard of the averaged gradients (for norms: shards do not overlap).
  at::Tensor ShardGrads() const;

  void ZeroGrads();

  std::int64_t buckets() const { return static_cast<std::int64_t>(buckets_.size()); }

 private:
  struct InFlight {
    std::size_t bucket;
    std::unique_ptr<CommWork> work;
    at::Tensor wire;  // what travelled (a copy when comm_dtype differs)
    at::Tensor dest;  // where the result goes
  };

  GradReducer(std::vector<at::Tensor> params, const FlatLayout& layout, Communicator& comm,
              const GradReducerOptions& options);
  void InstallHooks();
  void OnGradReady(std::size_t param);  // hook body
  // dst[dst_offset, +n) += src.flat[src_offset, +n) (= when `assign`), queued (under mu_).
  void Accumulate(const at::Tensor& src, std::int64_t src_offset, const at::Tensor& dst, std::int64_t dst_offset,
                  std::int64_t n, bool assign = false);
  // Partitioned mode, the first backward since ZeroGrads done: zero the shard's slices of the
  // parameters that got no gradient (they still hold the last step's).
  void ZeroUntouched();
  // Partitioned mode: gradients read before any backward since ZeroGrads are zero.
  void SettleShard() const;
  absl::Status FlushQueued();
  at::Tensor NewStaging(std::size_t b);  // partitioned mode: bucket b's staging (own: the shard's slice)
  at::Tensor BucketSource(std::size_t b);
  void LaunchReadyInOrder();
  void Launch(std::size_t b);
  void Complete(InFlight& f);
  void Fail(const absl::Status& s);
  void AttachGradViews();

  std::vector<at::Tensor> params_;
  FlatLayout layout_;
  Communicator& comm_;
  GradReducerOptions options_;
  at::TensorOptions f32_;
  bool views_ = false;  // fp32 params use views of full_ as .grad
  Range optimizer_range_;
  at::Tensor full_;   // full mode: [padded] fp32
  at::Tensor shard_;  // partitioned mode: [shard_size] fp32
  // Partitioned mode: ZeroGrads does not clear the shard.  The first gradient of each parameter
  // after it overwrites its slices (no zeroing pass, no read of the old values), and the first
  // FinishBackward zeroes the slices of parameters that got none; `fresh_` marks that window,
  // `begun_` a backward inside it, `touched_` the parameters written in it.
  mutable bool fresh_ = false;
  bool begun_ = false;
  std::vector<bool> touched_;

  std::vector<GradBucket> buckets_;
  std::vector<std::vector<std::size_t>> buckets_of_param_;
  std::vector<int> pending_;  // params of the bucket still to report this backward
  std::vector<bool> ready_;
  std::vector<at::Tensor> staging_;  // partitioned mode
  std::vector<ops::AccumulateSlice> queued_;
  std::int64_t queued_bytes_ = 0;
  std::size_t next_launch_ = 0;
  std::deque<InFlight> in_flight_;
  bool boundary_ = true;

  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;
  std::vector<std::uintptr_t> hook_keys_;
  std::mutex mu_;  // hooks may run on autograd's device threads
  absl::Status error_;
};

}  // namespace zt

#endif  // ZEROTRAIN_CORE_ZERO_GRAD_REDUCER_H_
