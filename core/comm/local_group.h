// Several ranks in one process, for tests and benchmarks: each rank is a thread with its own
// communicator, all meeting through one in-memory c10d HashStore (Gloo still talks over TCP
// loopback between them, as separate processes would).
//
//   absl::Status s = zt::RunOnRanks(4, [&](zt::Communicator& comm) -> absl::Status {
//     at::Tensor t = at::full({8}, comm.rank());
//     return zt::AllReduceSync(comm, t);
//   });
#ifndef ZEROTRAIN_CORE_COMM_LOCAL_GROUP_H_
#define ZEROTRAIN_CORE_COMM_LOCAL_GROUP_H_

#include <chrono>
#include <functional>

#include "absl/status/status.h"
#include "core/comm/communicator.h"

namespace zt {

struct LocalGroupOptions {
  CommBackend backend = CommBackend::kGloo;
  std::chrono::milliseconds timeout = std::chrono::seconds(60);
};

// Runs body on every rank 0..world-1 and joins them.  Returns OK when every rank's body
// returned OK, else the failures of all failing ranks in one status (the first one's code).
// Each rank's communicator is shut down after its body.
absl::Status RunOnRanks(int world, const std::function<absl::Status(Communicator&)>& body,
                        const LocalGroupOptions& options = {});

}  // namespace zt

#endif  // ZEROTRAIN_CORE_COMM_LOCAL_GROUP_H_
