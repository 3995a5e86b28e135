// Stage3's per-unit state, shared by stage3.cc (gathering, reducing) and stage3_shards.cc
// (where the shards live).  Private to the stage3 target.
#ifndef ZEROTRAIN_CORE_ZERO_STAGE3_UNIT_STATE_H_
#define ZEROTRAIN_CORE_ZERO_STAGE3_UNIT_STATE_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "core/comm/communicator.h"
#include "core/zero/stage3.h"
#include "core/zero/unit.h"

namespace zt {

struct Stage3::UnitState {
  int id = 0;
  UnitBase* unit = nullptr;  // nullptr: the persistent group
  std::shared_ptr<UnitStorage> st;
  std::vector<std::int64_t> param_offsets;  // of st->params in st->full
  std::int64_t offset = 0;                  // of its shard in shard16_ / master_ / grads_
  bool persistent = false;
  int swap_index = -1;  // >= 0: its shard lives on NVMe (param_swap_)
  // runtime
  bool live = false;  // st->full has memory holding (or receiving) the values
  std::unique_ptr<CommWork> pending;
  at::Tensor staged;  // offload_params: the device copy of the shard the pending gather reads
  bool in_use = false;
  std::vector<bool> grad_seen;
  int grads_seen = 0;
  at::Tensor acc;    // persistent group: fp32 [padded] gradients of this backward
  at::Tensor ready;  // fp32 [padded] collected gradients not yet reduced
};

}  // namespace zt

#endif  // ZEROTRAIN_CORE_ZERO_STAGE3_UNIT_STATE_H_
