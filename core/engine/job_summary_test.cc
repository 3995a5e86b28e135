#include "core/engine/job_summary.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt {
namespace {

TEST(JobSummaryTest, EverySection) {
  JobSummary s;
  s.job = "t5_translate";
  s.trained = {{"model", "t5-small, 60.5M parameters"}, {"data", "wmt16 ro-en"}};
  TrainingTotals t;
  t.seconds = 192;
  t.steps = 400;
  t.samples = 12800;
  t.tokens = 1280000;
  t.flops = 192 * 2 * 4.56e12;
  t.peak_tflops = 989;
  t.world_size = 2;
  t.memory.gpu_peak = 12LL << 30;
  t.memory.host_rss = 3LL << 30;
  t.memory.pinned = 0;
  s.totals = t;
  s.wall_seconds = 250;
  s.metrics = {{"best eval_loss", "1.2340 (step 400)"}};
  s.outputs = {{"out/model.safetensors", "the trained model"}, {"out/runs", ""}};
  EXPECT_EQ(FormatJobSummary(s),
            "===== t5_translate: summary =====\n"
            "model           t5-small, 60.5M parameters\n"
            "data            wmt16 ro-en\n"
            "trained         400 steps, 12800 samples, 3m12s in training steps (2 ranks)\n"
            "throughput      66.7 samples/s, 6.7k tokens/s, 4.56 TFLOPS/rank, MFU 0.5% of 989\n"
            "memory          GPU peak 12.0 GiB (rank 0), host RSS 3.0 GiB\n"
            "job time        4m10s\n"
            "best eval_loss  1.2340 (step 400)\n"
            "output          out/model.safetensors  the trained model\n"
            "output          out/runs");
}

TEST(JobSummaryTest, NoTrainingNoCounts) {
  JobSummary s;
  s.job = "molecule_train";
  TrainingTotals t;
  t.seconds = 10;
  t.steps = 5;
  t.samples = 50;
  t.memory.host_rss = 1 << 20;
  s.totals = t;
  const std::string text = FormatJobSummary(s);
  EXPECT_THAT(text, ::testing::HasSubstr("throughput  5.00 samples/s\n"));
  EXPECT_THAT(text, ::testing::Not(::testing::HasSubstr("tokens")));
  EXPECT_THAT(text, ::testing::HasSubstr("(1 rank)"));
}

}  // namespace
}  // namespace zt
