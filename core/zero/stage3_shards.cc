// Where this rank's shards live: concatenated in the optimizer's order on the device, in host
// memory (offload_param cpu) or, past max_in_cpu, in a swap file (offload_param nvme); and how
// they get to the device for an all-gather.
#include "core/zero/stage3.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "core/zero/stage3_unit_state.h"

namespace zt {

absl::Status Stage3::PlaceShards() {
  // This rank's shards, concatenated: the optimizer's view of the model.
  std::int64_t total = 0;
  for (auto& s : units_) {
    s->offset = total;
    total += s->st->shard_size;
  }
  RETURN_IF_ERROR(CallTorch("concatenate shards", [&] {
    const bool host = options_.offload_params && !options_.device.is_cpu();
    shard16_ = at::zeros({total}, at::TensorOptions()
                                      .dtype(options_.compute_dtype)
                                      .device(host ? at::Device(at::kCPU) : options_.device)
                                      .pinned_memory(host && options_.pin_memory));
    for (auto& s : units_) {
      at::Tensor slot = shard16_.narrow(0, s->offset, s->st->shard_size);
      if (s->persistent) {
        slot.copy_(s->st->full.narrow(0, comm_.rank() * s->st->shard_size, s->st->shard_size));
      } else {
        slot.copy_(s->st->shard);
      }
      s->st->shard = slot;
    }
    if (!options_.external_master) {
      master_ = options_.compute_dtype == at::kFloat && shard16_.device() == options_.device
                    ? shard16_
                    : shard16_.to(options_.device, at::kFloat, /*non_blocking=*/false, /*copy=*/true);
    }
    grads_ = at::zeros({total}, at::TensorOptions().dtype(at::kFloat).device(options_.device));
  }));
  if (options_.nvme) {
    // The first max_in_cpu elements of shards stay in host memory, the rest go to NVMe.
    std::vector<std::int64_t> swapped;
    std::int64_t resident = 0;
    for (auto& u : units_) {
      const std::int64_t n = u->st->shard_size;
      if (u->persistent || n == 0) continue;
      if (resident + n <= options_.max_in_cpu) {
        resident += n;
        continue;
      }
      if (n > options_.nvme_buffer_elems) {
        return absl::FailedPreconditionError(absl::StrCat(
            "unit ", u->id, " has a shard of ", n, " elements, more than zero_optimization.offload_param.buffer_size (",
            options_.nvme_buffer_elems, "): raise buffer_size to at least the largest shard"));
      }
      u->swap_index = static_cast<int>(swapped.size());
      swapped.push_back(n);
    }
    if (!swapped.empty()) {
      ASSIGN_OR_RETURN(param_swap_, ParamSwap::Create(*options_.nvme, swapped));
      for (auto& u : units_) {
        if (u->swap_index >= 0) RETURN_IF_ERROR(param_swap_->Write(u->swap_index, u->st->shard));
      }
    }
  }
  return absl::OkStatus();
}

at::Tensor Stage3::GatherSource(const UnitState& s) {
  if (s.swap_index >= 0 && !shard16_.defined()) {
    auto fetched = param_swap_->Fetch(s.swap_index);
    if (!fetched.ok()) throw StatusException(fetched.status());
    return *fetched;
  }
  if (s.st->shard.device() == options_.device) return s.st->shard;
  // Pinned host memory: the copy is asynchronous on the current stream, which the all-gather
  // follows.
  return s.st->shard.to(options_.device, /*non_blocking=*/true);
}

std::int64_t Stage3::ParameterBytes() const {
  // Offloaded shards (host memory, NVMe) do not count.
  std::int64_t bytes = shard16_.defined() && shard16_.device() == options_.device ? shard16_.nbytes() : 0;
  for (const auto& s : units_) bytes += static_cast<std::int64_t>(s->st->full.storage().nbytes());
  return bytes;
}

// ---- parameters on NVMe -----------------------------------------------------------------------

absl::Status Stage3::DropSwappedShards() {
  if (!param_swap_ || !shard16_.defined()) return absl::OkStatus();
  return CallTorch("keep the host-resident shards", [&] {
    std::int64_t resident = 0;
    for (auto& u : units_) {
      if (u->swap_index < 0) resident += u->st->shard_size;
    }
    at::Tensor kept = at::empty({resident}, shard16_.options());
    std::int64_t at = 0;
    for (auto& u : units_) {
      if (u->swap_index >= 0) {
        u->st->shard = at::Tensor();
        continue;
      }
      at::Tensor slot = kept.narrow(0, at, u->st->shard_size);
      slot.copy_(u->st->shard);
      u->st->shard = slot;
      at += u->st->shard_size;
    }
    shard16_ = at::Tensor();
  });
}

absl::Status Stage3::UpdateShards(std::int64_t offset, const at::Tensor& values) {
  const std::int64_t end = offset + values.numel();
  for (auto& u : units_) {
    const std::int64_t b = std::max(offset, u->offset), e = std::min(end, u->offset + u->st->shard_size);
    if (b >= e) continue;
    const at::Tensor part = values.narrow(0, b - offset, e - b);
    if (u->swap_index >= 0) {
      RETURN_IF_ERROR(param_swap_->Put(u->swap_index, b - u->offset, part));
    } else {
      RETURN_IF_ERROR(
          CallTorch("update a host shard", [&] { u->st->shard.narrow(0, b - u->offset, e - b).copy_(part); }));
    }
  }
  return absl::OkStatus();
}

std::vector<Stage3::ShardPiece> Stage3::ShardPieces(int rank) const {
  std::vector<ShardPiece> out;
  for (const auto& u : units_) {
    const std::int64_t s = u->st->shard_size, lo = rank * s, hi = lo + s;
    for (std::size_t j = 0; j < u->st->params.size(); ++j) {
      const std::int64_t b = u->param_offsets[j], e = b + u->st->params[j].numel();
      const std::int64_t from = std::max(b, lo), to = std::min(e, hi);
      if (from < to) out.push_back({u->st->params[j], from - b, to - b, u->offset + from - lo});
    }
  }
  return out;
}

std::int64_t Stage3::shard_elems() const {
  std::int64_t total = 0;
  for (const auto& u : units_) total += u->st->shard_size;
  return total;
}

absl::StatusOr<at::Tensor> Stage3::ShardValues() {
  if (shard16_.defined()) return shard16_;
  if (param_swap_) RETURN_IF_ERROR(param_swap_->Flush());
  at::Tensor out;
  std::int64_t total = 0;
  for (auto& u : units_) total += u->st->shard_size;
  RETURN_IF_ERROR(CallTorch("collect the shards",
                            [&] { out = at::empty({total}, at::TensorOptions().dtype(options_.compute_dtype)); }));
  for (auto& u : units_) {
    at::Tensor slot = out.narrow(0, u->offset, u->st->shard_size);
    if (u->swap_index >= 0) {
      ASSIGN_OR_RETURN(at::Tensor fetched, param_swap_->Fetch(u->swap_index));
      RETURN_IF_ERROR(CallTorch("collect a shard", [&] { slot.copy_(fetched); }));
    } else {
      RETURN_IF_ERROR(CallTorch("collect a shard", [&] { slot.copy_(u->st->shard); }));
    }
  }
  return out;
}

}  // namespace zt
