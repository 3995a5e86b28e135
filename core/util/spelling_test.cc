#include "core/util/spelling.h"

#include "gtest/gtest.h"

namespace zt {
namespace {

TEST(EditDistance, CountsEditsIgnoringCase) {
  EXPECT_EQ(EditDistance("stage", "stage"), 0);
  EXPECT_EQ(EditDistance("Stage", "stage"), 0);
  EXPECT_EQ(EditDistance("stgae", "stage"), 1);  // adjacent swap
  EXPECT_EQ(EditDistance("reduce_bucket_sise", "reduce_bucket_size"), 1);
  EXPECT_EQ(EditDistance("", "abc"), 3);
}

TEST(ClosestMatch, ShortNamesNeedCloserMatches) {
  EXPECT_EQ(ClosestMatch("lx", {"lr", "eps"}), "lr");
  EXPECT_EQ(ClosestMatch("foo", {"fp16", "bf16"}), "");
  EXPECT_EQ(ClosestMatch("offload_optimiser", {"offload_param", "offload_optimizer"}), "offload_optimizer");
}

}  // namespace
}  // namespace zt
