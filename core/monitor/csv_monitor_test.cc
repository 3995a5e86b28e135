#include "core/monitor/csv_monitor.h"

#include <limits>
#include <string>
#include <vector>

#include "core/util/file_util.h"
#include "core/util/status_matchers.h"
#include "core/util/test_files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt::monitor {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using zt::testing::FreshTestDir;
using zt::testing::ListDirNames;
using zt::testing::Slurp;

TEST(CsvMonitor, WritesDeepSpeedsFilesExactly) {
  const std::string dir = FreshTestDir() + "/out/job";  // Create makes the directories
  ASSERT_OK_AND_ASSIGN(CsvMonitor csv, CsvMonitor::Create(dir));
  for (int64_t step : {64, 128, 192}) {
    ASSERT_OK(csv.WriteEvents({{"Train/Samples/train_loss", 3.0 - step / 128.0, step},
                               {"Train/Samples/lr", step == 64 ? 1e-5 : 0.0001, step},
                               {"loss scale", 65536.0, step}}));
  }
  EXPECT_THAT(ListDirNames(dir), ElementsAre("Train_Samples_lr.csv", "Train_Samples_train_loss.csv", "loss_scale.csv"));
  EXPECT_EQ(Slurp(dir + "/Train_Samples_train_loss.csv"),
            "step,train_loss\r\n"
            "64,2.5\r\n"
            "128,2.0\r\n"
            "192,1.5\r\n");
  EXPECT_EQ(Slurp(dir + "/Train_Samples_lr.csv"),
            "step,lr\r\n"
            "64,1e-05\r\n"
            "128,0.0001\r\n"
            "192,0.0001\r\n");
  EXPECT_EQ(Slurp(dir + "/loss_scale.csv"),
            "step,loss scale\r\n"
            "64,65536.0\r\n"
            "128,65536.0\r\n"
            "192,65536.0\r\n");
}

TEST(CsvMonitor, KeepsOrderWithinABatchAndAcrossBatches) {
  const std::string dir = FreshTestDir();
  ASSERT_OK_AND_ASSIGN(CsvMonitor csv, CsvMonitor::Create(dir));
  ASSERT_OK(csv.WriteEvents({{"a/x", 1.0, 1}, {"b", 0.5, 1}, {"a/x", 2.0, 2}}));
  EXPECT_EQ(Slurp(dir + "/a_x.csv"), "step,x\r\n1,1.0\r\n2,2.0\r\n");  // each batch reaches the file
  ASSERT_OK(csv.WriteEvents({{"a/x", 3.0, 3}}));
  EXPECT_EQ(Slurp(dir + "/a_x.csv"), "step,x\r\n1,1.0\r\n2,2.0\r\n3,3.0\r\n");
  EXPECT_EQ(Slurp(dir + "/b.csv"), "step,b\r\n1,0.5\r\n");
  ASSERT_OK(csv.WriteEvents({}));
}

TEST(CsvMonitor, TagsSharingAFileShareItsHeader) {
  // DeepSpeed keys the header on the file name: "a/b" and "a_b" both write a_b.csv.
  const std::string dir = FreshTestDir();
  ASSERT_OK_AND_ASSIGN(CsvMonitor csv, CsvMonitor::Create(dir));
  ASSERT_OK(csv.WriteEvents({{"a/b", 1.0, 1}, {"a_b", 2.0, 1}}));
  EXPECT_EQ(Slurp(dir + "/a_b.csv"), "step,b\r\n1,1.0\r\n1,2.0\r\n");
}

TEST(CsvMonitor, AResumedJobAppendsWithoutASecondHeader) {
  const std::string dir = FreshTestDir();
  {
    ASSERT_OK_AND_ASSIGN(CsvMonitor csv, CsvMonitor::Create(dir));
    ASSERT_OK(csv.WriteEvents({{"Train/loss", 2.5, 10}}));
  }
  ASSERT_OK_AND_ASSIGN(CsvMonitor resumed, CsvMonitor::Create(dir));
  ASSERT_OK(resumed.WriteEvents({{"Train/loss", 2.25, 20}}));
  EXPECT_EQ(Slurp(dir + "/Train_loss.csv"), "step,loss\r\n10,2.5\r\n20,2.25\r\n");
}

