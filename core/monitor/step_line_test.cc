#include "core/monitor/step_line.h"

#include <string>

#include "core/util/logging.h"
#include "core/util/test_files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt::monitor {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::zt::testing::CaptureStderr;

StepStats Full() {
  StepStats s;
  s.step = 40;
  s.total_steps = 200;
  s.epoch = 0.4;
  s.loss = 2.31;
  s.lr = 5e-5;
  s.has_loss_scale = true;
  s.loss_scale = 65536;
  s.grad_norm = 1.25;
  s.skipped = 2;
  s.samples_per_sec = 812.5;
  s.tokens_per_sec = 45600;
  s.tflops_per_gpu = 123.4;
  s.mfu = 0.125;
  s.gpu_allocated = 12LL << 30;
  s.gpu_reserved = 14LL << 30;
  s.gpu_peak = 13LL << 30;
  s.host_rss = 3LL << 30;
  s.pinned = 1LL << 30;
  s.eta_seconds = 192;
  return s;
}

TEST(StepLineTest, EveryFieldInOrder) {
  EXPECT_EQ(FormatStepLine(Full()),
            "step 40/200 | epoch 0.40 | loss 2.3100 | lr 5e-05 | loss scale 65536 | grad norm 1.25 | skipped 2 | "
            "812.5 samples/s | 45.6k tokens/s | 123 TFLOPS/rank | MFU 12.5% | GPU mem 12.0/14.0 GiB (peak 13.0) | "
            "RSS 3.0 GiB | pinned 1.0 GiB | ETA 3m12s");
}

TEST(StepLineTest, UnknownFieldsAreLeftOut) {
  StepStats s;
  s.step = 7;
  s.loss = 1.5;
  s.lr = 0.001;
  const std::string line = FormatStepLine(s);
  EXPECT_EQ(line, "step 7 | loss 1.5000 | lr 0.001 | skipped 0");
  EXPECT_THAT(line, Not(HasSubstr("ETA")));
}

TEST(StepLineTest, ProgressBarFillsWithTheSteps) {
  StepStats s = Full();
  EXPECT_EQ(FormatProgressBar(s, 200),
            "[======>                       ] 40/200 20% | loss 2.3100 | 812.5 samples/s | ETA 3m12s");
  s.step = 200;
  EXPECT_THAT(FormatProgressBar(s, 200), HasSubstr("[==============================] 200/200 100%"));
  s.step = 0;
  EXPECT_THAT(FormatProgressBar(s, 200), HasSubstr("[>                             ] 0/200 0%"));
}

TEST(StepLineTest, ProgressBarIsCutToTheTerminal) { EXPECT_EQ(FormatProgressBar(Full(), 12), "[======>    "); }

TEST(StepLineTest, ProgressBarWithoutATotal) {
  StepStats s;
  s.step = 3;
  s.loss = 0.5;
  EXPECT_EQ(FormatProgressBar(s, 80), "step 3 | loss 0.5000");
}

TEST(StepLineTest, HumanUnits) {
  EXPECT_EQ(HumanBytes(512), "512 B");
  EXPECT_EQ(HumanBytes(3 * 1024), "3.0 KiB");
  EXPECT_EQ(HumanBytes((12LL << 30) + (3LL << 29)), "13.5 GiB");
  EXPECT_EQ(HumanDuration(45), "45s");
  EXPECT_EQ(HumanDuration(192), "3m12s");
  EXPECT_EQ(HumanDuration(2 * 3600 + 5 * 60), "2h05m");
  EXPECT_EQ(HumanDuration(3 * 86400 + 4 * 3600), "3d04h");
  EXPECT_EQ(HumanDuration(-1), "?");
  EXPECT_EQ(HumanCount(5.5), "5.50");
  EXPECT_EQ(HumanCount(812.5), "812.5");
  EXPECT_EQ(HumanCount(45600), "45.6k");
  EXPECT_EQ(HumanCount(1.234e6), "1.23M");
}

TEST(TerminalTest, LinesGoAboveTheBar) {
  EXPECT_EQ(CaptureStderr([] {
              PrintLine("before");
              DrawProgressBar("[=> ] 1/2");
              PrintLine("saved checkpoint-1");
              DrawProgressBar("[===] 2/2");
              EndProgressBar();
              EndProgressBar();
              PrintLine("after");
            }),
            "before\n"
            "\r[=> ] 1/2\x1b[K"
            "\r\x1b[Ksaved checkpoint-1\n[=> ] 1/2\x1b[K"
            "\r[===] 2/2\x1b[K"
            "\n"
            "after\n");
}

// Log lines print above a drawn bar too, and go back to plain stderr once it ended.
TEST(TerminalTest, LogLinesGoAboveTheBar) {
  SetMinLogSeverity(LogSeverity::kInfo);
  const std::string out = CaptureStderr([] {
    DrawProgressBar("[=> ] 1/2");
    ZT_LOG(WARNING) << "step 1 skipped";
    EndProgressBar();
    ZT_LOG(WARNING) << "after the bar";
  });
  EXPECT_THAT(out, ::testing::StartsWith("\r[=> ] 1/2\x1b[K\r\x1b[KW"));
  EXPECT_THAT(out, HasSubstr("step 1 skipped\n[=> ] 1/2\x1b[K\n"));
  EXPECT_THAT(out, ::testing::EndsWith("after the bar\n"));
}

}  // namespace
}  // namespace zt::monitor
