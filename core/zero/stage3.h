// ZeRO stage 3: every unit's parameters are partitioned over ranks and gathered only while the
// unit runs (forward, then again for its backward); gradients are reduce-scattered into their
// owners' shards as each unit's backward finishes.
//
//   ASSIGN_OR_RETURN(auto s3, zt::Stage3::Create(model, comm, options));  // attaches to every unit
//   s3->BeginForwardPass();   loss = model.Forward(batch);        // units gather and release
//   s3->BeginBackwardPass();  loss.backward();  RETURN_IF_ERROR(s3->FinishBackward());
//   RETURN_IF_ERROR(s3->Sync(zt::SyncPoint::kStep));              // every rank's gradients are in
//   ... Adam on s3->master() with s3->grads() ...
//   RETURN_IF_ERROR(s3->AfterStep(/*applied=*/true));
//
// Parameters: each unit's (unit.h) parameters of at least persistence_threshold elements are
// flattened into one buffer per unit and cut into world equal shards (the last one padded); a
// rank keeps its shard of every unit, concatenated in master()/grads() order.  Smaller
// parameters and those outside any unit ("persistent") stay whole on every rank; their
// gradients are reduce-scattered once per backward and their update all-gathered after the step.
//
// Fetching: the fetch schedule (fetch_schedule.h) decides prefetches and releases from the
// recorded order; every collective goes through rounds (rounds.h), so ranks whose forward calls
// differ in number or order (generation, early exit) stay matched without any flag: a rank
// waiting at a sync point (Step, Sync, Shutdown) keeps serving the others' gathers.  Control
// messages travel on a CPU side channel, so on GPUs the host never waits for data: gathers and
// reductions run on the communicator's stream and the compute stream waits on their events.
//
// One thread at a time drives a Stage3 (the training thread, or autograd's while backward runs).
#ifndef ZEROTRAIN_CORE_ZERO_STAGE3_H_
#define ZEROTRAIN_CORE_ZERO_STAGE3_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/comm/communicator.h"
#include "core/zero/fetch_schedule.h"
#include "core/zero/param_swap.h"
#include "core/zero/rounds.h"
#include "core/zero/unit.h"

namespace torch::autograd {
struct Node;
}  // namespace torch::autograd

namespace zt {

// Where a rank waits for all the others (RoundRequest::sync_point values).
enum class SyncPoint : std::int64_t { kStep = 1, kGather = 2, kBarrier = 3, kShutdown = 4 };
const char* SyncPointName(std::int64_t point);

struct Stage3Options {
  at::Device device = at::kCPU;
  at::ScalarType compute_dtype = at::kFloat;
  std::int64_t persistence_threshold = 100000;  // stage3_param_persistence_threshold
  FetchSchedule::Options schedule;              // prefetch, max live, reuse distance
  // Gradient averaging, as GradReducerOptions.
  bool mean = true;
  bool prescale = false;
  double predivide_factor = 1.0;
  at::ScalarType comm_dtype = at::kFloat;
  // overlap_comm: a unit's gradient reduce-scatter runs while the backward goes on; its result
  // is folded into grads() (the compute stream waits for it) only once kReducesInFlight newer
  // ones have started, or at FinishBackward()/Sync().  false: the compute stream waits for each
  // reduce-scatter as soon as it starts.
  bool overlap_comm = true;
  // ZeRO-Offload of the optimizer: the engine keeps the fp32 master weights (host memory) and
  // writes the updated values into params() itself; master() stays undefined.
  bool external_master = false;
  // offload_param (device cpu): this rank's shards, the all-gather sources, live in host memory
  // (pinned when pin_memory and the device is CUDA) and travel to the device just before their
  // all-gather, which the fetch schedule starts ahead of use.
  bool offload_params = false;
  bool pin_memory = true;
  // offload_param device nvme (with offload_params and external_master): the shards of the
  // units past the first max_in_cpu elements live in a swap file (param_swap.h) instead of host
  // memory, read just before their all-gather.  No shard may exceed nvme_buffer_elems.
  std::optional<ParamSwapOptions> nvme;
  std::int64_t max_in_cpu = 1000000000;        // offload_param.max_in_cpu
  std::int64_t nvme_buffer_elems = 100000000;  // offload_param.buffer_size
};

// Counters for benchmarks and tests.
struct Stage3Stats {
  std::int64_t rounds = 0;
  std::int64_t gathers = 0;         // unit all-gathers this rank took part in
  std::int64_t gathered_bytes = 0;  // their output bytes
  std::int64_t reduces = 0;
  std::int64_t reduced_bytes = 0;  // reduce-scatter input bytes
  std::int64_t peak_reduces_in_flight = 0;
  std::int64_t peak_live_elems = 0;  // most unit elements gathered at once on this rank
};

class Stage3 : public UnitFetcher {
 public:
  // Partitions the units of `model` (already on options.device, in the compute dtype, except
  // units built sharded by zero_init.h, which are adopted as they are) and attaches to them.
  // Every rank starts from rank 0's values.
  static absl::StatusOr<std::unique_ptr<Stage3>> Create(torch::nn::Module& model, Communicator& comm,
                                                        const Stage3Options& options);
  ~Stage3() override;

  // --- the engine's calls -----------------------------------------------------------------
  void BeginForwardPass();
  void BeginBackwardPass();
  // After backward: sends this rank's remaining gradients (partly used units, persistent
  // parameters).  Returns errors raised inside autograd hooks.
  [[nodiscard]] absl::Status FinishBackward();
  // Returns once every rank reached `point`, taking part in their rounds meanwhile.
  [[nodiscard]] absl::Status Sync(SyncPoint point);
  // After the optimizer updated master() (applied) or skipped the step: refreshes the 16-bit
  // shards, drops gathered copies that are stale, all-gathers the persistent parameters.
  [[nodiscard]] absl::Status AfterStep(bool applied);
  void ZeroGrads();

