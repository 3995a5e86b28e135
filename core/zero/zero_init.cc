#include "core/zero/zero_init.h"

#include <ATen/ATen.h>
#include <c10/core/StorageImpl.h>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"

namespace zt {

absl::Status PartitionUnit(UnitBase& unit, Communicator& comm, at::Device device, at::ScalarType dtype,
                           std::int64_t persistence_threshold) {
  const int world = comm.world_size();
  auto st = std::make_shared<UnitStorage>();
  for (const auto& item : unit.inner().named_parameters(/*recurse=*/true)) {
    const at::Tensor& p = item.value();
    if (!p.requires_grad() || p.numel() < persistence_threshold) continue;
    st->params.push_back(p);
    st->names.push_back(item.key());
    st->numel += p.numel();
  }
  st->shard_size = (st->numel + world - 1) / world;
  RETURN_IF_ERROR(CallTorch("partition a unit", [&] {
    at::NoGradGuard no_grad;
    st->full = at::zeros({world * st->shard_size}, at::TensorOptions().dtype(dtype).device(device));
    std::int64_t off = 0;
    for (at::Tensor& p : st->params) {
      at::Tensor view = st->full.narrow(0, off, p.numel()).view(p.sizes());
      view.copy_(p);     // converts device and dtype
      p.set_data(view);  // the original memory goes with its last reference
      off += p.numel();
    }
  }));
  if (world > 1 && st->numel > 0) {  // every rank starts from rank 0's values
    ASSIGN_OR_RETURN(auto w, comm.Broadcast(st->full, 0));
    RETURN_IF_ERROR(w->Wait());
  }
  RETURN_IF_ERROR(CallTorch("keep this rank's shard", [&] {
    st->shard = st->full.narrow(0, comm.rank() * st->shard_size, st->shard_size).clone();
    c10::StorageImpl* s = st->full.storage().unsafeGetStorageImpl();
    s->set_data_ptr_noswap(at::DataPtr(nullptr, s->device()));
    s->set_nbytes(0);
  }));
  unit.set_storage(std::move(st));
  return absl::OkStatus();
}

absl::StatusOr<ZeroInit> ZeroInit::Create(const Config& config, Communicator& comm, std::optional<at::Device> device) {
  if (config.zero_optimization.stage != 3) {
    return absl::FailedPreconditionError(absl::StrCat(config.source, ": ZeroInit partitions units for ZeRO stage 3; ",
                                                      "this config has stage ", config.zero_optimization.stage));
  }
  const at::ScalarType dtype = config.precision() == Precision::kFp16   ? at::kHalf
                               : config.precision() == Precision::kBf16 ? at::kBFloat16
                                                                        : at::kFloat;
  const at::Device d = device.value_or(comm.backend() == CommBackend::kNccl ? at::Device(at::kCUDA, comm.local_rank())
                                                                            : at::Device(at::kCPU));
  return ZeroInit(comm, d, dtype, config.zero_optimization.param_persistence_threshold);
}

}  // namespace zt
