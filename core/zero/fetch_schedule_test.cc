#include "core/zero/fetch_schedule.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

FetchSchedule::Options Opts(std::int64_t prefetch, std::int64_t max_live, std::int64_t reuse) {
  FetchSchedule::Options o;
  o.prefetch_elems = prefetch;
  o.max_live_elems = max_live;
  o.max_reuse_distance = reuse;
  return o;
}

// Runs one forward pass over `order` the way the coordinator does: gather what OnNeed says,
// use the unit, release what OnDone says.  Returns the gathers in order.
std::vector<std::vector<int>> Pass(FetchSchedule& s, const std::vector<int>& order) {
  std::vector<std::vector<int>> gathers;
  for (int v : s.BeginPass(FetchSchedule::kForward)) s.SetLive(v, false);
  for (int u : order) {
    s.SetInUse(u, true);
    std::vector<int> g = s.OnNeed(u);
    for (int v : s.TakeEvictions()) s.SetLive(v, false);
    for (int v : g) s.SetLive(v, true);
    gathers.push_back(g);
    s.SetInUse(u, false);
    for (int v : s.OnDone(u)) s.SetLive(v, false);
  }
  return gathers;
}

TEST(FetchSchedule, RecordsTheFirstPassAndFetchesOnlyWhatIsNeeded) {
  FetchSchedule s({10, 10, 10, 10}, Opts(100, 1000, 0));
  auto g = Pass(s, {0, 1, 2, 3});
  EXPECT_THAT(s.trace(FetchSchedule::kForward), ElementsAre(0, 1, 2, 3));
  EXPECT_THAT(g, ElementsAre(ElementsAre(0), ElementsAre(1), ElementsAre(2), ElementsAre(3)));
  EXPECT_EQ(s.live_elems(), 0);  // everything released (reuse distance 0)
}

TEST(FetchSchedule, PrefetchesAlongTheRecordedOrderUpToTheBucket) {
  FetchSchedule s({10, 10, 10, 10, 10}, Opts(/*prefetch=*/20, 1000, 0));
  Pass(s, {0, 1, 2, 3, 4});
  std::vector<int> g;
  s.BeginPass(FetchSchedule::kForward);
  s.SetInUse(0, true);
  g = s.OnNeed(0);
  EXPECT_THAT(g, ElementsAre(0, 1, 2));  // unit 0 now, then 20 elements ahead
  for (int v : g) s.SetLive(v, true);
  s.SetInUse(0, false);
  for (int v : s.OnDone(0)) s.SetLive(v, false);
  s.SetInUse(1, true);
  EXPECT_THAT(s.OnNeed(1), ElementsAre(3));  // 1 is live already; 2 is on the way; 3 is next
}

TEST(FetchSchedule, MaxLiveCapsPrefetch) {
  FetchSchedule s({10, 10, 10, 10}, Opts(/*prefetch=*/100, /*max_live=*/25, /*reuse=*/0));
  Pass(s, {0, 1, 2, 3});
  s.BeginPass(FetchSchedule::kForward);
  s.SetInUse(0, true);
  EXPECT_THAT(s.OnNeed(0), ElementsAre(0, 1));  // a third unit would pass 25
}

TEST(FetchSchedule, NeededUnitEvictsAnIdleKeptUnit) {
  // Order 0 1 2 0: unit 0 is kept for its reuse; unit 1 needs its room under the cap of 15.
  FetchSchedule s({10, 10, 10}, Opts(/*prefetch=*/0, /*max_live=*/15, /*reuse=*/1000));
  Pass(s, {0, 1, 2, 0});
  s.BeginPass(FetchSchedule::kForward);
  s.SetInUse(0, true);
  for (int v : s.OnNeed(0)) s.SetLive(v, true);
  s.SetInUse(0, false);
  EXPECT_THAT(s.OnDone(0), IsEmpty());  // used again within 20 elements: kept
  s.SetInUse(1, true);
  EXPECT_THAT(s.OnNeed(1), ElementsAre(1));
  EXPECT_THAT(s.TakeEvictions(), ElementsAre(0));  // 10 + 10 > 15
}

TEST(FetchSchedule, NeededUnitGoesOverTheCapWhenEverythingIsInUse) {
  FetchSchedule s({10, 10}, Opts(0, /*max_live=*/5, 0));
  s.BeginPass(FetchSchedule::kForward);
  s.SetInUse(0, true);
  EXPECT_THAT(s.OnNeed(0), ElementsAre(0));
  s.SetLive(0, true);
  s.SetInUse(1, true);
  EXPECT_THAT(s.OnNeed(1), ElementsAre(1));
  EXPECT_THAT(s.TakeEvictions(), IsEmpty());  // 0 is in use: nothing to evict
}

TEST(FetchSchedule, ReuseDistanceKeepsUnitsUsedAgainSoon) {
  // Order 0 1 0 2: after 0's first use, 0 comes back after 10 elements of unit 1.
  FetchSchedule keep({10, 10, 10}, Opts(0, 1000, /*reuse=*/10));
  Pass(keep, {0, 1, 0, 2});
  keep.BeginPass(FetchSchedule::kForward);
  keep.SetInUse(0, true);
  for (int v : keep.OnNeed(0)) keep.SetLive(v, true);
  keep.SetInUse(0, false);
  EXPECT_THAT(keep.OnDone(0), IsEmpty());
  FetchSchedule drop({10, 10, 10}, Opts(0, 1000, /*reuse=*/9));
  Pass(drop, {0, 1, 0, 2});
  drop.BeginPass(FetchSchedule::kForward);
  drop.SetInUse(0, true);
  for (int v : drop.OnNeed(0)) drop.SetLive(v, true);
  drop.SetInUse(0, false);
  EXPECT_THAT(drop.OnDone(0), ElementsAre(0));
}

TEST(FetchSchedule, DivergingFromTheTraceStillFetchesTheNeededUnit) {
  FetchSchedule s({10, 10, 10, 10}, Opts(100, 1000, 0));
  Pass(s, {0, 1, 2});
  s.BeginPass(FetchSchedule::kForward);
  s.SetInUse(3, true);
  EXPECT_THAT(s.OnNeed(3), ElementsAre(3));  // never seen: fetched alone
}

TEST(FetchSchedule, BackwardHasItsOwnTraceAndBeginPassReturnsLeftovers) {
  FetchSchedule s({10, 10, 10}, Opts(100, 1000, 1000));
  Pass(s, {0, 1, 2});
  for (int v : s.BeginPass(FetchSchedule::kBackward)) s.SetLive(v, false);
  EXPECT_TRUE(s.recording());
  s.SetInUse(2, true);
  for (int v : s.OnNeed(2)) s.SetLive(v, true);
  s.SetInUse(2, false);
  EXPECT_THAT(s.trace(FetchSchedule::kBackward), ElementsAre(2));
  std::vector<int> left = s.BeginPass(FetchSchedule::kForward);
  EXPECT_THAT(left, ElementsAre(2));  // live and idle when the pass ended
  EXPECT_FALSE(s.recording());
}

}  // namespace
}  // namespace zt
