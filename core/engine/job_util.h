// What every training job (t5_translate, molecule_train, climate_train) does around the engine:
// its communicator from the launcher's environment, its DeepSpeed config with HF-style defaults,
// and results gathered across ranks.
//
//   ASSIGN_OR_RETURN(zt::RankInfo me, zt::RankInfoFromEnv());
//   ASSIGN_OR_RETURN(std::unique_ptr<zt::Communicator> comm, zt::CreateJobCommunicator(me, use_cpu));
//   std::string source;
//   ASSIGN_OR_RETURN(nlohmann::json j, zt::ReadDeepSpeedJson(path, built_in, &source));
//   zt::AddJobDefaults(j, optimizer, scheduler, bf16, fp16);
//   ASSIGN_OR_RETURN(zt::Config config, zt::Config::FromJson(j.dump(), source, auto_values));
#ifndef ZEROTRAIN_CORE_ENGINE_JOB_UTIL_H_
#define ZEROTRAIN_CORE_ENGINE_JOB_UTIL_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/comm/communicator.h"
#include "core/comm/rank_env.h"
#include "core/config/config.h"
#include "core/engine/engine.h"
#include "nlohmann/json.hpp"

namespace zt {

// Gloo with use_cpu, else NCCL where there are GPUs (Gloo otherwise); refuses a LOCAL_RANK past
// the machine's GPU count, naming both.
absl::StatusOr<std::unique_ptr<Communicator>> CreateJobCommunicator(const RankInfo& me, bool use_cpu);

// The DeepSpeed config at `path` (as the user typed it: UserPath), or `built_in` when `path` is
// empty; *source names it for later messages.
absl::StatusOr<nlohmann::json> ReadDeepSpeedJson(const std::string& path, const nlohmann::json& built_in,
                                                 std::string* source);

// What HF's DeepSpeed integration adds: `optimizer` and `scheduler` where the config has none
// (a null scheduler adds nothing), and bf16 / fp16 blocks from the job's flags where absent.
void AddJobDefaults(nlohmann::json& config, const nlohmann::json& optimizer, const nlohmann::json& scheduler, bool bf16,
                    bool fp16);

// "bf16", "fp16" or "fp32".
const char* PrecisionName(const Config& config);

// Every rank's `local` (the same shape on all, on the communicator's device) stacked as
// [world, ...] on the CPU.
absl::StatusOr<at::Tensor> GatherFromRanks(Communicator& comm, const at::Tensor& local);

// This rank's part of one epoch as torch's DistributedSampler deals it: `items` shuffled with
// `seed` (the same order on every rank), padded by repeating from the start to a multiple of
// `world`, then every world-th item from `rank`.
std::vector<std::int64_t> RankShare(std::vector<std::int64_t> items, std::uint64_t seed, int rank, int world);

// Runs `fn` with every parameter of `model` whole: at stage 3 inside Engine::GatherParameters,
// with the units running their modules directly (PlainUnits); below stage 3 as it is.  For
// evaluation, prediction and saving; every rank calls it at the same point.
absl::Status WithWholeParameters(Engine& engine, torch::nn::Module& model, const std::function<absl::Status()>& fn);

// The module's parameters by their names, copied to the host, as one safetensors file.
absl::Status WriteParameters(const torch::nn::Module& model, const std::string& path);

// The sum of `v` over the ranks (computed on `device`, the communicator's).
absl::StatusOr<double> SumOverRanks(Communicator& comm, double v, const at::Device& device);

}  // namespace zt

#endif  // ZEROTRAIN_CORE_ENGINE_JOB_UTIL_H_
