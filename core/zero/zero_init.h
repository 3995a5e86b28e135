// Building a model too big for one rank without ever holding it whole (the role of DeepSpeed's
// zero.Init): each stage-3 unit is partitioned the moment it is built, so construction peaks at
// about one unit.
//
//   ASSIGN_OR_RETURN(zt::ZeroInit init, zt::ZeroInit::Create(config, *comm));
//   for (int i = 0; i < layers; ++i) {
//     ASSIGN_OR_RETURN(auto block, init.Build<Block>(dim, heads));   // Block(dim, heads), sharded
//     blocks_.push_back(register_module("block" + std::to_string(i), block));
//   }
//   ... zt::Engine::Create(model, config, comm) adopts the sharded units as they are ...
//
// The unit is built in the compute dtype of the config, on the engine's device; its parameters
// of at least stage3_param_persistence_threshold elements are flattened, set to rank 0's values
// (a broadcast, so every rank agrees whatever its random state), and only this rank's shard is
// kept: the parameters then hold no data until the engine gathers the unit.  Every rank builds
// the same units in the same order.
#ifndef ZEROTRAIN_CORE_ZERO_ZERO_INIT_H_
#define ZEROTRAIN_CORE_ZERO_ZERO_INIT_H_

#include <memory>
#include <utility>

#include "absl/status/statusor.h"
#include "core/comm/communicator.h"
#include "core/config/config.h"
#include "core/util/torch_status.h"
#include "core/zero/unit.h"

namespace zt {

// Partitions `unit`'s large parameters into a UnitStorage (flat buffer released, this rank's
// shard kept) and attaches it to the unit.  Shared by ZeroInit and the stage-3 engine.
[[nodiscard]] absl::Status PartitionUnit(UnitBase& unit, Communicator& comm, at::Device device, at::ScalarType dtype,
                                         std::int64_t persistence_threshold);

class ZeroInit {
 public:
  // `device`: where the engine will train (default: cuda:<local rank> under NCCL, else CPU).
  static absl::StatusOr<ZeroInit> Create(const Config& config, Communicator& comm,
                                         std::optional<at::Device> device = std::nullopt);

  // Builds Unit<M> around M(args...) and partitions it.
  template <typename M, typename... Args>
  absl::StatusOr<std::shared_ptr<Unit<M>>> Build(Args&&... args) {
    auto unit = CallTorch("build a unit", [&] { return MakeUnit(std::make_shared<M>(std::forward<Args>(args)...)); });
    if (!unit.ok()) return unit.status();
    absl::Status s = PartitionUnit(**unit, *comm_, device_, dtype_, threshold_);
    if (!s.ok()) return s;
    return *std::move(unit);
  }

 private:
  ZeroInit(Communicator& comm, at::Device device, at::ScalarType dtype, std::int64_t threshold)
      : comm_(&comm), device_(device), dtype_(dtype), threshold_(threshold) {}
  Communicator* comm_;
  at::Device device_;
  at::ScalarType dtype_;
  std::int64_t threshold_;
};

}  // namespace zt

#endif  // ZEROTRAIN_CORE_ZERO_ZERO_INIT_H_
