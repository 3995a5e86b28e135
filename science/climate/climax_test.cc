// The ClimaX-style model: shapes on grids that are not multiples of the patch, the residual
// forecast, the masked latitude-weighted loss, and training through the engine (ZeRO stages on
// two ranks equal one process).
#include "science/climate/climax.h"

#include <ATen/ATen.h>
#include <torch/optim/adamw.h>

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

namespace zt::science::climate {
namespace {

using ::testing::HasSubstr;

ClimaxConfig Small() {
  ClimaxConfig c;
  c.variables = 3;
  c.height = 10;  // not a multiple of the patch: padded and cropped
  c.width = 14;
  c.patch = 4;
  c.embed = 32;
  c.depth = 2;
  c.heads = 4;
  return c;
}

Batch MakeBatch(const ClimaxConfig& c, std::int64_t b, std::uint64_t seed) {
  at::Generator g = at::detail::createCPUGenerator(seed);
  at::Tensor lat = at::linspace(-80, 80, c.height);
  return {{"input", at::randn({b, c.variables, c.height, c.width}, g)},
          {"target", at::randn({b, c.variables, c.height, c.width}, g)},
          {"target_mask", at::rand({b, c.variables, c.height, c.width}, g) > 0.1},
          {"lead_hours", at::full({b}, 6.0)},
          {"lat_weights", at::cos(lat * M_PI / 180) / at::cos(lat * M_PI / 180).mean()}};
}

TEST(ClimaxTest, ShapesResidualAndLoss) {
  const ClimaxConfig c = Small();
  Climax model(c, 1);
  model.eval();
  const Batch b = MakeBatch(c, 2, 3);
  const at::Tensor pred = model.Predict(b);
  ASSERT_EQ(pred.sizes(), b.at("input").sizes());
  // The loss is the latitude-weighted MSE over the present target values.
  const at::Tensor m = b.at("target_mask").to(at::kFloat);
  const at::Tensor w = b.at("lat_weights").view({1, 1, -1, 1});
  const double want = ((pred - b.at("target")).pow(2) * w * m).sum().item<double>() / m.sum().item<double>();
  EXPECT_NEAR(model.Forward(b).item<double>(), want, 1e-5 * want);

  // With the head's output zeroed, the residual model forecasts persistence.
  for (auto& p : model.named_parameters()) {
    if (p.key().rfind("head.module.out_", 0) == 0) p.value().detach().zero_();
  }
  EXPECT_TRUE(at::allclose(model.Predict(b), b.at("input")));
  // The forecast depends on the lead time.
  ClimaxConfig direct = c;
  direct.residual = false;
  Climax d(direct, 1);
  d.eval();
  Batch later = b;
  later["lead_hours"] = at::full({2}, 72.0);
  EXPECT_GT((d.Predict(b) - d.Predict(later)).abs().max().item<double>(), 1e-4);
  EXPECT_THROW(model.Predict(MakeBatch(ClimaxConfig{}, 1, 1)), std::exception);  // another grid
}

TEST(ClimaxTest, ConfigRoundTripsAndRejects) {
  ClimaxConfig c = Small();
  c.residual = false;
  absl::StatusOr<ClimaxConfig> back = ClimaxConfig::FromJson(c.ToJson(), "config.json");
  ASSERT_THAT(back.status(), IsOk());
  EXPECT_EQ(back->ToJson(), c.ToJson());
  EXPECT_THAT(ClimaxConfig::FromJson(R"({"embed": 30, "heads": 4})", "x/config.json").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("x/config.json: needs")));
  EXPECT_THAT(ClimaxConfig::FromJson(R"({"patch": 2.5})", "x/config.json").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"patch\" has the wrong type")));
}

constexpr int kSteps = 3;

class ClimaxEngineTest : public ::testing::TestWithParam<int> {};

TEST_P(ClimaxEngineTest, TwoRanksMatchOneProcess) {
  const int stage = GetParam();
  const ClimaxConfig c = Small();
  std::vector<Batch> batches;
  for (int s = 0; s < kSteps; ++s) batches.push_back(MakeBatch(c, 4, 10 + s));
  auto rows = [](const Batch& b, std::int64_t begin) {
    Batch out;
    for (const auto& [k, v] : b) out.emplace(k, k == "lat_weights" ? v : v.narrow(0, begin, 2));
    return out;
  };
  std::vector<at::Tensor> want;
  {
    Climax model(c, 7);
    torch::optim::AdamW opt(model.parameters(), torch::optim::AdamWOptions(1e-2).weight_decay(0.01));
    for (int s = 0; s < kSteps; ++s) {
      opt.zero_grad();
      ((model.Forward(rows(batches[s], 0)) + model.Forward(rows(batches[s], 2))) / 2).backward();
      opt.step();
    }
    for (const auto& p : model.parameters()) want.push_back(p.detach().clone());
  }
  const std::string json = absl::StrFormat(R"({
    "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 1, "gradient_clipping": 0,
    "optimizer": {"type": "AdamW", "params": {"lr": 0.01, "weight_decay": 0.01}},
    "zero_optimization": {"stage": %d, "stage3_param_persistence_threshold": 10, "reduce_bucket_size": 5000}})",
                                           stage);
  const absl::Status s = RunOnRanks(2, [&](Communicator& comm) -> absl::Status {
    AutoValues job;
    job.world_size = 2;
    ASSIGN_OR_RETURN(Config config, Config::FromJson(json, "climax_test", job));
    std::shared_ptr<Communicator> borrowed(&comm, [](Communicator*) {});
    ASSIGN_OR_RETURN(auto engine, Engine::Create(std::make_shared<Climax>(c, 7), config, borrowed));
    for (int step = 0; step < kSteps; ++step) {
      ASSIGN_OR_RETURN(at::Tensor loss, engine->Forward(rows(batches[step], 2 * comm.rank())));
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
    if (worst > 1e-5) return absl::InternalError(absl::StrCat("max abs diff ", worst, " in ", where));
    return absl::OkStatus();
  });
  EXPECT_THAT(s, IsOk());
}

INSTANTIATE_TEST_SUITE_P(Stages, ClimaxEngineTest, ::testing::Values(0, 2, 3),
                         [](const auto& info) { return "stage" + std::to_string(info.param); });

}  // namespace
}  // namespace zt::science::climate
