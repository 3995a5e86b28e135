#include "core/engine/job_util.h"

#include <ATen/ATen.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/ckpt/safetensors.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "core/zero/unit.h"

namespace zt {

absl::StatusOr<std::unique_ptr<Communicator>> CreateJobCommunicator(const RankInfo& me, bool use_cpu) {
  CommOptions co;
  co.rank = me;
  co.backend = use_cpu ? CommBackend::kGloo : CommBackend::kAuto;
  if (!use_cpu && at::hasCUDA()) {
    const int gpus = at::detail::getCUDAHooks().deviceCount();
    if (me.local_rank >= gpus) {
      return absl::InvalidArgumentError(absl::StrCat("LOCAL_RANK ", me.local_rank, " but this machine has ", gpus,
                                                     " GPU(s): start at most ", gpus,
                                                     " rank(s) per machine, or pass --use_cpu"));
    }
  }
  return Communicator::Create(co);
}

absl::StatusOr<nlohmann::json> ReadDeepSpeedJson(const std::string& path, const nlohmann::json& built_in,
                                                 std::string* source) {
  if (path.empty()) {
    *source = "built-in config";
    return built_in;
  }
  *source = UserPath(path);
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(*source));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(*source, ": not a JSON object (check it with //tools:ds_config)"));
  }
  return j;
}

void AddJobDefaults(nlohmann::json& config, const nlohmann::json& optimizer, const nlohmann::json& scheduler, bool bf16,
                    bool fp16) {
  if (!config.contains("optimizer")) config["optimizer"] = optimizer;
  if (!config.contains("scheduler") && !scheduler.is_null()) config["scheduler"] = scheduler;
  if (bf16 && !config.contains("bf16")) config["bf16"] = {{"enabled", true}};
  if (fp16 && !config.contains("fp16")) config["fp16"] = {{"enabled", true}};
}

const char* PrecisionName(const Config& config) {
  switch (config.precision()) {
    case Precision::kBf16:
      return "bf16";
    case Precision::kFp16:
      return "fp16";
    default:
      return "fp32";
  }
}

absl::StatusOr<at::Tensor> GatherFromRanks(Communicator& comm, const at::Tensor& local) {
  const at::Tensor src = local.contiguous();
  if (comm.world_size() == 1) return src.unsqueeze(0).cpu();
  std::vector<std::int64_t> shape = {comm.world_size()};
  for (std::int64_t s : src.sizes()) shape.push_back(s);
  at::Tensor all = at::empty(shape, src.options());
  ASSIGN_OR_RETURN(auto work, comm.AllGather(all.view({-1}), src.view({-1})));
  RETURN_IF_ERROR(work->Wait());
  return all.cpu();
}

std::vector<std::int64_t> RankShare(std::vector<std::int64_t> items, std::uint64_t seed, int rank, int world) {
  const auto n = static_cast<std::int64_t>(items.size());
  std::mt19937_64 rng(seed);
  for (std::int64_t i = n - 1; i > 0; --i) std::swap(items[i], items[rng() % (i + 1)]);
  const std::int64_t per_rank = (n + world - 1) / world;
  std::vector<std::int64_t> mine;
  for (std::int64_t k = 0; k < per_rank && n > 0; ++k) mine.push_back(items[(k * world + rank) % n]);
  return mine;
}

absl::Status WithWholeParameters(Engine& engine, torch::nn::Module& model, const std::function<absl::Status()>& fn) {
  std::unique_ptr<GatheredParameters> gathered;
  if (engine.stage3() != nullptr) {
    ASSIGN_OR_RETURN(gathered, engine.GatherParameters());
  }
  absl::Status s;
  {
    PlainUnits plain(model);
    s = fn();
  }
  if (gathered) RETURN_IF_ERROR(gathered->Release());
  return s;
}

absl::Status WriteParameters(const torch::nn::Module& model, const std::string& path) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  RETURN_IF_ERROR(CallTorch("copying parameters to the host", [&] {
    for (const auto& p : model.named_parameters()) tensors.emplace_back(p.key(), p.value().detach().cpu());
  }));
  return ckpt::WriteSafetensors(path, tensors, {{"format", "pt"}});
}

absl::StatusOr<double> SumOverRanks(Communicator& comm, double v, const at::Device& device) {
  if (comm.world_size() == 1) return v;
  at::Tensor t = at::full({1}, v, at::TensorOptions().dtype(at::kDouble).device(device));
  RETURN_IF_ERROR(AllReduceSync(comm, t));
  return t.item<double>();
}

}  // namespace zt
