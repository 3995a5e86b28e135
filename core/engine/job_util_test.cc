#include "core/engine/job_util.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/ckpt/safetensors.h"
#include "core/comm/local_group.h"
#include "core/util/status_macros.h"
#include "core/util/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt {
namespace {

using ::testing::HasSubstr;

TEST(JobUtilTest, RankShareDealsEveryItemOnceAcrossRanks) {
  std::vector<std::int64_t> items;
  for (int i = 0; i < 10; ++i) items.push_back(100 + i);
  for (int world : {1, 3, 4}) {
    std::multiset<std::int64_t> dealt;
    std::size_t size = 0;
    for (int r = 0; r < world; ++r) {
      const std::vector<std::int64_t> mine = RankShare(items, 7, r, world);
      if (r > 0) EXPECT_EQ(mine.size(), size) << "ranks get equal shares";
      size = mine.size();
      dealt.insert(mine.begin(), mine.end());
    }
    EXPECT_EQ(size, (items.size() + world - 1) / world);
    for (std::int64_t i : items) EXPECT_GE(dealt.count(i), 1u) << i << " dealt to no rank, world " << world;
    EXPECT_EQ(dealt.size(), size * world) << "padding repeats items from the start";
  }
  EXPECT_EQ(RankShare(items, 7, 0, 1), RankShare(items, 7, 0, 1)) << "the seed fixes the order";
  EXPECT_NE(RankShare(items, 7, 0, 1), RankShare(items, 8, 0, 1));
  EXPECT_TRUE(RankShare({}, 1, 0, 2).empty());
}

TEST(JobUtilTest, DeepSpeedJsonAndDefaults) {
  const std::string dir = std::getenv("TEST_TMPDIR");
  std::string source;
  absl::StatusOr<nlohmann::json> j = ReadDeepSpeedJson("", {{"zero_optimization", {{"stage", 0}}}}, &source);
  ASSERT_THAT(j.status(), IsOk());
  EXPECT_EQ(source, "built-in config");
  AddJobDefaults(*j, {{"type", "AdamW"}}, nullptr, /*bf16=*/true, /*fp16=*/false);
  EXPECT_EQ((*j)["optimizer"]["type"], "AdamW");
  EXPECT_FALSE(j->contains("scheduler"));
  EXPECT_EQ((*j)["bf16"]["enabled"], true);
  EXPECT_FALSE(j->contains("fp16"));
  nlohmann::json mine = {{"optimizer", {{"type", "Adam"}}}, {"bf16", {{"enabled", false}}}};
  AddJobDefaults(mine, {{"type", "AdamW"}}, {{"type", "WarmupLR"}}, true, false);
  EXPECT_EQ(mine["optimizer"]["type"], "Adam") << "the user's config wins";
  EXPECT_EQ(mine["bf16"]["enabled"], false);
  EXPECT_EQ(mine["scheduler"]["type"], "WarmupLR");

  EXPECT_THAT(ReadDeepSpeedJson(dir + "/none.json", {}, &source).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("none.json")));
  std::FILE* f = std::fopen((dir + "/list.json").c_str(), "w");
  std::fputs("[1, 2]", f);
  std::fclose(f);
  EXPECT_THAT(ReadDeepSpeedJson(dir + "/list.json", {}, &source).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("list.json: not a JSON object")));
}

TEST(JobUtilTest, WriteParametersByName) {
  torch::nn::Module m;
  m.register_parameter("w", at::arange(6, at::kFloat).view({2, 3}));
  auto child = m.register_module("child", std::make_shared<torch::nn::Module>());
  child->register_parameter("b", at::ones({4}, at::kBFloat16));
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/params.safetensors";
  ASSERT_THAT(WriteParameters(m, path), IsOk());
  absl::StatusOr<ckpt::Safetensors> st = ckpt::ReadSafetensors(path);
  ASSERT_THAT(st.status(), IsOk());
  ASSERT_NE(st->Find("w"), nullptr);
  ASSERT_NE(st->Find("child.b"), nullptr);
  EXPECT_TRUE(at::equal(*st->Find("w"), at::arange(6, at::kFloat).view({2, 3})));
  EXPECT_EQ(st->Find("child.b")->scalar_type(), at::kBFloat16);
  EXPECT_THAT(WriteParameters(m, "/nonexistent-dir/p.safetensors"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent-dir/p.safetensors")));
}

TEST(JobUtilTest, GatherAndSumAcrossRanks) {
  const absl::Status s = RunOnRanks(3, [](Communicator& comm) -> absl::Status {
    const at::Tensor local = at::full({2, 2}, static_cast<double>(comm.rank()), at::kDouble);
    ASSIGN_OR_RETURN(at::Tensor all, GatherFromRanks(comm, local));
    if (all.sizes() != at::IntArrayRef({3, 2, 2})) return absl::InternalError("gathered shape");
    for (int r = 0; r < 3; ++r) {
      if (!at::equal(all[r], at::full({2, 2}, static_cast<double>(r), at::kDouble)))
        return absl::InternalError("rank order");
    }
    ASSIGN_OR_RETURN(double sum, SumOverRanks(comm, comm.rank() + 1.0, at::kCPU));
    if (sum != 6.0) return absl::InternalError(absl::StrCat("sum ", sum));
    return absl::OkStatus();
  });
  EXPECT_THAT(s, IsOk());
}

}  // namespace
}  // namespace zt
