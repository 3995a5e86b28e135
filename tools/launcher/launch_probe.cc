// launch_probe: a small training job for the launcher's tests.  It takes its ranks from the
// environment as every zerotrain job does (RankInfoFromEnv), trains the engine's test MLP on a
// fixed global batch of 12 split over the ranks, and reports:
//   stdout (rank 0)   "step N loss X" with the loss averaged over the ranks, then "params P"
//                     (the parameter count) and every parameter value, one per line, to --out
//   stderr (each)     "probe: rank R of W local L pid P CUDA_VISIBLE_DEVICES=..." when it starts
// --fail_rank/--fail_step/--fail_code make one rank exit with that code mid-training;
// --step_sleep_ms slows training down so that a test can kill a rank while it runs; --pid_dir
// gets one file per rank (rank_R.pid) holding its pid.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "core/comm/rank_env.h"
#include "core/config/config.h"
#include "core/engine/engine.h"
#include "core/engine/job_util.h"
#include "core/engine/test_models.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"

ABSL_FLAG(int, stage, 2, "ZeRO stage");
ABSL_FLAG(int, steps, 8, "optimizer steps");
ABSL_FLAG(int, step_sleep_ms, 0, "sleep after every step");
ABSL_FLAG(std::string, out, "", "rank 0 writes the final parameters here, one value per line");
ABSL_FLAG(std::string, pid_dir, "", "every rank writes rank_R.pid here");
ABSL_FLAG(int, fail_rank, -1, "this rank exits with --fail_code at --fail_step");
ABSL_FLAG(int, fail_step, 0, "");
ABSL_FLAG(int, fail_code, 3, "");
ABSL_FLAG(bool, gpu, false, "train on the GPU of LOCAL_RANK over NCCL (a CUDA build)");

namespace {

constexpr std::int64_t kGlobalBatch = 12;

absl::Status Run() {
  ASSIGN_OR_RETURN(zt::RankInfo me, zt::RankInfoFromEnv());
  const char* cvd = std::getenv("CUDA_VISIBLE_DEVICES");
  // One write, so that launchers that tag lines (mpirun --tag-output) see one line.
  const std::string hello = absl::StrCat("probe: rank ", me.rank, " of ", me.world_size, " local ", me.local_rank,
                                         " pid ", getpid(), " CUDA_VISIBLE_DEVICES=", cvd ? cvd : "(unset)", "\n");
  std::fwrite(hello.data(), 1, hello.size(), stderr);
  if (!absl::GetFlag(FLAGS_pid_dir).empty()) {
    std::ofstream(absl::StrCat(absl::GetFlag(FLAGS_pid_dir), "/rank_", me.rank, ".pid")) << getpid() << "\n";
  }
  if (kGlobalBatch % me.world_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat("the global batch of 12 does not split over ", me.world_size));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<zt::Communicator> owned, zt::CreateJobCommunicator(me, !absl::GetFlag(FLAGS_gpu)));
  std::shared_ptr<zt::Communicator> comm = std::move(owned);
  const std::int64_t micro = kGlobalBatch / me.world_size;
  const std::string json =
      absl::StrCat(R"({"train_batch_size": 12, "train_micro_batch_size_per_gpu": )", micro,
                   R"(, "optimizer": {"type": "AdamW", "params": {"lr": 0.01, "weight_decay": 0.01}},
          "zero_optimization": {"stage": )",
                   absl::GetFlag(FLAGS_stage), R"(, "stage3_param_persistence_threshold": 10}})");
  zt::AutoValues job;
  job.world_size = me.world_size;
  ASSIGN_OR_RETURN(zt::Config config, zt::Config::FromJson(json, "launch_probe", job));
  ASSIGN_OR_RETURN(auto engine, zt::Engine::Create(zt::testing::MakeMlp(1, 8, 16, 4), config, comm));
  const zt::Batch global = zt::testing::MlpBatch(7, kGlobalBatch, 8, 4);
  for (int step = 0; step < absl::GetFlag(FLAGS_steps); ++step) {
    if (me.rank == absl::GetFlag(FLAGS_fail_rank) && step == absl::GetFlag(FLAGS_fail_step)) {
      std::cerr << "probe: rank " << me.rank << " fails on purpose at step " << step << std::endl;
      std::exit(absl::GetFlag(FLAGS_fail_code));
    }
    ASSIGN_OR_RETURN(at::Tensor loss, engine->Forward(zt::testing::Slice(global, me.rank * micro, micro)));
    RETURN_IF_ERROR(engine->Backward(loss));
    RETURN_IF_ERROR(engine->Step());
    ASSIGN_OR_RETURN(double sum, zt::SumOverRanks(*comm, loss.item<double>(), engine->device()));
    if (me.rank == 0) std::printf("step %d loss %.9g\n", step, sum / me.world_size);
    std::fflush(stdout);
    if (absl::GetFlag(FLAGS_step_sleep_ms) > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(absl::GetFlag(FLAGS_step_sleep_ms)));
    }
  }
  std::string values;
  std::int64_t count = 0;
  RETURN_IF_ERROR(zt::WithWholeParameters(*engine, engine->module(), [&]() -> absl::Status {
    for (const at::Tensor& p : engine->module().parameters()) {
      const at::Tensor flat = p.detach().to(at::kCPU, at::kDouble).reshape({-1}).contiguous();
      for (std::int64_t i = 0; i < flat.numel(); ++i) {
        char buf[32];
        std::snprintf(buf, sizeof(buf), "%.9g\n", flat.data_ptr<double>()[i]);
        values += buf;
      }
      count += flat.numel();
    }
    return absl::OkStatus();
  }));
  if (me.rank == 0) {
    std::printf("params %lld\n", static_cast<long long>(count));
    if (!absl::GetFlag(FLAGS_out).empty()) RETURN_IF_ERROR(zt::WriteFileAtomically(absl::GetFlag(FLAGS_out), values));
  }
  RETURN_IF_ERROR(engine->Shutdown());
  return comm->Shutdown();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (absl::Status s = Run(); !s.ok()) {
    std::cerr << "probe: error: " << s.message() << std::endl;
    return 1;
  }
  return 0;
}
