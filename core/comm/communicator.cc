#include "core/comm/communicator.h"

#include "absl/strings/str_cat.h"

namespace zt {

const char* CommBackendName(CommBackend b) {
  switch (b) {
    case CommBackend::kAuto:
      return "auto";
    case CommBackend::kGloo:
      return "gloo";
    case CommBackend::kNccl:
      return "nccl";
  }
  return "?";
}

std::string Communicator::Where() const {
  return absl::StrCat("rank ", info_.rank, " of ", info_.world_size, " (", CommBackendName(backend()), ")");
}

absl::Status Communicator::CheckTensor(const at::Tensor& t, const char* what) const {
  if (!t.defined()) return absl::InvalidArgumentError(absl::StrCat(Where(), ": ", what, " of an undefined tensor"));
  if (!t.is_contiguous()) {
    return absl::InvalidArgumentError(absl::StrCat(Where(), ": ", what, " needs a contiguous tensor"));
  }
  return absl::OkStatus();
}

absl::Status Communicator::CheckRoot(int root, const char* what) const {
  if (root < 0 || root >= info_.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(), ": ", what, " root ", root, " is not a rank of ", info_.world_size));
  }
  return absl::OkStatus();
}

void Communicator::Count(std::atomic<std::int64_t>& kind, std::int64_t bytes) {
  stats_.calls.fetch_add(1, std::memory_order_relaxed);
  stats_.bytes.fetch_add(bytes, std::memory_order_relaxed);
  kind.fetch_add(bytes, std::memory_order_relaxed);
}

absl::Status AllReduceSync(Communicator& comm, at::Tensor t, ReduceOp op) {
  auto work = comm.AllReduce(std::move(t), op);
  if (!work.ok()) return work.status();
  return (*work)->Wait();
}

}  // namespace zt
