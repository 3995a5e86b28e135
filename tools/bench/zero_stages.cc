// Step time and bytes communicated per step for ZeRO stages 0, 1 and 2 on the CPU (Gloo),
// several ranks in one process (threads, one LibTorch thread each).
//
//   bazel run -c opt //tools/bench:zero_stages -- --world=2 --layers=4 --dim=256
//
// Model: a stack of pre-LayerNorm transformer blocks (core/engine/test_models.h) with an MSE
// loss; fp32, AdamW, no clipping.  Reports per stage the median step time over --steps after
// --warmup steps (forward + backward + reduce + optimizer + gather, on rank 0, ranks started
// together by a barrier) and the payload bytes each rank sent per step (Communicator::stats:
// all-reduce = the buffer, reduce = the buffer, all-gather = the gathered output).  Its peer is
// DeepSpeed itself on the same model and settings: tools/bench/peers/zero_stages_deepspeed.py.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/comm/local_group.h"
#include "core/engine/engine.h"
#include "core/engine/test_models.h"
#include "core/util/status_macros.h"

ABSL_FLAG(int, world, 2, "ranks (threads)");
ABSL_FLAG(std::string, stages, "0,1,2", "ZeRO stages to run");
ABSL_FLAG(int, layers, 4, "transformer blocks");
ABSL_FLAG(int, dim, 256, "model width");
ABSL_FLAG(int, heads, 4, "attention heads");
ABSL_FLAG(int, seq, 64, "sequence length");
ABSL_FLAG(int, micro, 4, "micro batch per rank");
ABSL_FLAG(int, steps, 10, "timed steps");
ABSL_FLAG(int, warmup, 3, "untimed steps first");
ABSL_FLAG(int64_t, bucket, 500000000, "reduce_bucket_size and allgather_bucket_size (elements)");
ABSL_FLAG(bool, breakdown, false, "log the engine's forward/backward/step times (wall_clock_breakdown)");

namespace {

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown CPU";
}

struct Result {
  double median_ms = 0;
  double bytes_per_step = 0;
  std::int64_t params = 0;
};

absl::StatusOr<Result> RunStage(int stage) {
  const int world = absl::GetFlag(FLAGS_world), micro = absl::GetFlag(FLAGS_micro);
  const int steps = absl::GetFlag(FLAGS_steps), warmup = absl::GetFlag(FLAGS_warmup);
  const int dim = absl::GetFlag(FLAGS_dim), seq = absl::GetFlag(FLAGS_seq);
  Result result;
  RETURN_IF_ERROR(zt::RunOnRanks(world, [&](zt::Communicator& comm) -> absl::Status {
    zt::AutoValues job;
    job.world_size = world;
    const std::string json = absl::StrFormat(
        R"({"train_micro_batch_size_per_gpu": %d, "gradient_clipping": 0.0, "wall_clock_breakdown": %s,
            "steps_per_print": %d,
            "optimizer": {"type": "AdamW", "params": {"lr": 1e-4, "weight_decay": 0.01}},
            "zero_optimization": {"stage": %d, "reduce_bucket_size": %d, "allgather_bucket_size": %d,
                                  "overlap_comm": true}})",
        micro, absl::GetFlag(FLAGS_breakdown) ? "true" : "false", warmup + steps, stage, absl::GetFlag(FLAGS_bucket),
        absl::GetFlag(FLAGS_bucket));
    ASSIGN_OR_RETURN(zt::Config config, zt::Config::FromJson(json, "zero_stages", job));
    auto model =
        zt::testing::MakeTransformerStack(1, absl::GetFlag(FLAGS_layers), dim, absl::GetFlag(FLAGS_heads), 4 * dim);
    std::shared_ptr<zt::Communicator> borrowed(&comm, [](zt::Communicator*) {});
    ASSIGN_OR_RETURN(auto engine, zt::Engine::Create(model, config, borrowed));
    std::vector<double> times;
    std::int64_t bytes_before = 0;
    for (int step = 0; step < warmup + steps; ++step) {
      zt::Batch b = zt::testing::TransformerBatch(100 * step + comm.rank(), micro, seq, dim);
      RETURN_IF_ERROR(comm.Barrier());
      if (step == warmup) bytes_before = comm.stats().bytes;
      const auto t0 = std::chrono::steady_clock::now();
      ASSIGN_OR_RETURN(at::Tensor loss, engine->Forward(b));
      RETURN_IF_ERROR(engine->Backward(loss));
      RETURN_IF_ERROR(engine->Step());
      if (step >= warmup) {
        times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
    }
    if (comm.rank() == 0) {
      std::sort(times.begin(), times.end());
      result.median_ms = times[times.size() / 2];
      // The barriers of the timing loop are not the engine's traffic: they move no payload.
      result.bytes_per_step = static_cast<double>(comm.stats().bytes - bytes_before) / steps;
      result.params = engine->layout().total();
    }
    return absl::OkStatus();
  }));
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  at::set_num_threads(1);
  const int world = absl::GetFlag(FLAGS_world);
  std::printf("zero_stages: %s, %d ranks (threads, Gloo), %d layers x dim %d, seq %d, micro batch %d, fp32 AdamW\n",
              CpuModel().c_str(), world, absl::GetFlag(FLAGS_layers), absl::GetFlag(FLAGS_dim),
              absl::GetFlag(FLAGS_seq), absl::GetFlag(FLAGS_micro));
  std::string summary;
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_stages), ',')) {
    int stage = 0;
    if (!absl::SimpleAtoi(s, &stage)) {
      std::fprintf(stderr, "zero_stages: bad --stages entry '%s'\n", std::string(s).c_str());
      return 2;
    }
    auto r = RunStage(stage);
    if (!r.ok()) {
      std::fprintf(stderr, "zero_stages: stage %d: %s\n", stage, std::string(r.status().message()).c_str());
      return 1;
    }
    std::printf(
        "stage %d: %lld parameters, median step %.1f ms, %.2f MB sent per rank per step (%.2f x the fp32 "
        "parameter bytes)\n",
        stage, static_cast<long long>(r->params), r->median_ms, r->bytes_per_step / 1e6,
        r->bytes_per_step / (4.0 * r->params));
    absl::StrAppend(&summary, summary.empty() ? "" : " ", "stage", stage, "_ms=", absl::StrFormat("%.1f", r->median_ms),
                    " stage", stage, "_MB=", absl::StrFormat("%.2f", r->bytes_per_step / 1e6));
  }
  std::printf("%s\n", summary.c_str());
  return 0;
}
