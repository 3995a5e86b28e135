// The engine's step lines (Engine::SetProgress): every steps_per_print optimizer steps rank 0
// prints the loss over all ranks' micro-steps since the last line, samples/s, tokens/s, TFLOPS
// and MFU from the model's Model::Work, memory and ETA, and hands the same figures to the
// csv_monitor; Engine::Totals sums the whole run over the ranks.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/comm/local_group.h"
#include "core/engine/engine.h"
#include "core/engine/test_models.h"
#include "core/profiler/flops_profiler.h"
#include "core/util/status_macros.h"
#include "core/util/status_matchers.h"
#include "core/util/test_files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr std::int64_t kTokensPerSample = 5;
constexpr double kFlopsPerBatch = 1e6;

// The MLP, stating what each micro-batch is worth.
class CountingModel : public Model {
 public:
  CountingModel() : inner_(register_module("inner", MakeMlp(1, 8, 16, 4))) {}
  at::Tensor Forward(const Batch& batch) override { return inner_->Forward(batch); }
  BatchWork Work(const Batch& batch) const override {
    BatchWork w = Model::Work(batch);
    w.tokens = w.samples * kTokensPerSample;
    w.flops = kFlopsPerBatch;
    return w;
  }

 private:
  std::shared_ptr<Model> inner_;
};

// Rows (step, value) of one csv_monitor file.
std::vector<std::pair<std::int64_t, double>> CsvRows(const std::string& path) {
  std::vector<std::pair<std::int64_t, double>> rows;
  bool header = true;
  for (absl::string_view line : absl::StrSplit(Slurp(path), "\r\n", absl::SkipEmpty())) {
    if (header) {
      header = false;
      continue;
    }
    const std::vector<std::string> cells = absl::StrSplit(line, ',');
    std::int64_t step = 0;
    double value = 0;
    EXPECT_TRUE(absl::SimpleAtoi(cells.at(0), &step) && absl::SimpleAtod(cells.at(1), &value)) << line;
    rows.emplace_back(step, value);
  }
  return rows;
}

