#include "core/monitor/monitor.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "core/util/file_util.h"
#include "core/util/status_matchers.h"
#include "core/util/test_files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt::monitor {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;
using ::testing::StartsWith;
using zt::testing::FreshTestDir;
using zt::testing::ListDirNames;
using zt::testing::Slurp;

TEST(Monitor, WritesEveryEventToBothWriters) {
  const std::string root = FreshTestDir();
  MonitorOptions options;
  options.tensorboard = {true, root + "/tb", "job"};
  options.csv_monitor = {true, root + "/csv", "job"};
  ASSERT_OK_AND_ASSIGN(Monitor monitor, Monitor::Create(options));
  EXPECT_TRUE(monitor.enabled());
  ASSERT_NE(monitor.tensorboard(), nullptr);
  ASSERT_NE(monitor.csv_monitor(), nullptr);
  EXPECT_THAT(monitor.tensorboard()->path(), StartsWith(root + "/tb/job/events.out.tfevents."));
  EXPECT_EQ(monitor.csv_monitor()->log_dir(), root + "/csv/job");

  ASSERT_OK(monitor.WriteEvents({{"Train/Samples/train_loss", 2.5, 32}, {"Train/Samples/lr", 0.5, 32}}));
  // Flushed per batch: both files hold the step before Close.
  ASSERT_OK_AND_ASSIGN(std::vector<tb::Event> events, ReadEventFile(monitor.tensorboard()->path()));
  EXPECT_THAT(events, SizeIs(3));
  ASSERT_OK(monitor.WriteEvents({{"Train/Samples/train_loss", 2.25, 64}}));
  ASSERT_OK(monitor.Close());

  ASSERT_OK_AND_ASSIGN(events, ReadEventFile(monitor.tensorboard()->path()));
  ASSERT_THAT(events, SizeIs(4));
  EXPECT_EQ(events[0].file_version(), "brain.Event:2");
  const struct {
    const char* tag;
    float value;
    int64_t step;
  } want[] = {
      {"Train/Samples/train_loss", 2.5f, 32}, {"Train/Samples/lr", 0.5f, 32}, {"Train/Samples/train_loss", 2.25f, 64}};
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    ASSERT_THAT(events[i + 1].summary().value(), SizeIs(1));
    EXPECT_EQ(events[i + 1].summary().value(0).tag(), want[i].tag);
    EXPECT_EQ(events[i + 1].summary().value(0).simple_value(), want[i].value);
    EXPECT_EQ(events[i + 1].step(), want[i].step);
  }
  EXPECT_THAT(ListDirNames(root + "/tb/job"), SizeIs(1));

  EXPECT_THAT(ListDirNames(root + "/csv/job"), ElementsAre("Train_Samples_lr.csv", "Train_Samples_train_loss.csv"));
  EXPECT_EQ(Slurp(root + "/csv/job/Train_Samples_train_loss.csv"), "step,train_loss\r\n32,2.5\r\n64,2.25\r\n");
  EXPECT_EQ(Slurp(root + "/csv/job/Train_Samples_lr.csv"), "step,lr\r\n32,0.5\r\n");
}

TEST(Monitor, WritesOnlyTheEnabledWriter) {
  const std::string root = FreshTestDir();
  MonitorOptions options;
  options.tensorboard = {false, root + "/tb", "job"};
  options.csv_monitor = {true, root + "/csv", "job"};
  ASSERT_OK_AND_ASSIGN(Monitor monitor, Monitor::Create(options));
  EXPECT_EQ(monitor.tensorboard(), nullptr);
  ASSERT_OK(monitor.WriteEvents({{"loss", 1.5, 1}}));
  ASSERT_OK(monitor.Close());
  EXPECT_THAT(ListDirNames(root), ElementsAre("csv"));
  EXPECT_EQ(Slurp(root + "/csv/job/loss.csv"), "step,loss\r\n1,1.5\r\n");
}

TEST(Monitor, DisabledMonitorTouchesNothing) {
  const std::string root = FreshTestDir();
  MonitorOptions options;
  options.tensorboard.output_path = root + "/tb";
  options.csv_monitor.output_path = root + "/csv";
  ASSERT_OK_AND_ASSIGN(Monitor monitor, Monitor::Create(options));
  EXPECT_FALSE(monitor.enabled());
  ASSERT_OK(monitor.WriteEvents({{"loss", 1.5, 1}}));
  ASSERT_OK(monitor.Close());
  EXPECT_THAT(ListDirNames(root), ElementsAre());
}

TEST(Monitor, OneWritersFailureDoesNotStopTheOther) {
  const std::string root = FreshTestDir();
  MonitorOptions options;
  options.tensorboard = {true, root + "/tb", "job"};
  options.csv_monitor = {true, root + "/csv", "job"};
  ASSERT_OK_AND_ASSIGN(Monitor monitor, Monitor::Create(options));
  ASSERT_OK(RemoveFlatDir(root + "/csv/job"));
  EXPECT_THAT(monitor.WriteEvents({{"loss", 1.5, 1}}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(root + "/csv/job/loss.csv")));
  ASSERT_OK(monitor.Close());
  ASSERT_OK_AND_ASSIGN(std::vector<tb::Event> events, ReadEventFile(monitor.tensorboard()->path()));
  EXPECT_THAT(events, SizeIs(2));
}

TEST(Monitor, CreateNamesTheWriterThatFailed) {
  MonitorOptions options;
  options.csv_monitor = {true, "", ""};
  EXPECT_THAT(Monitor::Create(options), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("csv_monitor: ")));
}

TEST(MonitorLogDir, JoinsLikeOsPathJoin) {
  EXPECT_EQ(MonitorLogDir({true, "runs", "bert"}), "runs/bert");
  EXPECT_EQ(MonitorLogDir({true, "runs/", "bert"}), "runs/bert");
  EXPECT_EQ(MonitorLogDir({true, "", "DeepSpeedJobName"}), "DeepSpeedJobName");
  EXPECT_EQ(MonitorLogDir({true, "runs", "/abs/job"}), "/abs/job");
  EXPECT_EQ(MonitorLogDir({true, "runs", ""}), "runs/");
  EXPECT_EQ(MonitorLogDir({true, "", ""}), "");
}

}  // namespace
}  // namespace zt::monitor
