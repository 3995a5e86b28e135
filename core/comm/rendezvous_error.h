// The words of a failed rendezvous, shared by Communicator::Create and the Gloo backend.
//
//   if (IsTimeout(e.what(), started, options.rendezvous_timeout)) {
//     return RendezvousTimeoutError(info, options.rendezvous_timeout, "not every rank arrived", e.what());
//   }
//
// A rank that never arrives is the commonest mistake in starting a job (a typo in MASTER_PORT,
// a WORLD_SIZE that counts one node too many, a rank that crashed while loading); the message
// names what to check and the variable that raises the limit.
#ifndef ZEROTRAIN_CORE_COMM_RENDEZVOUS_ERROR_H_
#define ZEROTRAIN_CORE_COMM_RENDEZVOUS_ERROR_H_

#include <chrono>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/comm/rank_env.h"

namespace zt {

// kDeadlineExceeded: "rank 0 of 2: rendezvous at 127.0.0.1:29613 timed out after 3 s: <what>
// (is every rank started, with the same MASTER_ADDR/MASTER_PORT and WORLD_SIZE?
// ZT_RENDEZVOUS_TIMEOUT_S raises the limit): <cause>".
absl::Status RendezvousTimeoutError(const RankInfo& info, std::chrono::milliseconds timeout, absl::string_view what,
                                    absl::string_view cause);

// Whether a rendezvous that failed with `message` after starting at `started` ran out of time:
// c10d and Gloo say so in their messages ("timed out", "timeout"), and a failure at the limit
// is one whatever it says.
bool IsTimeout(absl::string_view message, std::chrono::steady_clock::time_point started,
               std::chrono::milliseconds timeout);

}  // namespace zt

#endif  // ZEROTRAIN_CORE_COMM_RENDEZVOUS_ERROR_H_