  // This rank's fp32 master weights and gradients, all units' shards then the persistent one
  // (master() is undefined with external_master).
  const at::Tensor& master() const { return master_; }
  const at::Tensor& grads() const { return grads_; }
  // The same shards in the compute dtype: what units gather from (host memory with
  // offload_params).  With external_master the optimizer writes its updates here.  With
  // parameters on NVMe it holds the initial values until DropSwappedShards(); the optimizer
  // hands its updates to UpdateShards() instead.
  const at::Tensor& params() const { return shard16_; }
  // NVMe parameters: forgets params() (the optimizer has taken its initial values), keeping only
  // the shards that stay in host memory.
  [[nodiscard]] absl::Status DropSwappedShards();
  // NVMe parameters: new values of [offset, offset + values.numel()) of the shards (offsets
  // increasing within a step), written to their units' home.
  [[nodiscard]] absl::Status UpdateShards(std::int64_t offset, const at::Tensor& values);
  // This rank's shards in the compute dtype, wherever they live (a fresh host copy when some
  // are on NVMe).
  [[nodiscard]] absl::StatusOr<at::Tensor> ShardValues();
  const ParamSwap* param_swap() const { return param_swap_.get(); }

  // What a rank's shards hold (checkpoints): elements [begin, end) of `param`, flattened, sit at
  // [offset, offset + end - begin) of that rank's master()/grads()/params().  Every rank's
  // shards have the same length, shard_elems(), so any rank can answer for any other.
  struct ShardPiece {
    at::Tensor param;
    std::int64_t begin = 0, end = 0, offset = 0;
  };
  std::vector<ShardPiece> ShardPieces(int rank) const;
  std::int64_t shard_elems() const;

  // Scoped full parameters (the role of DeepSpeed's GatheredParameters); every rank calls them
  // at the same point.  GatherAll gathers every unit and keeps it; ReleaseAll gives them back,
  // first writing modifier_rank's values (>= 0) into every rank's shards and master weights.
  [[nodiscard]] absl::Status GatherAll();
  [[nodiscard]] absl::Status ReleaseAll(int modifier_rank = -1);

  // --- introspection ----------------------------------------------------------------------
  int num_units() const { return static_cast<int>(units_.size()) - 1; }  // the last one is persistent
  std::int64_t partitioned_elems() const { return partitioned_elems_; }
  std::int64_t persistent_elems() const;
  // Bytes of parameters this rank holds now on its device: its shards (unless offloaded),
  // gathered units, persistent params.
  std::int64_t ParameterBytes() const;
  const FetchSchedule& schedule() const { return *schedule_; }
  const Stage3Stats& stats() const { return stats_; }
  bool gathered(int unit) const;

  // --- UnitFetcher ------------------------------------------------------------------------
  void BeginForward(int unit) override;
  void EndForward(int unit, const std::vector<at::Tensor>& outputs) noexcept override;

 private:
  struct UnitState;

  Stage3(Communicator& comm, const Stage3Options& options);
  absl::Status Build(torch::nn::Module& model);
  // Concatenates this rank's shards where options_ says they live (stage3_shards.cc).
  absl::Status PlaceShards();
  void InstallGradHooks();

  // Gathers `unit` (with the schedule's prefetches) through rounds; throws on failure.
  void Need(int unit);
  void OnPreBackward(int unit);
  void OnGradReady(int unit, std::size_t param);
  absl::Status Round(RoundRequest request, RoundPlan* plan);
  absl::Status Execute(const RoundPlan& plan, const std::vector<int>& wanted);
  absl::Status StartGather(int unit, bool keep);
  absl::Status WaitGather(int unit);
  // The all-gather source of a unit on the device (a staged copy with offload_params).
  at::Tensor GatherSource(const UnitState& s);
  // Starts `unit`'s gradient reduce-scatter (see Stage3Options::overlap_comm).
  absl::Status Reduce(int unit);
  // Waits for the oldest reduce-scatter in flight and adds its result to grads_; all of them.
  absl::Status FinishOldestReduce();
  absl::Status FinishReduces();
  absl::Status Release(int unit);
  void CollectGrads(int unit);
  std::vector<int> ReadyToReduce() const;
  void Throw(const absl::Status& s);

  Communicator& comm_;
  std::unique_ptr<Communicator> control_;  // CPU side channel for round messages
  Stage3Options options_;
  std::vector<std::unique_ptr<UnitState>> units_;  // units, then the persistent group
  std::vector<UnitBase*> attached_;
  std::unique_ptr<FetchSchedule> schedule_;
  at::Tensor shard16_;                     // [sum of shard sizes] compute dtype: the gather sources
  std::unique_ptr<ParamSwap> param_swap_;  // offload_param nvme
  at::Tensor master_;  // fp32 on the device (shard16_ itself when both are); undefined with external_master
  at::Tensor grads_;   // fp32
  struct ReduceInFlight {
    std::unique_ptr<CommWork> work;
    at::Tensor wire;  // the input, kept until the wait
    at::Tensor out;   // this rank's reduced shard
    std::int64_t offset = 0;
  };
  std::deque<ReduceInFlight> reducing_;  // oldest first
  std::int64_t partitioned_elems_ = 0;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;
  std::vector<std::uintptr_t> hook_keys_;
  absl::Status error_;  // first error inside hooks or EndForward
  bool gathered_all_ = false;
  Stage3Stats stats_;
};

}  // namespace zt

#endif  // ZEROTRAIN_CORE_ZERO_STAGE3_H_
