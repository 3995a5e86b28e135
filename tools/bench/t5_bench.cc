// T5 training step throughput on the engine: tokens/s, model FLOPs utilisation and peak GPU
// memory for a published architecture (random init) on synthetic batches, the role of
// tools/bench/peers/t5_hf.py (HF's T5ForConditionalGeneration, torch AdamW, bf16 autocast).
//
//   bazel run -c opt --config=cuda //tools/bench:t5_bench -- --model t5-large --batch 16
//     --src_len 512 --tgt_len 128 --bf16 [--offload_optimizer] [--stage 2]
//   bazel run -c opt --config=cuda //tools/bench:t5_bench -- --deepspeed ds_config_zero2.json --bf16
//
// FLOPs per step: nlp/t5's T5TrainingFlops (the peer counts the same way); MFU against
// --peak_tflops.  Two timings: the median of --steps steps each closed by reading the loss (a
// wait for the GPU), then the mean step of --steps more with no wait between them (one at the
// window's end), as a loop that reads the loss only when it logs; the peer reports both alike.
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/comm/communicator.h"
#include "core/config/config.h"
#include "core/engine/engine.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"
#include "nlp/t5/t5_config.h"
#include "nlp/t5/t5_model.h"
#include "tools/machine.h"
#include "torch/csrc/autograd/profiler_kineto.h"
#ifdef ZT_CUDA
#include "tools/bench/cuda_memory.h"
#endif

ABSL_FLAG(std::string, model, "t5-large", "architecture name (t5-small ... t5-11b, google/t5-v1_1-*, ...)");
ABSL_FLAG(int64_t, batch, 16, "micro-batch");
ABSL_FLAG(int64_t, src_len, 512, "source tokens per sample");
ABSL_FLAG(int64_t, tgt_len, 128, "target tokens per sample");
ABSL_FLAG(int32_t, steps, 10, "timed steps");
ABSL_FLAG(int32_t, warmup, 3, "untimed steps first");
ABSL_FLAG(int32_t, window_steps, -1, "steps of the unsynchronised window (-1: --steps; 0: none)");
ABSL_FLAG(bool, print_params, false, "print the architecture's parameter count and exit");
ABSL_FLAG(bool, bf16, true, "bf16 (fp32 master weights in the optimizer)");
ABSL_FLAG(int32_t, stage, 2, "ZeRO stage (without --deepspeed)");
ABSL_FLAG(bool, offload_optimizer, false, "optimizer state in host memory (without --deepspeed)");
ABSL_FLAG(std::string, deepspeed, "", "a DeepSpeed config instead of --stage/--offload_optimizer");
ABSL_FLAG(double, peak_tflops, 989.0, "the card's dense bf16 peak (H100/H200 SXM: 989)");
ABSL_FLAG(std::string, device, "cuda", "cuda (NCCL, one GPU) or cpu (Gloo)");
ABSL_FLAG(std::string, trace, "",
          "write the timed steps' CPU ops and GPU kernels (Kineto) to this Chrome trace, one file per rank "
          "(PATH.rankN.json); tools/bench/trace_summary.py sums it.  The profiler slows the steps it records.");

namespace {

namespace prof = torch::autograd::profiler;

// Starts Kineto for the CPU and, on CUDA, the GPU activity of every thread.
void StartTrace(bool cuda) {
  const torch::profiler::impl::ProfilerConfig config(torch::profiler::impl::ProfilerState::KINETO);
  std::set<torch::profiler::impl::ActivityType> activities = {torch::profiler::impl::ActivityType::CPU};
  if (cuda) activities.insert(torch::profiler::impl::ActivityType::CUDA);
  prof::prepareProfiler(config, activities);
  prof::enableProfiler(config, activities);
}

#ifdef ZT_CUDA
// The kernel LibTorch's scaled_dot_product_attention picks for the encoder's self-attention in
// training (bf16 q, k, v and a bias that needs its gradient), as the model calls it.
std::string AttentionBackend(const zt::nlp::T5Config& c, std::int64_t b, std::int64_t s) {
  const auto opts = at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA);
  const at::Tensor q = at::empty({b, c.num_heads, s, c.d_kv}, opts).requires_grad_();
  const at::Tensor mask = at::empty({b, c.num_heads, s, s}, opts).requires_grad_();
  const std::int64_t choice = at::_fused_sdp_choice(q, q, q, mask, c.dropout_rate, false, 1.0);
  const char* names[] = {"math (unfused)", "flash", "memory-efficient (fused)", "cuDNN (fused)", "overrideable"};
  return choice >= 0 && choice < 5 ? names[choice] : "unknown";
}
#endif

