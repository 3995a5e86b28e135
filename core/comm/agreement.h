// Start-up checks that every rank holds the same thing (the same parameter shapes in the same
// order, the same config) before any collective depends on it: a mismatch would otherwise
// surface as a hang or as silently wrong sums.
//
//   RETURN_IF_ERROR(zt::CheckAgreement(comm, fingerprint, num_params, "model parameters"));
//
// Every rank learns every rank's (fingerprint, count) through one all-gather; when they differ,
// every rank returns the same kFailedPrecondition error listing them.
#ifndef ZEROTRAIN_CORE_COMM_AGREEMENT_H_
#define ZEROTRAIN_CORE_COMM_AGREEMENT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/comm/communicator.h"

namespace zt {

[[nodiscard]] absl::Status CheckAgreement(Communicator& comm, std::uint64_t fingerprint, std::int64_t count,
                                          absl::string_view what);

// 64-bit FNV-1a, for building fingerprints from names and shapes.
class Fingerprint {
 public:
  Fingerprint& Add(absl::string_view bytes);
  Fingerprint& Add(std::int64_t v);
  std::uint64_t value() const { return h_; }

 private:
  std::uint64_t h_ = 1469598103934665603ULL;
};

}  // namespace zt

#endif  // ZEROTRAIN_CORE_COMM_AGREEMENT_H_
