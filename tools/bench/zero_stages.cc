// Step time, bytes communicated and gathered per step, and (on GPUs) peak memory, for ZeRO
// stages 0-3, several ranks in one process (threads, one LibTorch thread each).
//
//   bazel run -c opt //tools/bench:zero_stages -- --world=2 --layers=4 --dim=256         # CPU, Gloo
//   bazel run -c opt --config=cuda //tools/bench:zero_stages -- --backend=nccl --stages=2,3
//   bazel run -c opt --config=cuda //tools/bench:zero_stages -- --backend=nccl --world=1 --stages=2
//       --bf16 --layers=20 --dim=2048 --gas=16 --offload=none,optimizer --threads=16   # ZeRO-Offload
//
// Model: a stack of pre-LayerNorm transformer blocks (core/engine/test_models.h; each block is
// two stage-3 units) with an MSE loss; fp32, AdamW, no clipping; stage-3 settings as HF's
// "auto" sets them (prefetch 0.9 dim^2, persistence threshold 10 dim); --bf16 trains in bf16
// with fp32 master weights, --gas accumulates micro-steps, --offload runs each stage with the
// optimizer state in host memory (CPU Adam on --threads threads per rank), the parameter shards
// (stage 3), both, or the optimizer state on NVMe (nvme: swap files under --nvme_path, stage
// 3, --buffer_count sub-groups of --sub_group_size in host memory, pipelined), and the
// parameter shards too (nvme_both, max_in_cpu 0).  Reports per stage and offload the
// median optimizer-step time over --steps after --warmup steps (--gas x (forward + backward) + reduce + optimizer +
// gather, on rank 0, ranks started together by a barrier), the samples per second it makes, the payload bytes each rank
// sent per step and the part of it that was parameter all-gathers (Communicator::stats: all-reduce = the buffer, reduce
// and reduce-scatter = the input, all-gather = the gathered output), and with NCCL the peak CUDA memory of rank 0 over
// the timed steps.  Its CPU peer is DeepSpeed itself on the same model and settings:
// tools/bench/peers/zero_stages_deepspeed.py.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
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
#include "tools/machine.h"
#ifdef ZT_CUDA
#include "tools/bench/cuda_memory.h"
#endif

ABSL_FLAG(int, world, 2, "ranks (threads)");
ABSL_FLAG(std::string, stages, "0,1,2,3", "ZeRO stages to run");
ABSL_FLAG(int, layers, 4, "transformer blocks");
ABSL_FLAG(int, dim, 256, "model width");
ABSL_FLAG(int, heads, 4, "attention heads");
ABSL_FLAG(int, seq, 64, "sequence length");
ABSL_FLAG(int, micro, 4, "micro batch per rank");
ABSL_FLAG(int, steps, 10, "timed steps");
ABSL_FLAG(int, warmup, 3, "untimed steps first");
ABSL_FLAG(int64_t, bucket, 500000000, "reduce_bucket_size and allgather_bucket_size (elements)");
ABSL_FLAG(std::string, backend, "gloo", "gloo (CPU) or nccl (rank r on cuda:r)");
ABSL_FLAG(bool, bf16, false, "bf16 compute with fp32 master weights (else fp32)");
ABSL_FLAG(int, gas, 1, "gradient_accumulation_steps");
ABSL_FLAG(std::string, offload, "none",
          "offload variants to run: none, optimizer, param (stage 3), both (stage 3), nvme (optimizer state on "
          "NVMe, stage 3), nvme_both (optimizer state and parameter shards on NVMe, stage 3)");
ABSL_FLAG(std::string, nvme_path, "/tmp", "--offload=nvme: the swap directory");
ABSL_FLAG(int64_t, sub_group_size, 1000000000, "zero_optimization.sub_group_size");
ABSL_FLAG(int, buffer_count, 4, "--offload=nvme: offload_optimizer.buffer_count (sub-groups in host memory)");
ABSL_FLAG(int, threads, 1, "LibTorch intra-op threads per rank, which CPU Adam uses too");
ABSL_FLAG(bool, breakdown, false, "log the engine's forward/backward/step times (wall_clock_breakdown)");

