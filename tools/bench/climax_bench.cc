// ClimaX-style training step throughput on the engine: samples/s and peak GPU memory on
// synthetic fields of a chosen grid (the sizes no public data here has).
//
//   bazel run -c opt --config=cuda //tools/bench:climax_bench -- --height 128 --width 256 --stage 3
//
// Peer: tools/bench/peers/climax_torch.py, the same architecture in PyTorch (AdamW fused, bf16
// autocast), same sizes.  Median step time over --steps after --warmup, loss read back each step.
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "core/comm/communicator.h"
#include "core/config/config.h"
#include "core/engine/engine.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"
#include "science/climate/climax.h"
#include "tools/machine.h"
#ifdef ZT_CUDA
#include "tools/bench/cuda_memory.h"
#endif

ABSL_FLAG(int32_t, variables, 5, "input/output variables");
ABSL_FLAG(int32_t, height, 32, "latitudes");
ABSL_FLAG(int32_t, width, 64, "longitudes");
ABSL_FLAG(int32_t, patch, 2, "patch size");
ABSL_FLAG(int32_t, embed, 1024, "embedding size");
ABSL_FLAG(int32_t, depth, 8, "blocks");
ABSL_FLAG(int32_t, heads, 16, "attention heads");
ABSL_FLAG(int64_t, batch, 16, "micro-batch");
ABSL_FLAG(int32_t, steps, 10, "timed steps");
ABSL_FLAG(int32_t, warmup, 3, "untimed steps first");
ABSL_FLAG(int32_t, stage, 2, "ZeRO stage");
ABSL_FLAG(bool, bf16, true, "bf16 (fp32 master weights in the optimizer)");
ABSL_FLAG(std::string, device, "cuda", "cuda (NCCL, one GPU) or cpu (Gloo)");

namespace {

absl::Status Run() {
  zt::science::climate::ClimaxConfig c;
  c.variables = absl::GetFlag(FLAGS_variables);
  c.height = absl::GetFlag(FLAGS_height);
  c.width = absl::GetFlag(FLAGS_width);
  c.patch = absl::GetFlag(FLAGS_patch);
  c.embed = absl::GetFlag(FLAGS_embed);
  c.depth = absl::GetFlag(FLAGS_depth);
  c.heads = absl::GetFlag(FLAGS_heads);
  ASSIGN_OR_RETURN(c, zt::science::climate::ClimaxConfig::FromJson(c.ToJson(), "climax_bench flags"));
  const std::int64_t b = absl::GetFlag(FLAGS_batch);
  const bool cuda = absl::GetFlag(FLAGS_device) == "cuda";
  zt::CommOptions co;
  co.backend = cuda ? zt::CommBackend::kNccl : zt::CommBackend::kGloo;
  ASSIGN_OR_RETURN(std::unique_ptr<zt::Communicator> comm, zt::Communicator::Create(co));
  std::shared_ptr<zt::Communicator> shared(std::move(comm));
  nlohmann::json j = {{"zero_optimization", {{"stage", absl::GetFlag(FLAGS_stage)}}},
                      {"train_micro_batch_size_per_gpu", b},
                      {"gradient_accumulation_steps", 1},
                      {"optimizer", {{"type", "AdamW"}, {"params", {{"lr", 1e-4}}}}},
                      {"bf16", {{"enabled", absl::GetFlag(FLAGS_bf16)}}}};
  zt::AutoValues job;
  job.max_grad_norm = 1.0;
  job.hidden_size = c.embed;
  ASSIGN_OR_RETURN(zt::Config config, zt::Config::FromJson(j.dump(), "climax_bench", job));
  auto model = std::make_shared<zt::science::climate::Climax>(c, 1);
  std::int64_t params = 0;
  for (const auto& p : model->parameters()) params += p.numel();
  ASSIGN_OR_RETURN(auto engine, zt::Engine::Create(model, config, shared));
  at::Tensor lat = at::linspace(-87.0, 87.0, c.height);
  const zt::Batch batch = {{"input", at::randn({b, c.variables, c.height, c.width})},
                           {"target", at::randn({b, c.variables, c.height, c.width})},
                           {"target_mask", at::ones({b, c.variables, c.height, c.width}, at::kBool)},
                           {"lead_hours", at::full({b}, 6.0)},
                           {"lat_weights", at::cos(lat * M_PI / 180) / at::cos(lat * M_PI / 180).mean()}};
  std::vector<double> times;
  const int warmup = absl::GetFlag(FLAGS_warmup), steps = absl::GetFlag(FLAGS_steps);
  for (int step = 0; step < warmup + steps; ++step) {
#ifdef ZT_CUDA
    if (cuda && step == warmup) zt::bench::ResetPeakCudaMemory(0);
#endif
    const auto t0 = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(at::Tensor loss, engine->Forward(batch));
    RETURN_IF_ERROR(engine->Backward(loss));
    RETURN_IF_ERROR(engine->Step());
    (void)loss.item<float>();
    if (step >= warmup) times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  const double med = times[times.size() / 2];
  double peak_gb = -1;
#ifdef ZT_CUDA
  if (cuda) peak_gb = zt::bench::PeakCudaMemory(0) / 1e9;
#endif
  std::printf(
      "climax_bench: %dx%d grid, %d variables, patch %d (%d tokens), embed %d, %d blocks (%.0fM params), "
      "batch %lld, ZeRO stage %d, %s, %s\n",
      c.height, c.width, c.variables, c.patch, (c.height / c.patch) * (c.width / c.patch), c.embed, c.depth,
      params / 1e6, static_cast<long long>(b), config.zero_optimization.stage,
      absl::GetFlag(FLAGS_bf16) ? "bf16" : "fp32", zt::tools::CpuModel().c_str());
  std::printf("step_s=%.4f samples_per_s=%.1f peak_gpu_gb=%.2f\n", med, b / med, peak_gb);
  RETURN_IF_ERROR(engine->Shutdown());
  return shared->Shutdown();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const absl::Status s = Run();
  if (!s.ok()) {
    std::fprintf(stderr, "climax_bench: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
