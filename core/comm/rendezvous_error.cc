#include "core/comm/rendezvous_error.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace zt {

absl::Status RendezvousTimeoutError(const RankInfo& info, std::chrono::milliseconds timeout, absl::string_view what,
                                    absl::string_view cause) {
  return absl::DeadlineExceededError(absl::StrCat(
      "rank ", info.rank, " of ", info.world_size, ": rendezvous at ", info.master_addr, ":", info.master_port,
      " timed out after ", timeout.count() / 1000.0, " s: ", what,
      " (is every rank started, with the same MASTER_ADDR/MASTER_PORT and WORLD_SIZE? ZT_RENDEZVOUS_TIMEOUT_S "
      "raises the limit): ",
      cause));
}

bool IsTimeout(absl::string_view message, std::chrono::steady_clock::time_point started,
               std::chrono::milliseconds timeout) {
  const std::string lower = absl::AsciiStrToLower(message);
  return absl::StrContains(lower, "timed out") || absl::StrContains(lower, "timeout") ||
         std::chrono::steady_clock::now() - started >= timeout;
}

}  // namespace zt
