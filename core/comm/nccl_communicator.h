// The CUDA backend of Communicator (communicator.h): c10d's ProcessGroupNCCL, which runs NCCL
// on its own streams ordered after the current stream by events; Wait() makes the current
// stream wait, the host does not block.  Built only under --config=cuda.
#ifndef ZEROTRAIN_CORE_COMM_NCCL_COMMUNICATOR_H_
#define ZEROTRAIN_CORE_COMM_NCCL_COMMUNICATOR_H_

#include <memory>

#include "absl/status/statusor.h"
#include "core/comm/communicator.h"

namespace zt {

// Uses CUDA device options.rank.local_rank.
absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(const CommOptions& options,
                                                                     c10::intrusive_ptr<c10d::Store> store);

}  // namespace zt

#endif  // ZEROTRAIN_CORE_COMM_NCCL_COMMUNICATOR_H_