TEST(EngineReport, StepLinesThroughputAndTotals) {
  at::set_num_threads(1);
  const std::string dir = FreshTestDir();
  ASSERT_OK_AND_ASSIGN(
      Config config,
      Config::FromJson(absl::StrCat(R"({"train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 2,
          "steps_per_print": 2, "wall_clock_breakdown": true,
          "optimizer": {"type": "AdamW", "params": {"lr": 0.01}}, "zero_optimization": {"stage": 1},
          "csv_monitor": {"enabled": true, "output_path": ")",
                                    dir, R"(", "job_name": "run"}})"),
                       "report.json", {}));
  std::vector<std::vector<double>> losses(2);  // per rank, per micro-step
  TrainingTotals totals;
  monitor::StepStats last;
  const std::string captured = CaptureStderr([&] {
    ASSERT_OK(RunOnRanks(2, [&](Communicator& comm) -> absl::Status {
      std::shared_ptr<Communicator> borrowed(&comm, [](Communicator*) {});
      ASSIGN_OR_RETURN(auto engine, Engine::Create(std::make_shared<CountingModel>(), config, borrowed));
      ProgressOptions p;
      p.total_steps = 4;
      p.steps_per_epoch = 2;
      p.peak_tflops = 1e-3;
      p.bar = ProgressOptions::Bar::kOff;
      engine->SetProgress(p);
      for (int micro = 0; micro < 8; ++micro) {
        ASSIGN_OR_RETURN(at::Tensor loss, engine->Forward(MlpBatch(micro * 2 + comm.rank(), 2, 8, 4)));
        RETURN_IF_ERROR(engine->Backward(loss));
        RETURN_IF_ERROR(engine->Step());
        losses[comm.rank()].push_back(loss.item<double>());
      }
      ASSIGN_OR_RETURN(TrainingTotals t, engine->Totals());
      if (comm.rank() == 0) {
        totals = t;
        last = engine->last_report();
      }
      return engine->Shutdown();
    }));
  });

  // Two lines, at steps 2 and 4, each with the wall-clock breakdown after it.
  std::vector<std::string> lines;
  for (absl::string_view l : absl::StrSplit(captured, '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(l, "step ") || absl::StartsWith(l, "time per step")) lines.emplace_back(l);
  }
  ASSERT_EQ(lines.size(), 4u) << captured;
  EXPECT_THAT(lines[0], AllOf(HasSubstr("step 2/4 | epoch 1.00 | loss "), HasSubstr(" samples/s | "),
                              HasSubstr(" tokens/s | "), HasSubstr(" TFLOPS/rank | MFU "), HasSubstr("| RSS "),
                              HasSubstr("| ETA "), Not(HasSubstr("loss scale")), Not(HasSubstr("GPU mem"))));
  EXPECT_THAT(lines[1], AllOf(HasSubstr("time per step (ms, rank 0): forward "), HasSubstr("; communication ")));
  EXPECT_THAT(lines[2], AllOf(HasSubstr("step 4/4 | epoch 2.00 | loss "), HasSubstr("| ETA 0s")));
  // The line's loss: every rank's micro-steps of steps 3 and 4.
  double window = 0;
  for (int r = 0; r < 2; ++r) {
    for (int k = 4; k < 8; ++k) window += losses[r][k];
  }
  EXPECT_NEAR(last.loss, window / 8, 1e-6);
  EXPECT_EQ(last.step, 4);
  EXPECT_NEAR(last.tokens_per_sec, kTokensPerSample * last.samples_per_sec, 1e-9 * last.tokens_per_sec);
  // Window: 8 micro-batches of kFlopsPerBatch over 2 ranks, 16 samples.
  EXPECT_NEAR(last.tflops_per_gpu, 8 * kFlopsPerBatch / 2 / 1e12 / 16 * last.samples_per_sec,
              1e-9 * last.tflops_per_gpu);
  EXPECT_NEAR(last.mfu, last.tflops_per_gpu / 1e-3, 1e-9);
  EXPECT_GT(last.host_rss, 0);

  EXPECT_EQ(totals.steps, 4);
  EXPECT_EQ(totals.samples, 32);
  EXPECT_EQ(totals.tokens, 32 * kTokensPerSample);
  EXPECT_DOUBLE_EQ(totals.flops, 16 * kFlopsPerBatch);
  EXPECT_EQ(totals.world_size, 2);
  EXPECT_DOUBLE_EQ(totals.peak_tflops, 1e-3);
  EXPECT_GT(totals.seconds, 0);

  // The csv_monitor got the throughput at samples 16 and 32.
  const auto sps = CsvRows(dir + "/run/Train_Samples_samples_per_sec.csv");
  const auto tps = CsvRows(dir + "/run/Train_Samples_tokens_per_sec.csv");
  ASSERT_EQ(sps.size(), 2u);
  ASSERT_EQ(tps.size(), 2u);
  for (int k = 0; k < 2; ++k) {
    EXPECT_EQ(sps[k].first, 16 * (k + 1));
    EXPECT_DOUBLE_EQ(tps[k].second, kTokensPerSample * sps[k].second);
  }
  EXPECT_DOUBLE_EQ(sps[1].second, last.samples_per_sec);
  for (const char* name : {"tflops", "mfu", "grad_norm", "host_rss_gib", "elapsed_time_ms_forward",
                           "elapsed_time_ms_backward", "elapsed_time_ms_step", "elapsed_time_ms_communication"}) {
    EXPECT_EQ(CsvRows(absl::StrCat(dir, "/run/Train_Samples_", name, ".csv")).size(), 2u) << name;
  }
}

