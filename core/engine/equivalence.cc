#include "core/engine/equivalence.h"

#include <ATen/ATen.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/engine/engine.h"
#include "core/engine/test_models.h"
#include "core/util/status_macros.h"

namespace zt::testing {
namespace {

constexpr double kLr = 1e-2;

std::shared_ptr<Model> MakeNet(Net net) {
  return net == Net::kMlp ? MakeMlp(11, 8, 16, 4) : MakeTransformerBlock(11, 16, 2, 32);
}

Batch GlobalBatch(Net net, int step) {
  return net == Net::kMlp ? MlpBatch(1000 + step, kGlobalBatch, 8, 4)
                          : TransformerBatch(1000 + step, kGlobalBatch, 5, 16);
}

std::string ConfigJson(const EquivalenceCase& c, std::int64_t micro) {
  return absl::StrFormat(R"({
    "train_micro_batch_size_per_gpu": %d, "gradient_accumulation_steps": %d, "gradient_clipping": %g,
    "optimizer": {"type": "AdamW", "params": {"lr": %g, "betas": [0.9, 0.99], "eps": 1e-8, "weight_decay": 0.01}},
    "zero_optimization": {"stage": %d, "reduce_bucket_size": 200, "allgather_bucket_size": %d,
                          "overlap_comm": %s%s}%s
  })",
                         micro, c.gas, c.clip, kLr, c.stage, c.allgather_bucket_size, c.overlap_comm ? "true" : "false",
                         c.zero_extra + (c.stage == 3 ? c.stage3_config : ""), c.extra_config);
}

}  // namespace

std::string CaseName(const EquivalenceCase& c) {
  return absl::StrCat(c.net == Net::kMlp ? "mlp" : "block", "_stage", c.stage, "_world", c.world, "_gas", c.gas,
                      c.clip > 0 ? "_clip" : "_noclip", c.label.empty() ? "" : "_", c.label);
}

std::vector<EquivalenceCase> OffloadCases(int max_world) {
  const std::string optimizer = R"(, "offload_optimizer": {"device": "cpu", "pin_memory": true})";
  std::vector<EquivalenceCase> cases;
  for (Net net : {Net::kMlp, Net::kBlock})
    for (int stage : {1, 2, 3})
      for (int world = 1; world <= max_world; ++world)
        for (int gas : {1, 3}) {
          EquivalenceCase c{net, stage, world, gas, 0.05};
          c.zero_extra = optimizer;
          c.label = "offload_optimizer";
          cases.push_back(c);
        }
  for (Net net : {Net::kMlp, Net::kBlock})
    for (int world = 1; world <= max_world; ++world) {
      EquivalenceCase half{net, 3, world, 2, 0.05};
      half.zero_extra = R"(, "offload_optimizer": {"device": "cpu", "ratio": 0.5})";
      half.label = "offload_ratio_half";
      cases.push_back(half);
      EquivalenceCase params{net, 3, world, 1, 0.05};
      params.zero_extra = R"(, "offload_param": {"device": "cpu"})";
      params.label = "offload_param";
      cases.push_back(params);
      EquivalenceCase both{net, 3, world, 2, 0.05};
      both.zero_extra = optimizer + R"(, "offload_param": {"device": "cpu", "pin_memory": true})";
      both.label = "offload_both";
      cases.push_back(both);
    }
  return cases;
}

std::vector<EquivalenceCase> NvmeCases(int max_world, const std::string& dir) {
  const std::string nvme = R"("device": "nvme", "nvme_path": ")" + dir + "\"";
  std::vector<EquivalenceCase> cases;
  for (Net net : {Net::kMlp, Net::kBlock})
    for (int world = 1; world <= max_world; ++world) {
      EquivalenceCase plain{net, 3, world, 1, 0.05};
      plain.zero_extra = R"(, "offload_optimizer": {)" + nvme + "}";
      plain.label = "nvme_optimizer";
      cases.push_back(plain);
      EquivalenceCase piped{net, 3, world, 3, 0.05};
      piped.zero_extra = R"(, "sub_group_size": 100, "offload_optimizer": {)" + nvme +
                         R"(, "buffer_count": 2, "pipeline_read": true, "pipeline_write": true, "fast_init": true})";
      piped.extra_config =
          R"(, "aio": {"block_size": 4096, "queue_depth": 4, "intra_op_parallelism": 2, "single_submit": true})";
      piped.label = "nvme_pipelined";
      cases.push_back(piped);
      EquivalenceCase half{net, 3, world, 2, 0.05};
      half.zero_extra = R"(, "sub_group_size": 300, "offload_optimizer": {)" + nvme + R"(, "ratio": 0.5})";
      half.label = "nvme_ratio_half";
      cases.push_back(half);
      EquivalenceCase params{net, 3, world, 2, 0.05};
      params.zero_extra = R"(, "offload_optimizer": {)" + nvme + R"(}, "offload_param": {"device": "cpu"})";
      params.label = "nvme_optimizer_cpu_params";
      cases.push_back(params);
      // Parameters on NVMe too: every shard swapped (max_in_cpu 0) through two buffers.
      EquivalenceCase both{net, 3, world, 2, 0.05};
      both.zero_extra = R"(, "offload_optimizer": {)" + nvme + R"(, "pipeline_read": true}, "offload_param": {)" +
                        nvme + R"(, "max_in_cpu": 0, "buffer_count": 2, "buffer_size": 100000})";
      both.label = "nvme_both";
      cases.push_back(both);
      // Parameters on NVMe past the first 300 elements, the optimizer state in host memory.
      EquivalenceCase mixed{net, 3, world, 1, 0.05};
      mixed.zero_extra =
          R"(, "offload_optimizer": {"device": "cpu"}, "offload_param": {)" + nvme + R"(, "max_in_cpu": 300})";
      mixed.label = "nvme_params_cpu_optimizer";
      cases.push_back(mixed);
    }
  return cases;
}

