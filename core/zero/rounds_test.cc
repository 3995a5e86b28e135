#include "core/zero/rounds.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::int64_t> Messages(const std::vector<RoundRequest>& ranks) {
  std::vector<std::int64_t> all;
  for (const auto& r : ranks) {
    auto m = EncodeRound(r, nullptr, nullptr);
    all.insert(all.end(), m.begin(), m.end());
  }
  return all;
}

TEST(Rounds, UnionOfRequestsInAscendingOrder) {
  RoundRequest a, b;
  a.gather = {5, 2};
  b.gather = {2, 7};
  b.reduce = {3};
  auto plan = DecideRound(Messages({a, b}), 2);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(plan->gather, ElementsAre(2, 5, 7));
  EXPECT_THAT(plan->reduce, ElementsAre(3));
  EXPECT_FALSE(plan->all_at_sync);
}

TEST(Rounds, AllAtSyncOnlyWhenEveryRankWaitsWithNothingPending) {
  RoundRequest step;
  step.sync_point = 1;
  RoundRequest working;
  working.gather = {4};
  auto mixed = DecideRound(Messages({step, working}), 2);
  ASSERT_TRUE(mixed.ok());
  EXPECT_FALSE(mixed->all_at_sync);
  EXPECT_THAT(mixed->gather, ElementsAre(4));  // the waiting rank takes part
  auto both = DecideRound(Messages({step, step}), 2);
  ASSERT_TRUE(both.ok());
  EXPECT_TRUE(both->all_at_sync);
  EXPECT_THAT(both->sync_points, ElementsAre(1, 1));
}

TEST(Rounds, EncodeCarriesAtMostCapacityPerKind) {
  RoundRequest r;
  for (int i = 0; i < kRoundCapacity + 5; ++i) r.gather.push_back(i);
  int sent = 0;
  auto m = EncodeRound(r, &sent, nullptr);
  EXPECT_EQ(sent, kRoundCapacity);
  EXPECT_EQ(static_cast<int>(m.size()), kRoundMessageSize);
}

TEST(Rounds, MalformedMessageNamesTheRank) {
  RoundRequest a;
  std::vector<std::int64_t> all = Messages({a, a});
  all[kRoundMessageSize] = 12345;  // rank 1's magic
  auto plan = DecideRound(all, 2);
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(plan.status().message()), HasSubstr("rank 1"));
  EXPECT_EQ(DecideRound(std::vector<std::int64_t>(3, 0), 2).status().code(), absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace zt