namespace {

struct Result {
  double median_ms = 0;
  double bytes_per_step = 0;
  double gathered_per_step = 0;
  std::int64_t peak_cuda = -1;
  std::int64_t params = 0;
  double swap_read_per_step = 0, swap_written_per_step = 0;  // --offload=nvme
  bool io_uring = false;
};

// Members of zero_optimization for the offload variant (and --sub_group_size).
std::string OffloadJson(absl::string_view offload) {
  const std::string sub_group = absl::StrFormat(R"(, "sub_group_size": %d)", absl::GetFlag(FLAGS_sub_group_size));
  const std::string optimizer = R"(, "offload_optimizer": {"device": "cpu", "pin_memory": true})";
  const std::string param = R"(, "offload_param": {"device": "cpu", "pin_memory": true})";
  if (offload == "optimizer") return sub_group + optimizer;
  if (offload == "param") return sub_group + param;
  if (offload == "both") return sub_group + optimizer + param;
  if (offload == "nvme" || offload == "nvme_both") {
    std::string json = sub_group + absl::StrFormat(R"(, "offload_optimizer": {"device": "nvme", "nvme_path": "%s",
        "pin_memory": true, "buffer_count": %d, "pipeline_read": true, "pipeline_write": true, "fast_init": true})",
                                                   absl::GetFlag(FLAGS_nvme_path), absl::GetFlag(FLAGS_buffer_count));
    if (offload == "nvme_both") {
      absl::StrAppend(&json, absl::StrFormat(R"(, "offload_param": {"device": "nvme", "nvme_path": "%s",
          "pin_memory": true, "max_in_cpu": 0})",
                                             absl::GetFlag(FLAGS_nvme_path)));
    }
    return json;
  }
  return sub_group;
}