// " + optimizer state on CPU, parameters on NVMe" and the like; empty without offload.
std::string Offloads(const zt::ZeroConfig& z) {
  auto where = [](zt::OffloadDevice d) { return d == zt::OffloadDevice::kCpu ? "CPU" : "NVMe"; };
  std::vector<std::string> parts;
  if (z.offload_optimizer.device != zt::OffloadDevice::kNone) {
    parts.push_back(absl::StrCat("optimizer state on ", where(z.offload_optimizer.device)));
  }
  if (z.offload_param.device != zt::OffloadDevice::kNone) {
    parts.push_back(absl::StrCat("parameters on ", where(z.offload_param.device)));
  }
  return parts.empty() ? "" : absl::StrCat(" + ", absl::StrJoin(parts, ", "));
}

absl::Status Run() {
  ASSIGN_OR_RETURN(zt::nlp::T5Config c, zt::nlp::T5ConfigForName(absl::GetFlag(FLAGS_model)));
  if (absl::GetFlag(FLAGS_print_params)) {
    std::printf("%lld\n", static_cast<long long>(zt::nlp::T5ParameterCount(c)));
    return absl::OkStatus();
  }
  const std::int64_t b = absl::GetFlag(FLAGS_batch), s = absl::GetFlag(FLAGS_src_len), t = absl::GetFlag(FLAGS_tgt_len);
  const bool cuda = absl::GetFlag(FLAGS_device) == "cuda";
  // One rank, or the ranks a launcher started (//tools:launch, torchrun: RANK, WORLD_SIZE, ...).
  ASSIGN_OR_RETURN(std::unique_ptr<zt::Communicator> comm,
                   zt::Communicator::FromEnv(cuda ? zt::CommBackend::kNccl : zt::CommBackend::kGloo));
  std::shared_ptr<zt::Communicator> shared(std::move(comm));
  nlohmann::json j;
  std::string source = "t5_bench";
  if (!absl::GetFlag(FLAGS_deepspeed).empty()) {
    source = absl::GetFlag(FLAGS_deepspeed);
    ASSIGN_OR_RETURN(std::string text, zt::ReadFileToString(source));
    j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded()) return absl::InvalidArgumentError(source + ": not JSON");
  } else {
    j = {{"zero_optimization", {{"stage", absl::GetFlag(FLAGS_stage)}}}};
    if (absl::GetFlag(FLAGS_offload_optimizer)) {
      j["zero_optimization"]["offload_optimizer"] = {{"device", "cpu"}, {"pin_memory", true}};
    }
  }
  j["train_micro_batch_size_per_gpu"] = b;
  j["gradient_accumulation_steps"] = 1;
  if (!j.contains("optimizer")) j["optimizer"] = {{"type", "AdamW"}, {"params", {{"lr", 1e-4}}}};
  j.erase("scheduler");
  j["bf16"]["enabled"] = absl::GetFlag(FLAGS_bf16);  // a --deepspeed file's other bf16 keys stay
  j["fp16"] = {{"enabled", false}};
  zt::AutoValues job;
  job.lr = 1e-4;
  job.betas = {0.9, 0.999};
  job.eps = 1e-8;
  job.weight_decay = 0.0;
  job.max_grad_norm = 1.0;
  job.micro_batch = b;
  job.gradient_accumulation_steps = 1;
  job.hidden_size = c.d_model;
  job.warmup_steps = 0;
  job.total_steps = 1000;
  ASSIGN_OR_RETURN(zt::Config config, zt::Config::FromJson(j.dump(), source, job));
  auto model = std::make_shared<zt::nlp::T5ForConditionalGeneration>(c, 1);
  std::int64_t params = 0;
  for (const auto& p : model->parameters()) params += p.numel();
  ASSIGN_OR_RETURN(auto engine, zt::Engine::Create(model, config, shared));
  const auto opts = at::TensorOptions().dtype(at::kLong);
  const zt::Batch batch = {{"input_ids", at::randint(2, c.vocab_size, {b, s}, opts)},
                           {"attention_mask", at::ones({b, s}, opts)},
                           {"labels", at::randint(2, c.vocab_size, {b, t}, opts)}};
  std::vector<double> times;
  const int warmup = absl::GetFlag(FLAGS_warmup), steps = absl::GetFlag(FLAGS_steps);
  const std::string trace = absl::GetFlag(FLAGS_trace);
  for (int step = 0; step < warmup + steps; ++step) {
    if (step == warmup) {
#ifdef ZT_CUDA
      if (cuda) zt::bench::ResetPeakCudaMemory(0);
#endif
      if (!trace.empty()) StartTrace(cuda);
    }
    const auto t0 = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(at::Tensor loss, engine->Forward(batch));
    RETURN_IF_ERROR(engine->Backward(loss));
    RETURN_IF_ERROR(engine->Step());
    (void)loss.item<float>();
    if (step >= warmup) times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  if (!trace.empty()) {
    const std::string path = absl::StrFormat("%s.rank%d.json", trace, shared->rank());
    prof::disableProfiler()->save(path);
    std::printf("trace: %s (%d steps)\n", path.c_str(), steps);
  }
  // The same steps again with no wait between them, as a training loop that reads the loss only
  // when it logs: the mean step of a window closed by one wait at its end.
  const int window_steps = absl::GetFlag(FLAGS_window_steps) < 0 ? steps : absl::GetFlag(FLAGS_window_steps);
  // The host's own time in each call (nothing in them waits for the GPU): where it exceeds the
  // GPU's work, the host sets the step's pace.
  double host_fwd = 0, host_bwd = 0, host_step = 0;
  auto since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  const auto w0 = std::chrono::steady_clock::now();
  {
    at::Tensor last;
    for (int step = 0; step < window_steps; ++step) {
      auto t = std::chrono::steady_clock::now();
      ASSIGN_OR_RETURN(last, engine->Forward(batch));
      host_fwd += since(t);
      t = std::chrono::steady_clock::now();
      RETURN_IF_ERROR(engine->Backward(last));
      host_bwd += since(t);
      t = std::chrono::steady_clock::now();
      RETURN_IF_ERROR(engine->Step());
      host_step += since(t);
    }
    if (last.defined()) (void)last.item<float>();
  }
  const double window =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count() / std::max(window_steps, 1);
  std::sort(times.begin(), times.end());
  const double med = times[times.size() / 2];
  const int world = shared->world_size();
  const double tokens = static_cast<double>(b * (s + t));
  const double tflops = zt::nlp::T5TrainingFlops(c, b, s, t) / med / 1e12;
  double peak_gb = -1;
#ifdef ZT_CUDA
  if (cuda) peak_gb = zt::bench::PeakCudaMemory(0) / 1e9;
#endif
  if (shared->rank() == 0) {
    std::printf(
        "t5_bench: %s (%.0fM params), %s, %d rank(s), batch %lld per rank, source %lld / target %lld, ZeRO stage %d%s, "
        "%s\n",
        absl::GetFlag(FLAGS_model).c_str(), params / 1e6, zt::tools::CpuModel().c_str(), world,
        static_cast<long long>(b), static_cast<long long>(s), static_cast<long long>(t), config.zero_optimization.stage,
        Offloads(config.zero_optimization).c_str(), absl::GetFlag(FLAGS_bf16) ? "bf16" : "fp32");
    // tokens_per_s counts every rank's; tflops, mfu and the peak memory are rank 0's.
    std::printf("step_s=%.4f tokens_per_s=%.0f tflops=%.1f mfu=%.3f peak_gpu_gb=%.2f\n", med, world * tokens / med,
                tflops, tflops / absl::GetFlag(FLAGS_peak_tflops), peak_gb);
    if (window_steps > 0) {
      const double window_tflops = tflops * med / window;
      std::printf("unsynced window of %d steps: step_s=%.4f tokens_per_s=%.0f mfu=%.3f\n", window_steps, window,
                  world * tokens / window, window_tflops / absl::GetFlag(FLAGS_peak_tflops));
      std::printf("host time a step in the window: forward %.1f ms, backward %.1f ms, step %.1f ms\n",
                  1e3 * host_fwd / window_steps, 1e3 * host_bwd / window_steps, 1e3 * host_step / window_steps);
    }
#ifdef ZT_CUDA
    if (cuda) std::printf("attention: %s\n", AttentionBackend(c, b, s).c_str());
#endif
  }
  RETURN_IF_ERROR(engine->Shutdown());
  return shared->Shutdown();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const absl::Status s = Run();
  if (!s.ok()) {
    std::fprintf(stderr, "t5_bench: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
