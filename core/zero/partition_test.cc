#include "core/zero/partition.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt {
namespace {

using ::testing::ElementsAre;

TEST(FlatLayout, PlacesParamsBackToBackAndPadsToWorld) {
  FlatLayout l = FlatLayout::Make({4, 6, 3}, 4);
  EXPECT_EQ(l.total(), 13);
  EXPECT_EQ(l.shard_size(), 4);  // ceil(13 / 4)
  EXPECT_EQ(l.padded(), 16);
  EXPECT_EQ(l.param(1).begin, 4);
  EXPECT_EQ(l.param(2).end, 13);
  EXPECT_EQ(l.shard(3).begin, 12);
  EXPECT_EQ(l.shard(3).end, 16);  // one real element, three of padding
  EXPECT_EQ(l.owner(11), 2);
}

TEST(FlatLayout, SplitsUnevenTail) {
  FlatLayout l = FlatLayout::Make({7}, 3);
  EXPECT_EQ(l.shard_size(), 3);
  EXPECT_EQ(l.padded(), 9);
  FlatLayout one = FlatLayout::Make({7}, 1);
  EXPECT_EQ(one.shard_size(), 7);
  EXPECT_EQ(one.padded(), 7);
}

TEST(FlatLayout, ParamsInFindsOverlaps) {
  FlatLayout l = FlatLayout::Make({4, 0, 6, 3}, 1);  // an empty parameter is never reported
  EXPECT_THAT(l.ParamsIn({0, 4}), ElementsAre(0));
  EXPECT_THAT(l.ParamsIn({3, 5}), ElementsAre(0, 2));
  EXPECT_THAT(l.ParamsIn({10, 13}), ElementsAre(3));
  EXPECT_THAT(l.ParamsIn({9, 11}), ElementsAre(2, 3));
}

TEST(PlanBuckets, KeepsWholeParamsTogetherFromTheEnd) {
  FlatLayout l = FlatLayout::Make({4, 6, 3}, 1);
  auto b = PlanBuckets(l, 10, false);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].range.begin, 4);  // params 1 and 2 (9 elements) fit in 10
  EXPECT_EQ(b[0].range.end, 13);
  EXPECT_THAT(b[0].params, ElementsAre(1, 2));
  EXPECT_EQ(b[1].range.begin, 0);
  EXPECT_EQ(b[1].range.end, 4);
}

TEST(PlanBuckets, SplitsAParamLargerThanABucket) {
  FlatLayout l = FlatLayout::Make({25}, 1);
  auto b = PlanBuckets(l, 10, false);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0].range.begin, 15);
  EXPECT_EQ(b[1].range.begin, 5);
  EXPECT_EQ(b[2].range.begin, 0);
  for (const auto& x : b) EXPECT_THAT(x.params, ElementsAre(0));
}

TEST(PlanBuckets, WithinShardsNeverCrossesAShardEdge) {
  FlatLayout l = FlatLayout::Make({5, 5, 5, 5, 3}, 3);  // 23 elements, shards of 8
  auto b = PlanBuckets(l, 100, true);
  std::int64_t covered = 0;
  for (const auto& x : b) {
    EXPECT_EQ(l.owner(x.range.begin), l.owner(x.range.end - 1)) << x.range.begin << ".." << x.range.end;
    EXPECT_EQ(x.owner, l.owner(x.range.begin));
    covered += x.range.size();
  }
  EXPECT_EQ(covered, 23);
  ASSERT_EQ(b.size(), 3u);  // one per shard: [16,23) [8,16) [0,8)
  EXPECT_EQ(b[0].range.begin, 16);
  EXPECT_EQ(b[0].owner, 2);
  EXPECT_EQ(b[2].owner, 0);
}

TEST(PlanBuckets, CoversEverythingContiguouslyInBackwardOrder) {
  FlatLayout l = FlatLayout::Make({100, 1, 37, 64, 2, 250}, 4);
  for (std::int64_t size : {1, 7, 64, 1000}) {
    for (bool within : {false, true}) {
      auto b = PlanBuckets(l, size, within);
      std::int64_t pos = l.total();
      for (const auto& x : b) {
        EXPECT_EQ(x.range.end, pos);
        EXPECT_LE(x.range.size(), size);
        EXPECT_FALSE(x.params.empty());
        pos = x.range.begin;
      }
      EXPECT_EQ(pos, 0);
    }
  }
}

TEST(PlanChunks, CutsAShard) {
  auto c = PlanChunks(10, 4);
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[2].begin, 8);
  EXPECT_EQ(c[2].end, 10);
  EXPECT_TRUE(PlanChunks(0, 4).empty());
}

}  // namespace
}  // namespace zt
