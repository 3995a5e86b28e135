#include "core/engine/job_checkpoint.h"

#include <sys/stat.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/util/file_util.h"
#include "core/util/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string NewOutputDir(const std::string& name) {
  const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/", name);
  EXPECT_OK(MakeDirs(dir));
  return dir;
}

// A checkpoint-N as SaveJobCheckpoint leaves it (complete: with `latest`) or as a crash does.
void Fake(const std::string& out, int step, bool complete) {
  const std::string dir = JobCheckpointDir(out, step);
  ASSERT_OK(MakeDirs(dir + "/global_step" + std::to_string(step)));
  ASSERT_OK(WriteFileAtomically(dir + "/model.safetensors", "x"));
  if (complete) {
    ASSERT_OK(WriteFileAtomically(dir + "/latest", "global_step" + std::to_string(step)));
  }
}

TEST(JobCheckpoint, LatestIsTheNewestCompleteOne) {
  const std::string out = NewOutputDir("latest");
  Fake(out, 500, true);
  Fake(out, 1000, true);
  Fake(out, 1500, false);  // interrupted
  ASSERT_OK_AND_ASSIGN(std::string got, ResolveResumeFromCheckpoint("latest", out));
  EXPECT_EQ(got, out + "/checkpoint-1000");
  ASSERT_OK_AND_ASSIGN(got, ResolveResumeFromCheckpoint("True", out));
  EXPECT_EQ(got, out + "/checkpoint-1000");
  ASSERT_OK_AND_ASSIGN(got, ResolveResumeFromCheckpoint("", out));
  EXPECT_EQ(got, "");
  ASSERT_OK_AND_ASSIGN(got, ResolveResumeFromCheckpoint(out + "/checkpoint-500", out));
  EXPECT_EQ(got, out + "/checkpoint-500");
  EXPECT_THAT(ListJobCheckpoints(out), IsOk());
  EXPECT_THAT(*ListJobCheckpoints(out), ElementsAre(500, 1000));
}

TEST(JobCheckpoint, NothingToResumeIsAnError) {
  const std::string out = NewOutputDir("none");
  Fake(out, 7, false);
  EXPECT_THAT(ResolveResumeFromCheckpoint("latest", out),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no complete checkpoint-N")));
  EXPECT_THAT(ResolveResumeFromCheckpoint(out + "/checkpoint-9", out),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("checkpoint-9 does not exist")));
}

TEST(JobCheckpoint, RotationKeepsTheNewestAndDropsOlderDebris) {
  const std::string out = NewOutputDir("rotate");
  Fake(out, 1, true);
  Fake(out, 2, false);  // interrupted, older than the newest complete one
  Fake(out, 3, true);
  Fake(out, 4, true);
  Fake(out, 5, false);  // interrupted newest: may be a save in progress, left alone
  ASSERT_OK(RotateJobCheckpoints(out, 2));
  EXPECT_THAT(*ListJobCheckpoints(out), ElementsAre(3, 4));
  EXPECT_FALSE(PathExists(out + "/checkpoint-2"));
  EXPECT_TRUE(PathExists(out + "/checkpoint-5"));
  // A limit of 1 (or less than 1 kept) never removes the newest complete one.
  ASSERT_OK(RotateJobCheckpoints(out, 1));
  EXPECT_THAT(*ListJobCheckpoints(out), ElementsAre(4));
  ASSERT_OK(RotateJobCheckpoints(out, -1));  // no limit
  EXPECT_THAT(*ListJobCheckpoints(out), ElementsAre(4));
}

// A rank's own sums come back to it; at another world size the mean over the ranks is kept.
TEST(JobCheckpoint, RankValuesKeepTheMeanOverRanks) {
  const std::vector<double> saved = {3.0, 5.0};  // two ranks: mean 4
  EXPECT_EQ(RankValue(saved, 1, 2), 5.0);
  EXPECT_EQ(RankValue(saved, 0, 1), 4.0);  // one rank
  double sum = 0;
  for (int r = 0; r < 4; ++r) sum += RankValue(saved, r, 4);
  EXPECT_EQ(sum / 4, 4.0);
  EXPECT_EQ(RankValue({}, 0, 2), 0.0);
}

}  // namespace
}  // namespace zt
