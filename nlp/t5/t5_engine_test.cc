// T5 trained by the engine: ZeRO stages 0-3 on two ranks (Gloo, threads) end where one process
// with LibTorch's AdamW on the global batch ends.  Stage 3 partitions every block (a unit whose
// first block hands the position bias to the others).
#include <ATen/ATen.h>
#include <torch/optim/adamw.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/comm/local_group.h"
#include "core/config/config.h"
#include "core/engine/engine.h"
#include "core/util/status_macros.h"
#include "core/util/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlp/t5/t5_model.h"

namespace zt::nlp {
namespace {

constexpr int kSteps = 3;
constexpr double kLr = 1e-2;
// gradient_clipping is off in the configs below: DeepSpeed (and our schema) default it to 1.0.

std::shared_ptr<T5ForConditionalGeneration> MakeModel(const std::string& style) {
  const std::string dir = std::string(std::getenv("TEST_SRCDIR")) + "/zerotrain/nlp/t5/testdata/" + style;
  absl::StatusOr<T5Config> config = ReadT5Config(dir + "/config.json");
  EXPECT_THAT(config.status(), IsOk());
  config->dropout_rate = 0;  // deterministic: ranks and the reference see the same function
  auto model = std::make_shared<T5ForConditionalGeneration>(*config, 3);
  EXPECT_THAT(model->LoadHfCheckpoint(dir + "/model.safetensors"), IsOk());
  return model;
}

// Global batch of step `s`: 4 samples, every label real (so the mean over tokens of the
// global batch is the mean of the per-rank means).
Batch GlobalBatch(int s) {
  at::Generator g = at::detail::createCPUGenerator(100 + s);
  at::Tensor mask = at::ones({4, 10}, at::kLong);
  mask.narrow(1, 7, 3).select(0, 1).zero_();
  return {{"input_ids", at::randint(2, 64, {4, 10}, g)},
          {"attention_mask", mask},
          {"labels", at::randint(2, 64, {4, 6}, g)}};
}

Batch Rows(const Batch& b, std::int64_t begin, std::int64_t n) {
  Batch out;
  for (const auto& [k, v] : b) out.emplace(k, v.narrow(0, begin, n));
  return out;
}

std::vector<at::Tensor> Reference(const std::string& style) {
  auto model = MakeModel(style);
  torch::optim::AdamW opt(model->parameters(),
                          torch::optim::AdamWOptions(kLr).betas({0.9, 0.99}).eps(1e-8).weight_decay(0.01));
  for (int s = 0; s < kSteps; ++s) {
    opt.zero_grad();
    model->Forward(GlobalBatch(s)).backward();
    opt.step();
  }
  std::vector<at::Tensor> out;
  for (const auto& p : model->parameters()) out.push_back(p.detach().clone());
  return out;
}

struct Case {
  std::string style;
  int stage;
  int world = 2;
};

class T5EngineTest : public ::testing::TestWithParam<Case> {};

TEST_P(T5EngineTest, TwoRanksMatchOneProcess) {
  const Case c = GetParam();
  const std::vector<at::Tensor> want = Reference(c.style);
  const std::string json = absl::StrFormat(R"({
    "train_micro_batch_size_per_gpu": %d, "gradient_accumulation_steps": 1, "gradient_clipping": 0,
    "optimizer": {"type": "AdamW", "params": {"lr": %g, "betas": [0.9, 0.99], "eps": 1e-8, "weight_decay": 0.01}},
    "zero_optimization": {"stage": %d, "reduce_bucket_size": 500, "allgather_bucket_size": 500,
      "stage3_param_persistence_threshold": 20, "stage3_prefetch_bucket_size": 1000,
      "stage3_max_live_parameters": 5000}})",
                                           4 / c.world, kLr, c.stage);
  const absl::Status s = RunOnRanks(c.world, [&](Communicator& comm) -> absl::Status {
    AutoValues job;
    job.world_size = c.world;
    ASSIGN_OR_RETURN(Config config, Config::FromJson(json, "t5_engine_test", job));
    std::shared_ptr<Communicator> borrowed(&comm, [](Communicator*) {});
    ASSIGN_OR_RETURN(auto engine, Engine::Create(MakeModel(c.style), config, borrowed));
    for (int step = 0; step < kSteps; ++step) {
      ASSIGN_OR_RETURN(at::Tensor loss,
                       engine->Forward(Rows(GlobalBatch(step), 4 / c.world * comm.rank(), 4 / c.world)));
      RETURN_IF_ERROR(engine->Backward(loss));
      RETURN_IF_ERROR(engine->Step());
    }
    ASSIGN_OR_RETURN(auto full, engine->GatherParameters());
    const auto params = engine->module().named_parameters();
    double worst = 0;
    std::string where;
    for (std::size_t i = 0; i < params.size(); ++i) {
      const double d = (params[i].value().detach().to(at::kFloat) - want[i]).abs().max().item<double>();
      if (d > worst) {
        worst = d;
        where = params[i].key();
      }
    }
    RETURN_IF_ERROR(full->Release());
    RETURN_IF_ERROR(engine->Shutdown());
    if (worst > 1e-5)
      return absl::InternalError(absl::StrCat("rank ", comm.rank(), ": max abs diff ", worst, " in ", where));
    return absl::OkStatus();
  });
  EXPECT_THAT(s, IsOk());
}

