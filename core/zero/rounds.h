// The round protocol that keeps stage 3's collectives matched when ranks run different code
// (generation of different lengths, early exits): every collective stage 3 issues is decided
// in a round, and every rank takes part in every round.
//
// A round: each rank says what it wants now (units to gather, units whose gradients it has
// ready to reduce) or that it waits at a sync point (an engine call such as Step()); one small
// all-gather tells every rank what all ranks said; every rank then runs the same collectives in
// the same order: all-gathers of the union of requested units (ascending), then
// reduce-scatters of the union of ready units (ascending).  A rank that did not ask for a unit
// still takes part (and drops the result); a rank with no gradients for a unit adds zeros.
// A rank at a sync point keeps taking rounds until every rank is at a sync point; if they are
// at different ones (one rank in Step(), another in Shutdown()) every rank gets the same error.
//
// This header is the pure part (messages and the decision), tested on its own; stage3.h runs it.
#ifndef ZEROTRAIN_CORE_ZERO_ROUNDS_H_
#define ZEROTRAIN_CORE_ZERO_ROUNDS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace zt {

struct RoundRequest {
  // 0 when the rank wants work done now, else the sync point it waits at (SyncPoint values).
  std::int64_t sync_point = 0;
  std::vector<int> gather;  // units to gather (the needed one first)
  std::vector<int> reduce;  // units whose gradients are ready here
};

struct RoundPlan {
  std::vector<int> gather;                // what every rank gathers, ascending
  std::vector<int> reduce;                // what every rank reduces, ascending
  bool all_at_sync = false;               // every rank waits at a sync point (and asked for nothing)
  std::vector<std::int64_t> sync_points;  // per rank (0 = working)
};

// Units per message and kind; a rank with more puts the rest in its next round.
inline constexpr int kRoundCapacity = 16;
inline constexpr int kRoundMessageSize = 4 + 2 * kRoundCapacity;

// The fixed-size message of one rank.  Requests beyond kRoundCapacity are left for later: the
// caller keeps what Encode did not take (returned counts).
std::vector<std::int64_t> EncodeRound(const RoundRequest& r, int* gathers_sent, int* reduces_sent);

// Every rank's message, concatenated in rank order -> the plan.  Fails on malformed input
// (ranks out of step), naming the rank.
absl::StatusOr<RoundPlan> DecideRound(absl::Span<const std::int64_t> all, int world);

}  // namespace zt

#endif  // ZEROTRAIN_CORE_ZERO_ROUNDS_H_
