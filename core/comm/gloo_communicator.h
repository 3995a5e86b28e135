// The CPU backend of Communicator (communicator.h), on Debian's standalone Gloo.
//
// Why standalone Gloo and not c10d's ProcessGroupGloo: LibTorch embeds its own Gloo with its
// symbols hidden, and ships ProcessGroupGloo.hpp without the Gloo headers it includes, so using
// ProcessGroupGloo would mean compiling its class layout against a different Gloo's headers.
// Standalone Gloo (headers and libgloo.so of one Debian package) links cleanly beside
// libtorch_cpu.so: no shared symbols.  Open MPI was the other choice; it needs mpirun to start
// and cannot rendezvous from RANK/WORLD_SIZE/MASTER_ADDR like torchrun and our launcher.
//
// Collectives run one at a time, in order, on one worker thread per communicator (a Gloo
// context must not run two collectives with the same tag at once); each call returns at once
// with a handle.  Gloo has no flat reduce-scatter: ReduceScatter is an all-reduce of a copy of
// the input followed by taking this rank's chunk (twice the traffic of a ring reduce-scatter;
// correct for any world size).  bfloat16 is reduced with float arithmetic per element.
#ifndef ZEROTRAIN_CORE_COMM_GLOO_COMMUNICATOR_H_
#define ZEROTRAIN_CORE_COMM_GLOO_COMMUNICATOR_H_

#include <memory>

#include "absl/status/statusor.h"
#include "core/comm/communicator.h"

namespace zt {

absl::StatusOr<std::unique_ptr<Communicator>> CreateGlooCommunicator(const CommOptions& options,
                                                                     c10::intrusive_ptr<c10d::Store> store);

}  // namespace zt

#endif  // ZEROTRAIN_CORE_COMM_GLOO_COMMUNICATOR_H_
