// The equivalence harness shared by the engine's CPU and GPU tests: train a small model for a
// few steps with N ranks and compare every parameter with one process trained on the global
// batch (plain LibTorch: torch::optim::AdamW, torch::nn::utils::clip_grad_norm_).
#ifndef ZEROTRAIN_CORE_ENGINE_EQUIVALENCE_H_
#define ZEROTRAIN_CORE_ENGINE_EQUIVALENCE_H_

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/comm/local_group.h"
#include "core/engine/model.h"

namespace zt::testing {

enum class Net { kMlp, kBlock };

struct EquivalenceCase {
  Net net = Net::kMlp;
  int stage = 0;
  int world = 1;
  int gas = 1;
  double clip = 0;
  std::string extra_config;                  // more JSON members for the config, starting with a comma
  std::string zero_extra;                    // more members of zero_optimization, starting with a comma
  std::int64_t allgather_bucket_size = 300;  // small: several all-gather chunks
  bool overlap_comm = true;
  std::string label;  // appended to the test name (e.g. what zero_extra turns on)
  // Stage 3 only: small thresholds so that units are partitioned (biases of fewer than 10
  // elements stay persistent), prefetched and evicted.
  std::string stage3_config = R"(, "stage3_param_persistence_threshold": 10, "stage3_prefetch_bucket_size": 200,
      "stage3_max_live_parameters": 3000, "stage3_max_reuse_distance": 100)";
};

inline constexpr int kEquivalenceSteps = 10;
inline constexpr std::int64_t kGlobalBatch = 12;  // divisible by world x accumulation

std::string CaseName(const EquivalenceCase& c);

// ZeRO-Offload cases (gradient clipping on) for world sizes up to max_world: the optimizer state
// in host memory (CPU Adam) at stages 1-3, half of it at stage 3 (ratio 0.5), parameter shards
// in host memory at stage 3, and both offloads together.
std::vector<EquivalenceCase> OffloadCases(int max_world);

// ZeRO-Infinity cases at stage 3 (clipping on): the optimizer state in swap files under `dir`
// with DeepSpeed's defaults, with small sub-groups swapped through two pipelined buffers
// (fast_init, a small aio block, two I/O threads, accumulation 3), with half of it swapped
// (ratio 0.5) and with the parameter shards in host memory beside it; the parameter shards on
// NVMe too (all of them, optimizer on NVMe) and past max_in_cpu (optimizer in host memory).
std::vector<EquivalenceCase> NvmeCases(int max_world, const std::string& dir);

// The parameters after kEquivalenceSteps steps of one process on `device` (its loss multiplied by
// loss_multiplier: summing instead of averaging over N ranks is training on N x the loss).
std::vector<at::Tensor> ReferenceParameters(Net net, double clip, at::Device device, double loss_multiplier = 1.0);

// Trains the case and returns rank 0's parameters (fp32, on the CPU).
absl::StatusOr<std::vector<at::Tensor>> TrainParameters(const EquivalenceCase& c,
                                                        const LocalGroupOptions& options = {});

// Trains the case with `options.backend` (rank r on cuda:r with NCCL) and returns OK when every
// rank's parameters are within `tolerance` (max abs diff) of `want`; else the worst difference.
absl::Status TrainAndCompare(const EquivalenceCase& c, const std::vector<at::Tensor>& want, double tolerance,
                             const LocalGroupOptions& options = {});

}  // namespace zt::testing

#endif  // ZEROTRAIN_CORE_ENGINE_EQUIVALENCE_H_
