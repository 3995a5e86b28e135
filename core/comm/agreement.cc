#include "core/comm/agreement.h"

#include <ATen/ATen.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/util/status_macros.h"

namespace zt {

Fingerprint& Fingerprint::Add(absl::string_view bytes) {
  for (unsigned char c : bytes) {
    h_ ^= c;
    h_ *= 1099511628211ULL;
  }
  return *this;
}

Fingerprint& Fingerprint::Add(std::int64_t v) {
  return Add(absl::string_view(reinterpret_cast<const char*>(&v), sizeof(v)));
}

absl::Status CheckAgreement(Communicator& comm, std::uint64_t fingerprint, std::int64_t count, absl::string_view what) {
  const int n = comm.world_size();
  if (n == 1) return absl::OkStatus();
  at::Tensor mine = at::empty({2}, at::kLong);
  mine[0] = static_cast<std::int64_t>(fingerprint);
  mine[1] = count;
  at::Tensor all = at::empty({2 * n}, at::kLong);
  if (comm.backend() == CommBackend::kNccl) {
    mine = mine.to(at::Device(at::kCUDA, comm.local_rank()));
    all = all.to(mine.device());
  }
  ASSIGN_OR_RETURN(auto work, comm.AllGather(all, mine));
  RETURN_IF_ERROR(work->Wait());
  all = all.cpu();
  const auto* v = all.data_ptr<std::int64_t>();
  bool same = true;
  for (int r = 1; r < n; ++r) same &= v[2 * r] == v[0] && v[2 * r + 1] == v[1];
  if (same) return absl::OkStatus();
  std::vector<std::string> per_rank;
  for (int r = 0; r < n && r < 16; ++r) {
    per_rank.push_back(
        absl::StrFormat("rank %d: %d (fingerprint %016x)", r, v[2 * r + 1], static_cast<std::uint64_t>(v[2 * r])));
  }
  if (n > 16) per_rank.push_back(absl::StrCat("... ", n - 16, " more ranks"));
  return absl::FailedPreconditionError(absl::StrCat(what, " differ across ranks (", absl::StrJoin(per_rank, "; "),
                                                    "). Every rank must build the same ", what, " in the same order."));
}

}  // namespace zt