INSTANTIATE_TEST_SUITE_P(Stages, T5EngineTest,
                         ::testing::Values(Case{"t5", 0, 1}, Case{"v1_1", 0, 1}, Case{"t5", 0}, Case{"t5", 1},
                                           Case{"t5", 2}, Case{"t5", 3}, Case{"v1_1", 2}, Case{"v1_1", 3}),
                         [](const auto& info) {
                           return info.param.style + "_stage" + std::to_string(info.param.stage) + "_world" +
                                  std::to_string(info.param.world);
                         });

// fp16 training on the fixture whose FFN outputs pass fp16's range: the engine keeps the
// parameters in fp16 and the model computes the FFN output in fp32, so the losses the engine
// sees follow fp32 training of the same model (pure fp16 is 0.013 off on the first batch already)
// and no step overflows.
class T5Fp16EngineTest : public ::testing::TestWithParam<int> {};

TEST_P(T5Fp16EngineTest, LossesFollowFp32) {
  const int stage = GetParam();
  std::vector<double> want;
  {
    auto model = MakeModel("fp16");
    torch::optim::AdamW opt(model->parameters(),
                            torch::optim::AdamWOptions(kLr).betas({0.9, 0.99}).eps(1e-8).weight_decay(0.01));
    for (int s = 0; s < kSteps; ++s) {
      opt.zero_grad();
      at::Tensor loss = model->Forward(GlobalBatch(s));
      want.push_back(loss.item<double>());
      loss.backward();
      opt.step();
    }
  }
  const std::string json = absl::StrFormat(R"({
    "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 1, "gradient_clipping": 0,
    "fp16": {"enabled": true, "initial_scale_power": 8},
    "optimizer": {"type": "AdamW", "params": {"lr": %g, "betas": [0.9, 0.99], "eps": 1e-8, "weight_decay": 0.01}},
    "zero_optimization": {"stage": %d, "stage3_param_persistence_threshold": 20}})",
                                           kLr, stage);
  const absl::Status s = RunOnRanks(2, [&](Communicator& comm) -> absl::Status {
    AutoValues job;
    job.world_size = 2;
    ASSIGN_OR_RETURN(Config config, Config::FromJson(json, "t5_engine_test", job));
    std::shared_ptr<Communicator> borrowed(&comm, [](Communicator*) {});
    ASSIGN_OR_RETURN(auto engine, Engine::Create(MakeModel("fp16"), config, borrowed));
    for (int step = 0; step < kSteps; ++step) {
      ASSIGN_OR_RETURN(at::Tensor loss, engine->Forward(Rows(GlobalBatch(step), 2 * comm.rank(), 2)));
      if (loss.scalar_type() != at::kFloat) return absl::InternalError("the loss is not fp32");
      at::Tensor mean = loss.detach().clone().reshape({1});
      RETURN_IF_ERROR(AllReduceSync(comm, mean));
      const double got = mean.item<double>() / 2;
      if (std::abs(got - want[step]) > 5e-3)
        return absl::InternalError(absl::StrCat("step ", step, ": loss ", got, ", fp32 training ", want[step]));
      RETURN_IF_ERROR(engine->Backward(loss));
      RETURN_IF_ERROR(engine->Step());
    }
    if (engine->skipped_steps() != 0) return absl::InternalError(absl::StrCat(engine->skipped_steps(), " overflows"));
    return engine->Shutdown();
  });
  EXPECT_THAT(s, IsOk());
}

INSTANTIATE_TEST_SUITE_P(Stages, T5Fp16EngineTest, ::testing::Values(0, 2, 3),
                         [](const auto& info) { return "stage" + std::to_string(info.param); });

}  // namespace
}  // namespace zt::nlp
