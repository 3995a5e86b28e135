// The "tensorboard" and "csv_monitor" blocks: after every optimizer step rank 0 writes
// DeepSpeed's events (Train/Samples/train_loss, lr, and loss_scale with fp16) against the
// samples trained so far, into output_path/job_name; the other ranks write nothing.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/comm/local_group.h"
#include "core/engine/engine.h"
#include "core/engine/test_models.h"
#include "core/monitor/tfevents.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "core/util/status_matchers.h"
#include "core/util/test_files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::StatusOr<Config> MonitorConfig(const std::string& dir, const std::string& precision) {
  return Config::FromJson(absl::StrCat(R"({"train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 2,
      "optimizer": {"type": "AdamW", "params": {"lr": 0.01}},
      "scheduler": {"type": "WarmupLR", "params": {"warmup_num_steps": 4, "warmup_type": "linear"}},
      "zero_optimization": {"stage": 2}, )",
                                       precision, R"(,
      "tensorboard": {"enabled": true, "output_path": ")",
                                       dir, R"(/tb", "job_name": "run"},
      "csv_monitor": {"enabled": true, "output_path": ")",
                                       dir, R"(/csv", "job_name": "run"}})"),
                          "monitor.json", {});
}

TEST(EngineMonitor, RankZeroWritesDeepSpeedsEventsAfterEveryStep) {
  at::set_num_threads(1);
  const std::string dir = FreshTestDir();
  ASSERT_OK_AND_ASSIGN(Config config, MonitorConfig(dir, R"("fp16": {"enabled": true})"));
  std::vector<double> losses, lrs, scales;  // rank 0's
  std::mutex mu;
  ASSERT_OK(RunOnRanks(2, [&](Communicator& comm) -> absl::Status {
    std::shared_ptr<Communicator> borrowed(&comm, [](Communicator*) {});
    ASSIGN_OR_RETURN(auto engine, Engine::Create(MakeMlp(1, 8, 16, 4), config, borrowed));
    for (int micro = 0; micro < 6; ++micro) {
      ASSIGN_OR_RETURN(at::Tensor loss, engine->Forward(MlpBatch(micro * 2 + comm.rank(), 2, 8, 4)));
      RETURN_IF_ERROR(engine->Backward(loss));
      RETURN_IF_ERROR(engine->Step());
      if (comm.rank() != 0) continue;
      std::lock_guard<std::mutex> lock(mu);
      losses.push_back(loss.item<double>());
      if (micro % 2 == 1) {
        lrs.push_back(engine->lr());
        scales.push_back(engine->loss_scale());
      }
    }
    return engine->Shutdown();
  }));

  // One event file: rank 1 made none.
  const std::vector<std::string> files = ListDirNames(dir + "/tb/run");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_TRUE(absl::StartsWith(files[0], "events.out.tfevents."));
  ASSERT_OK_AND_ASSIGN(std::vector<monitor::tb::Event> events, monitor::ReadEventFile(dir + "/tb/run/" + files[0]));
  ASSERT_EQ(events.size(), 1u + 3 * 3);  // the version record, then 3 steps x 3 events
  EXPECT_EQ(events[0].file_version(), "brain.Event:2");
  for (int k = 0; k < 3; ++k) {
    const std::int64_t samples = 8 * (k + 1);  // train_batch_size = 2 x 2 x 2
    const monitor::tb::Event& loss = events[1 + 3 * k];
    const monitor::tb::Event& lr = events[2 + 3 * k];
    const monitor::tb::Event& scale = events[3 + 3 * k];
    EXPECT_EQ(loss.step(), samples);
    EXPECT_EQ(loss.summary().value(0).tag(), "Train/Samples/train_loss");
    EXPECT_FLOAT_EQ(loss.summary().value(0).simple_value(), (losses[2 * k] + losses[2 * k + 1]) / 2);
    EXPECT_EQ(lr.summary().value(0).tag(), "Train/Samples/lr");
    EXPECT_FLOAT_EQ(lr.summary().value(0).simple_value(), lrs[k]);
    EXPECT_EQ(scale.summary().value(0).tag(), "Train/Samples/loss_scale");
    EXPECT_FLOAT_EQ(scale.summary().value(0).simple_value(), scales[k]);
  }
  // The same numbers in DeepSpeed's CSV files.
  EXPECT_THAT(ListDirNames(dir + "/csv/run"),
              ElementsAre("Train_Samples_loss_scale.csv", "Train_Samples_lr.csv", "Train_Samples_train_loss.csv"));
  const std::vector<std::string> rows = absl::StrSplit(Slurp(dir + "/csv/run/Train_Samples_train_loss.csv"), "\r\n");
  ASSERT_EQ(rows.size(), 5u);  // header, 3 rows, the last line's empty rest
  EXPECT_EQ(rows[0], "step,train_loss");
  for (int k = 0; k < 3; ++k) {
    const std::vector<std::string> cells = absl::StrSplit(rows[1 + k], ',');
    ASSERT_EQ(cells.size(), 2u);
    EXPECT_EQ(cells[0], std::to_string(8 * (k + 1)));
    EXPECT_DOUBLE_EQ(std::strtod(cells[1].c_str(), nullptr), (losses[2 * k] + losses[2 * k + 1]) / 2);
  }
}

// An output_path that cannot be a directory fails the engine's creation, naming the config and
// the path.
TEST(EngineMonitor, AnUnusableOutputPathIsAnError) {
  const std::string dir = FreshTestDir();
  ASSERT_OK(WriteFileAtomically(dir + "/tb", "not a directory"));
  ASSERT_OK_AND_ASSIGN(Config config, MonitorConfig(dir, R"("bf16": {"enabled": false})"));
  ASSERT_OK(RunOnRanks(1, [&](Communicator& comm) -> absl::Status {
    std::shared_ptr<Communicator> borrowed(&comm, [](Communicator*) {});
    const absl::Status s = Engine::Create(MakeMlp(1, 8, 16, 4), config, borrowed).status();
    EXPECT_FALSE(s.ok());
    EXPECT_THAT(std::string(s.message()), ::testing::AllOf(HasSubstr("monitor.json"), HasSubstr(dir + "/tb")));
    return absl::OkStatus();
  }));
}

}  // namespace
}  // namespace zt::testing