// Without steps_per_print and report_every, only the last step has a line; without a total,
// none; a model that counts no tokens shows no tokens/s or TFLOPS.
TEST(EngineReport, LinesOnlyWhenDue) {
  at::set_num_threads(1);
  ASSERT_OK_AND_ASSIGN(Config config, Config::FromJson(R"({"train_micro_batch_size_per_gpu": 2,
          "optimizer": {"type": "AdamW", "params": {"lr": 0.01}}})",
                                                       "plain.json", {}));
  for (const std::int64_t total : {0, 3}) {
    const std::string captured = CaptureStderr([&] {
      ASSERT_OK(RunOnRanks(1, [&](Communicator& comm) -> absl::Status {
        std::shared_ptr<Communicator> borrowed(&comm, [](Communicator*) {});
        ASSIGN_OR_RETURN(auto engine, Engine::Create(MakeMlp(1, 8, 16, 4), config, borrowed));
        ProgressOptions p;
        p.total_steps = total;
        p.bar = ProgressOptions::Bar::kOff;
        engine->SetProgress(p);
        for (int micro = 0; micro < 3; ++micro) {
          ASSIGN_OR_RETURN(at::Tensor loss, engine->Forward(MlpBatch(micro, 2, 8, 4)));
          RETURN_IF_ERROR(engine->Backward(loss));
          RETURN_IF_ERROR(engine->Step());
        }
        ASSIGN_OR_RETURN(TrainingTotals t, engine->Totals());
        EXPECT_EQ(t.samples, 6);
        EXPECT_EQ(t.tokens, -1);
        EXPECT_EQ(t.flops, -1);
        return engine->Shutdown();
      }));
    });
    if (total == 0) {
      EXPECT_THAT(captured, Not(HasSubstr("step "))) << captured;
    } else {
      EXPECT_THAT(captured, AllOf(HasSubstr("step 3/3 | loss "), HasSubstr(" samples/s | RSS "),
                                  Not(HasSubstr("tokens/s")), Not(HasSubstr("TFLOPS"))));
    }
  }
}

// comms_logger: the engine's collectives go through the timing decorator, training is unchanged,
// and Shutdown prints rank 0's table (deepspeed.comm.log_summary) with the profiled ops only.
TEST(EngineReport, CommsLoggerTimesTheEnginesCollectives) {
  at::set_num_threads(1);
  const auto run = [](const std::string& logger, std::string* captured) {
    std::vector<double> losses;
    absl::StatusOr<Config> config = Config::FromJson(absl::StrCat(R"({"train_micro_batch_size_per_gpu": 2,
          "optimizer": {"type": "AdamW", "params": {"lr": 0.01}}, "zero_optimization": {"stage": 2})",
                                                                  logger, "}"),
                                                     "comms.json", {});
    EXPECT_OK(config.status());
    *captured = CaptureStderr([&] {
      ASSERT_OK(RunOnRanks(2, [&](Communicator& comm) -> absl::Status {
        std::shared_ptr<Communicator> borrowed(&comm, [](Communicator*) {});
        ASSIGN_OR_RETURN(auto engine, Engine::Create(MakeMlp(1, 8, 16, 4), *config, borrowed));
        for (int micro = 0; micro < 3; ++micro) {
          ASSIGN_OR_RETURN(at::Tensor loss, engine->Forward(MlpBatch(micro * 2 + comm.rank(), 2, 8, 4)));
          RETURN_IF_ERROR(engine->Backward(loss));
          RETURN_IF_ERROR(engine->Step());
          if (comm.rank() == 0) losses.push_back(loss.item<double>());
        }
        return engine->Shutdown();
      }));
    });
    return losses;
  };
  std::string plain, all, gathers;
  const std::vector<double> reference = run("", &plain);
  EXPECT_EQ(run(R"(, "comms_logger": {"enabled": true})", &all), reference);
  EXPECT_EQ(run(R"(, "comms_logger": {"enabled": true, "prof_all": false, "prof_ops": ["all_gather"]})", &gathers),
            reference);
  EXPECT_THAT(plain, Not(HasSubstr("comms_logger")));
  // Stage 2: gradients reduced to their owners, updated shards all-gathered, the norm all-reduced.
  EXPECT_THAT(all, AllOf(HasSubstr("communication (rank 0, comms_logger):"), HasSubstr("all_reduce"),
                         HasSubstr("all_gather"), HasSubstr("barrier")));
  EXPECT_THAT(gathers, AllOf(HasSubstr("all_gather"), Not(HasSubstr("all_reduce")), Not(HasSubstr("barrier"))));
}

