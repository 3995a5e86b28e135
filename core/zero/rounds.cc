#include "core/zero/rounds.h"

#include <algorithm>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace zt {
namespace {

constexpr std::int64_t kMagic = 0x7a74726f;  // "ztro": catches a round paired with another collective

}  // namespace

std::vector<std::int64_t> EncodeRound(const RoundRequest& r, int* gathers_sent, int* reduces_sent) {
  std::vector<std::int64_t> m(kRoundMessageSize, -1);
  const int ng = std::min<int>(kRoundCapacity, static_cast<int>(r.gather.size()));
  const int nr = std::min<int>(kRoundCapacity, static_cast<int>(r.reduce.size()));
  m[0] = kMagic;
  m[1] = r.sync_point;
  m[2] = ng;
  m[3] = nr;
  for (int i = 0; i < ng; ++i) m[4 + i] = r.gather[i];
  for (int i = 0; i < nr; ++i) m[4 + kRoundCapacity + i] = r.reduce[i];
  if (gathers_sent != nullptr) *gathers_sent = ng;
  if (reduces_sent != nullptr) *reduces_sent = nr;
  return m;
}

absl::StatusOr<RoundPlan> DecideRound(absl::Span<const std::int64_t> all, int world) {
  if (static_cast<int>(all.size()) != world * kRoundMessageSize) {
    return absl::InternalError(absl::StrCat("stage-3 round: ", all.size(), " values for ", world, " ranks"));
  }
  RoundPlan plan;
  std::set<int> gather, reduce;
  bool all_sync = true;
  for (int r = 0; r < world; ++r) {
    const std::int64_t* m = all.data() + r * kRoundMessageSize;
    if (m[0] != kMagic || m[2] < 0 || m[2] > kRoundCapacity || m[3] < 0 || m[3] > kRoundCapacity) {
      return absl::InternalError(absl::StrCat("stage-3 round: rank ", r,
                                              " sent something else than a round message: ranks are out of step (a "
                                              "collective was issued outside the engine while stage 3 runs?)"));
    }
    plan.sync_points.push_back(m[1]);
    for (int i = 0; i < m[2]; ++i) gather.insert(static_cast<int>(m[4 + i]));
    for (int i = 0; i < m[3]; ++i) reduce.insert(static_cast<int>(m[4 + kRoundCapacity + i]));
    all_sync &= m[1] != 0 && m[2] == 0 && m[3] == 0;
  }
  plan.gather.assign(gather.begin(), gather.end());
  plan.reduce.assign(reduce.begin(), reduce.end());
  plan.all_at_sync = all_sync;
  return plan;
}

}  // namespace zt