TEST(CsvMonitor, QuotesAHeaderTheWayCsvWriterDoes) {
  const std::string dir = FreshTestDir();
  ASSERT_OK_AND_ASSIGN(CsvMonitor csv, CsvMonitor::Create(dir));
  ASSERT_OK(csv.WriteEvents({{"eval/acc,top1", 0.75, 5}, {"eval/say \"hi\"", 1.0, 5}}));
  EXPECT_EQ(Slurp(dir + "/eval_acc,top1.csv"), "step,\"acc,top1\"\r\n5,0.75\r\n");
  EXPECT_EQ(Slurp(dir + "/eval_say_\"hi\".csv"), "step,\"say \"\"hi\"\"\"\r\n5,1.0\r\n");
}

TEST(CsvMonitor, AWriteFailureIsStickyAndNamesTheFile) {
  const std::string dir = FreshTestDir() + "/job";
  ASSERT_OK_AND_ASSIGN(CsvMonitor csv, CsvMonitor::Create(dir));
  ASSERT_OK(RemoveFlatDir(dir));
  const absl::Status failed = csv.WriteEvents({{"Train/loss", 1.0, 1}});
  EXPECT_THAT(failed, StatusIs(absl::StatusCode::kNotFound, HasSubstr(dir + "/Train_loss.csv: cannot open")));
  ASSERT_OK(MakeDirs(dir));
  EXPECT_EQ(csv.WriteEvents({{"Train/loss", 2.0, 2}}), failed);
  EXPECT_THAT(ListDirNames(dir), ElementsAre());
}

TEST(CsvMonitor, CreateRefusesAnEmptyDirectory) {
  EXPECT_THAT(CsvMonitor::Create(""), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
}

TEST(CsvFileName, ReplacesSlashesAndSpaces) {
  EXPECT_EQ(CsvFileName("Train/Samples/train_loss"), "Train_Samples_train_loss.csv");
  EXPECT_EQ(CsvFileName("loss scale"), "loss_scale.csv");
  EXPECT_EQ(CsvFileName("plain"), "plain.csv");
}

TEST(CsvHeaderName, TakesTheLastPathPart) {
  EXPECT_EQ(CsvHeaderName("Train/Samples/train_loss"), "train_loss");
  EXPECT_EQ(CsvHeaderName("plain"), "plain");
  EXPECT_EQ(CsvHeaderName("ends/"), "");
}

TEST(PythonFloatRepr, MatchesPythonsRepr) {
  // Each right-hand side is Python 3.11's repr() of the left.
  const struct {
    double value;
    const char* repr;
  } cases[] = {
      {0.0, "0.0"},
      {-0.0, "-0.0"},
      {1.0, "1.0"},
      {0.1, "0.1"},
      {2.5, "2.5"},
      {-2.5, "-2.5"},
      {0.3, "0.3"},
      {1.0 / 3, "0.3333333333333333"},
      {0.001, "0.001"},
      {0.0001, "0.0001"},
      {1e-05, "1e-05"},
      {1.5e-05, "1.5e-05"},
      {2.0 / 3 * 1e-7, "6.666666666666665e-08"},
      {123.456, "123.456"},
      {100.0, "100.0"},
      {123456789.125, "123456789.125"},
      {1e15, "1000000000000000.0"},
      {9007199254740992.0, "9007199254740992.0"},
      {1e16, "1e+16"},
      {1.2345e16, "1.2345e+16"},
      {1e21, "1e+21"},
      {1e22, "1e+22"},
      {1e100, "1e+100"},
      {5e-324, "5e-324"},
      {1.7976931348623157e308, "1.7976931348623157e+308"},
      {static_cast<double>(2.3456789f), "2.3456788063049316"},  // a float32 loss, as .item() gives it
      {std::numeric_limits<double>::infinity(), "inf"},
      {-std::numeric_limits<double>::infinity(), "-inf"},
      {std::numeric_limits<double>::quiet_NaN(), "nan"},
  };
  for (const auto& c : cases) EXPECT_EQ(PythonFloatRepr(c.value), c.repr) << c.repr;
}

}  // namespace
}  // namespace zt::monitor