absl::StatusOr<Result> RunStage(int stage, absl::string_view offload) {
  const int world = absl::GetFlag(FLAGS_world), micro = absl::GetFlag(FLAGS_micro);
  const int steps = absl::GetFlag(FLAGS_steps), warmup = absl::GetFlag(FLAGS_warmup);
  const int dim = absl::GetFlag(FLAGS_dim), seq = absl::GetFlag(FLAGS_seq), gas = absl::GetFlag(FLAGS_gas);
  Result result;
  zt::LocalGroupOptions group;
  group.backend = absl::GetFlag(FLAGS_backend) == "nccl" ? zt::CommBackend::kNccl : zt::CommBackend::kGloo;
  RETURN_IF_ERROR(zt::RunOnRanks(
      world,
      [&](zt::Communicator& comm) -> absl::Status {
        zt::AutoValues job;
        job.world_size = world;
        const std::string json = absl::StrFormat(
            R"({"train_micro_batch_size_per_gpu": %d, "gradient_accumulation_steps": %d, "gradient_clipping": 0.0,
            "wall_clock_breakdown": %s, "steps_per_print": %d, "bf16": {"enabled": %s},
            "optimizer": {"type": "AdamW", "params": {"lr": 1e-4, "weight_decay": 0.01}},
            "zero_optimization": {"stage": %d, "reduce_bucket_size": %d, "allgather_bucket_size": %d,
                                  "overlap_comm": true, "stage3_prefetch_bucket_size": %d,
                                  "stage3_param_persistence_threshold": %d%s}})",
            micro, gas, absl::GetFlag(FLAGS_breakdown) ? "true" : "false", warmup + steps,
            absl::GetFlag(FLAGS_bf16) ? "true" : "false", stage, absl::GetFlag(FLAGS_bucket),
            absl::GetFlag(FLAGS_bucket), static_cast<std::int64_t>(0.9 * dim * dim), 10 * dim, OffloadJson(offload));
        ASSIGN_OR_RETURN(zt::Config config, zt::Config::FromJson(json, "zero_stages", job));
        auto model =
            zt::testing::MakeTransformerStack(1, absl::GetFlag(FLAGS_layers), dim, absl::GetFlag(FLAGS_heads), 4 * dim);
        std::shared_ptr<zt::Communicator> borrowed(&comm, [](zt::Communicator*) {});
        ASSIGN_OR_RETURN(auto engine, zt::Engine::Create(model, config, borrowed));
        std::vector<double> times;
        std::int64_t bytes_before = 0, gathered_before = 0;
        std::uint64_t swap_read_before = 0, swap_written_before = 0;
        const bool cuda = comm.backend() == zt::CommBackend::kNccl;
        for (int step = 0; step < warmup + steps; ++step) {
          std::vector<zt::Batch> batches;
          for (int k = 0; k < gas; ++k) {
            batches.push_back(zt::testing::TransformerBatch(100 * (gas * step + k) + comm.rank(), micro, seq, dim));
          }
          RETURN_IF_ERROR(engine->Barrier());
          if (step == warmup) {
            bytes_before = comm.stats().bytes;
            gathered_before = comm.stats().all_gather_bytes;
            if (engine->io_engine() != nullptr) {
              swap_read_before = engine->io_engine()->bytes_read();
              swap_written_before = engine->io_engine()->bytes_written();
            }
#ifdef ZT_CUDA
            if (cuda) zt::bench::ResetPeakCudaMemory(comm.local_rank());
#endif
          }
          const auto t0 = std::chrono::steady_clock::now();
          at::Tensor loss;
          for (const zt::Batch& b : batches) {
            ASSIGN_OR_RETURN(loss, engine->Forward(b));
            RETURN_IF_ERROR(engine->Backward(loss));
            RETURN_IF_ERROR(engine->Step());
          }
          if (cuda) (void)loss.item<float>();  // the step's GPU work is done
          if (step >= warmup) {
            times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
          }
        }
        if (comm.rank() == 0) {
          std::sort(times.begin(), times.end());
          result.median_ms = times[times.size() / 2];
          // The barriers of the timing loop are not the engine's traffic: they move no payload.
          result.bytes_per_step = static_cast<double>(comm.stats().bytes - bytes_before) / steps;
          result.gathered_per_step = static_cast<double>(comm.stats().all_gather_bytes - gathered_before) / steps;
          for (const auto& p : model->parameters()) result.params += p.numel();
          if (engine->io_engine() != nullptr) {
            result.swap_read_per_step =
                static_cast<double>(engine->io_engine()->bytes_read() - swap_read_before) / steps;
            result.swap_written_per_step =
                static_cast<double>(engine->io_engine()->bytes_written() - swap_written_before) / steps;
            result.io_uring = engine->io_engine()->uses_io_uring();
          }
#ifdef ZT_CUDA
          if (cuda) result.peak_cuda = zt::bench::PeakCudaMemory(comm.local_rank());
#endif
        }
        return engine->Shutdown();
      },
      group));
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  at::set_num_threads(absl::GetFlag(FLAGS_threads));
  const int world = absl::GetFlag(FLAGS_world);
  const std::string backend = absl::GetFlag(FLAGS_backend);
  if (backend != "gloo" && backend != "nccl") {
    std::fprintf(stderr, "zero_stages: --backend must be gloo or nccl, not '%s'\n", backend.c_str());
    return 2;
  }
  const int gas = absl::GetFlag(FLAGS_gas);
  std::printf(
      "zero_stages: %s, %d ranks (threads, %s), %d layers x dim %d, seq %d, micro batch %d x accumulation %d, %s "
      "AdamW, %d LibTorch threads per rank\n",
      zt::tools::CpuModel().c_str(), world, backend.c_str(), absl::GetFlag(FLAGS_layers), absl::GetFlag(FLAGS_dim),
      absl::GetFlag(FLAGS_seq), absl::GetFlag(FLAGS_micro), gas, absl::GetFlag(FLAGS_bf16) ? "bf16" : "fp32",
      absl::GetFlag(FLAGS_threads));
  std::vector<std::string> offloads = absl::StrSplit(absl::GetFlag(FLAGS_offload), ',');
  for (const std::string& o : offloads) {
    if (o != "none" && o != "optimizer" && o != "param" && o != "both" && o != "nvme" && o != "nvme_both") {
      std::fprintf(stderr, "zero_stages: bad --offload entry '%s' (none, optimizer, param, both, nvme, nvme_both)\n",
                   o.c_str());
      return 2;
    }
  }
  std::string summary;
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_stages), ',')) {
    int stage = 0;
    if (!absl::SimpleAtoi(s, &stage)) {
      std::fprintf(stderr, "zero_stages: bad --stages entry '%s'\n", std::string(s).c_str());
      return 2;
    }
    for (const std::string& offload : offloads) {
      if (stage != 3 && offload != "none" && offload != "optimizer") continue;  // stage 3 only
      if (stage == 0 && offload == "optimizer") continue;                       // stages 1-3 only
      auto r = RunStage(stage, offload);
      const std::string name =
          offload == "none" ? absl::StrCat("stage", stage) : absl::StrCat("stage", stage, "_offload_", offload);
      if (!r.ok()) {
        std::fprintf(stderr, "zero_stages: %s: %s\n", name.c_str(), std::string(r.status().message()).c_str());
        return 1;
      }
      const double samples_per_s = 1e3 * gas * absl::GetFlag(FLAGS_micro) * world / r->median_ms;
      std::string peak =
          r->peak_cuda >= 0 ? absl::StrFormat(", peak CUDA memory %.1f MB", r->peak_cuda / 1e6) : std::string();
      if (offload == "nvme" || offload == "nvme_both") {
        const double budget =
            12.0 * absl::GetFlag(FLAGS_buffer_count) * std::min<double>(absl::GetFlag(FLAGS_sub_group_size), r->params);
        absl::StrAppend(&peak, absl::StrFormat(", NVMe swap (%s) %.1f MB read + %.1f MB written per step = %.2f GB/s "
                                               "over the step; optimizer state %.1f MB, host buffers for it %.1f MB",
                                               r->io_uring ? "io_uring" : "pread/pwrite", r->swap_read_per_step / 1e6,
                                               r->swap_written_per_step / 1e6,
                                               (r->swap_read_per_step + r->swap_written_per_step) / r->median_ms / 1e6,
                                               12.0 * r->params / world / 1e6, budget / 1e6));
      }
      std::printf(
          "%s: %lld parameters, median step %.1f ms (%.1f samples/s), %.2f MB sent per rank per step (%.2f x the "
          "fp32 parameter bytes), of which %.2f MB parameter all-gathers%s\n",
          name.c_str(), static_cast<long long>(r->params), r->median_ms, samples_per_s, r->bytes_per_step / 1e6,
          r->bytes_per_step / (4.0 * r->params), r->gathered_per_step / 1e6, peak.c_str());
      std::fflush(stdout);
      absl::StrAppend(&summary, summary.empty() ? "" : " ", name, "_ms=", absl::StrFormat("%.1f", r->median_ms), " ",
                      name, "_MB=", absl::StrFormat("%.2f", r->bytes_per_step / 1e6), " ", name,
                      "_gathered_MB=", absl::StrFormat("%.2f", r->gathered_per_step / 1e6));
      if (r->peak_cuda >= 0)
        absl::StrAppend(&summary, " ", name, "_peak_MB=", absl::StrFormat("%.1f", r->peak_cuda / 1e6));
    }
  }
  std::printf("%s\n", summary.c_str());
  return 0;
}