// flops_profiler: rank 0 profiles the first forward of step profile_step (two linear layers:
// 2 x 8 x 16 + 2 x 16 x 4 multiply-accumulates) and writes DeepSpeed's report to output_file
// after that optimizer step; training is unchanged.
TEST(EngineReport, FlopsProfilerReportsTheProfileStep) {
  at::set_num_threads(1);
  const std::string dir = FreshTestDir();
  ASSERT_OK_AND_ASSIGN(Config config, Config::FromJson(absl::StrCat(R"({"train_micro_batch_size_per_gpu": 2,
          "optimizer": {"type": "AdamW", "params": {"lr": 0.01}}, "zero_optimization": {"stage": 3},
          "flops_profiler": {"enabled": true, "profile_step": 2, "output_file": ")",
                                                                    dir, R"(/profile.txt"}})"),
                                                       "flops.json", {}));
  ASSERT_OK(RunOnRanks(2, [&](Communicator& comm) -> absl::Status {
    std::shared_ptr<Communicator> borrowed(&comm, [](Communicator*) {});
    ASSIGN_OR_RETURN(auto engine, Engine::Create(MakeMlp(1, 8, 16, 4), config, borrowed));
    for (int micro = 0; micro < 4; ++micro) {
      ASSIGN_OR_RETURN(at::Tensor loss, engine->Forward(MlpBatch(micro * 2 + comm.rank(), 2, 8, 4)));
      RETURN_IF_ERROR(engine->Backward(loss));
      RETURN_IF_ERROR(engine->Step());
      // Written after step 3 (2 completed when its forward ran), by rank 0 alone.
      if (comm.rank() == 0) {
        EXPECT_EQ(!Slurp(dir + "/profile.txt").empty(), micro >= 2) << micro;
      }
    }
    return engine->Shutdown();
  }));
  const std::string report = Slurp(dir + "/profile.txt");
  EXPECT_THAT(report, AllOf(HasSubstr("DeepSpeed Flops Profiler"), HasSubstr("Profile Summary at step 2:"),
                            HasSubstr("world size:"), HasSubstr("params per GPU:")));
  EXPECT_THAT(report, ::testing::ContainsRegex(
                          absl::StrCat("fwd MACs per GPU: +", profiler::MacsToString(2 * 8 * 16 + 2 * 16 * 4), "\n")));
  // Stage 3 holds shards, yet the profile counts every parameter: 8 x 16 + 16 + 16 x 4 + 4.
  EXPECT_THAT(report, ::testing::ContainsRegex("params per GPU: +212\n"));
}

// A profile rank 0 cannot write is a warning naming the file: training goes on (the other rank
// is not left waiting in the next collective).
TEST(EngineReport, AnUnwritableProfileIsAWarning) {
  at::set_num_threads(1);
  ASSERT_OK_AND_ASSIGN(Config config, Config::FromJson(R"({"train_micro_batch_size_per_gpu": 2,
          "optimizer": {"type": "AdamW", "params": {"lr": 0.01}},
          "flops_profiler": {"enabled": true, "profile_step": 1, "output_file": "/proc/no/profile.txt"}})",
                                                       "flops.json", {}));
  const std::string captured = CaptureStderr([&] {
    ASSERT_OK(RunOnRanks(2, [&](Communicator& comm) -> absl::Status {
      std::shared_ptr<Communicator> borrowed(&comm, [](Communicator*) {});
      ASSIGN_OR_RETURN(auto engine, Engine::Create(MakeMlp(1, 8, 16, 4), config, borrowed));
      for (int micro = 0; micro < 3; ++micro) {
        ASSIGN_OR_RETURN(at::Tensor loss, engine->Forward(MlpBatch(micro * 2 + comm.rank(), 2, 8, 4)));
        RETURN_IF_ERROR(engine->Backward(loss));
        RETURN_IF_ERROR(engine->Step());
      }
      EXPECT_EQ(engine->global_steps(), 3);
      return engine->Shutdown();
    }));
  });
  EXPECT_THAT(captured, HasSubstr("/proc/no/profile.txt"));
}

}  // namespace
}  // namespace zt::testing
