// The evaluation split across ranks: which rows each rank sends and how they come back in order.
#include "nlp/translate/data.h"

#include <ATen/ATen.h>

#include <tuple>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt::nlp {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// What `world` ranks would gather for n examples whose generated sequence is [i, i, ...] of
// length 1 + i % 3 (example i), batch j on rank j % world.
at::Tensor Gathered(std::int64_t n, std::int64_t bs, int world) {
  const std::int64_t rows = ShardRows(n, bs, world);
  at::Tensor all = at::full({world, rows, 4}, -1, at::kLong);
  std::vector<std::int64_t> used(world, 0);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t j = i / bs;
    const int rank = static_cast<int>(j % world);
    const std::int64_t row = used[rank]++;
    for (std::int64_t c = 0; c <= i % 3; ++c) all[rank][row][c] = i;
  }
  return all;
}

TEST(EvalSplitTest, ShardRowsIsTheMostBatchesAnyRankRuns) {
  EXPECT_EQ(ShardRows(11, 4, 2), 8);   // 3 batches: rank 0 runs 2
  EXPECT_EQ(ShardRows(40, 8, 2), 24);  // 5 batches: rank 0 runs 3
  EXPECT_EQ(ShardRows(5, 4, 3), 4);    // 2 batches: rank 2 runs none
  EXPECT_EQ(ShardRows(8, 8, 1), 8);
}

TEST(EvalSplitTest, UnshardRestoresTheExamplesOrder) {
  for (const auto& [n, bs, world] : std::vector<std::tuple<std::int64_t, std::int64_t, int>>{
           {11, 4, 2}, {40, 8, 2}, {5, 4, 3}, {7, 2, 4}, {9, 3, 1}}) {
    const std::vector<std::vector<int>> got = Unshard(Gathered(n, bs, world), n, bs);
    ASSERT_EQ(static_cast<std::int64_t>(got.size()), n);
    for (std::int64_t i = 0; i < n; ++i) {
      EXPECT_EQ(got[i], std::vector<int>(1 + i % 3, static_cast<int>(i)))
          << "example " << i << " of " << n << ", batch " << bs << ", " << world << " ranks";
    }
  }
}

TEST(EvalSplitTest, EmptySequencesStayEmpty) {
  at::Tensor all = at::full({2, 2, 3}, -1, at::kLong);
  all[1][0][0] = 5;  // example 1 (batch 1, rank 1)
  EXPECT_THAT(Unshard(all, 3, 1), ElementsAre(IsEmpty(), ElementsAre(5), IsEmpty()));
}

}  // namespace
}  // namespace zt::nlp