std::vector<at::Tensor> ReferenceParameters(Net net, double clip, at::Device device, double loss_multiplier) {
  auto model = MakeNet(net);
  model->to(device);
  torch::optim::AdamW opt(model->parameters(),
                          torch::optim::AdamWOptions(kLr).betas({0.9, 0.99}).eps(1e-8).weight_decay(0.01));
  for (int step = 0; step < kEquivalenceSteps; ++step) {
    opt.zero_grad();
    Batch b;
    for (const auto& [k, v] : GlobalBatch(net, step)) b.emplace(k, v.to(device));
    (model->Forward(b) * loss_multiplier).backward();
    if (clip > 0) torch::nn::utils::clip_grad_norm_(model->parameters(), clip);
    opt.step();
  }
  std::vector<at::Tensor> out;
  for (const auto& p : model->parameters()) out.push_back(p.detach().to(at::kCPU, at::kFloat));
  return out;
}

namespace {

// Runs the case; `check` sees every rank's final parameters (fp32, CPU).
absl::Status Train(const EquivalenceCase& c, const LocalGroupOptions& options,
                   const std::function<absl::Status(int rank, const std::vector<at::Tensor>&)>& check) {
  const std::int64_t micro = kGlobalBatch / (c.world * c.gas);
  return RunOnRanks(
      c.world,
      [&](Communicator& comm) -> absl::Status {
        AutoValues job;
        job.world_size = c.world;
        ASSIGN_OR_RETURN(Config config, Config::FromJson(ConfigJson(c, micro), CaseName(c), job));
        std::shared_ptr<Communicator> borrowed(&comm, [](Communicator*) {});
        ASSIGN_OR_RETURN(auto engine, Engine::Create(MakeNet(c.net), config, borrowed));
        for (int step = 0; step < kEquivalenceSteps; ++step) {
          Batch global = GlobalBatch(c.net, step);
          for (int k = 0; k < c.gas; ++k) {
            ASSIGN_OR_RETURN(at::Tensor loss,
                             engine->Forward(Slice(global, (k * c.world + comm.rank()) * micro, micro)));
            RETURN_IF_ERROR(engine->Backward(loss));
            RETURN_IF_ERROR(engine->Step());
          }
        }
        if (engine->global_steps() != kEquivalenceSteps) {
          return absl::InternalError(absl::StrCat("rank ", comm.rank(), ": ", engine->global_steps(), " steps"));
        }
        // The last norm, wherever it was computed (on a GPU it stays there until read).
        const double norm = engine->last_grad_norm();
        if (!std::isfinite(norm) || norm <= 0) {
          return absl::InternalError(absl::StrCat("rank ", comm.rank(), ": last gradient norm ", norm));
        }
        std::vector<at::Tensor> params;
        {
          ASSIGN_OR_RETURN(auto full, engine->GatherParameters());  // stage 3: gathered for this scope
          for (const auto& p : engine->module().parameters())
            params.push_back(p.detach().to(at::kCPU, at::kFloat).clone());
          RETURN_IF_ERROR(full->Release());
        }
        RETURN_IF_ERROR(engine->Shutdown());
        return check(comm.rank(), params);
      },
      options);
}

}  // namespace

absl::StatusOr<std::vector<at::Tensor>> TrainParameters(const EquivalenceCase& c, const LocalGroupOptions& options) {
  std::vector<at::Tensor> out;
  RETURN_IF_ERROR(Train(c, options, [&](int rank, const std::vector<at::Tensor>& params) {
    if (rank == 0) out = params;
    return absl::OkStatus();
  }));
  return out;
}

absl::Status TrainAndCompare(const EquivalenceCase& c, const std::vector<at::Tensor>& want, double tolerance,
                             const LocalGroupOptions& options) {
  return Train(c, options, [&](int rank, const std::vector<at::Tensor>& params) -> absl::Status {
    double worst = 0;
    std::size_t where = 0;
    for (std::size_t i = 0; i < params.size(); ++i) {
      const double d = (params[i] - want[i]).abs().max().item<double>();
      if (d > worst) {
        worst = d;
        where = i;
      }
    }
    if (worst > tolerance) {
      return absl::InternalError(
          absl::StrCat("rank ", rank, ": max abs diff ", worst, " > ", tolerance, " in parameter ", where));
    }
    return absl::OkStatus();
  });
}

}  // namespace zt::testing
