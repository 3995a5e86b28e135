// The graph transformer: invariances a molecule model must have, its loss, and training through
// the engine (ZeRO stages on two ranks equal one process).
#include "science/molecule/model.h"

#include <ATen/ATen.h>
#include <torch/optim/adamw.h>

#include <cmath>
#include <limits>
#include <random>
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
#include "science/molecule/data.h"

namespace zt::science::molecule {
namespace {

using ::testing::HasSubstr;

// A random graph of n atoms: a chain with one ring closure, symmetric pair features.
MolGraph RandomGraph(int n, std::uint64_t seed, bool with_distance, int targets = 1) {
  std::mt19937_64 rng(seed);
  MolGraph g;
  g.num_atoms = n;
  g.smiles = absl::StrCat("graph", seed);
  for (int i = 0; i < n * kNumAtomFeatures; ++i) g.atoms.push_back(static_cast<std::int64_t>(rng() % kAtomVocab));
  g.bonds.assign(static_cast<std::size_t>(n) * n * kNumBondFeatures, 0);
  g.path.assign(static_cast<std::size_t>(n) * n, 0);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      g.path[i * n + j] = std::min(std::abs(i - j), kMaxPathDistance + 1);
      if (std::abs(i - j) == 1) {
        for (int f = 0; f < kNumBondFeatures; ++f) {
          const std::int64_t v = 1 + static_cast<std::int64_t>((std::min(i, j) * 7 + f) % (kBondVocab - 1));
          g.bonds[(static_cast<std::size_t>(i) * n + j) * kNumBondFeatures + f] = v;
        }
      }
    }
  }
  if (with_distance) {
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) g.distance.push_back(1.5f * std::sqrt(static_cast<float>(std::abs(i - j))));
  }
  for (int t = 0; t < targets; ++t) g.targets.push_back(static_cast<float>(std::sin(seed + t)));
  return g;
}

// The same molecule with its atoms in the order `perm` (new i = old perm[i]).
MolGraph Permuted(const MolGraph& g, const std::vector<int>& perm) {
  MolGraph p = g;
  const int n = g.num_atoms;
  for (int i = 0; i < n; ++i) {
    for (int f = 0; f < kNumAtomFeatures; ++f)
      p.atoms[i * kNumAtomFeatures + f] = g.atoms[perm[i] * kNumAtomFeatures + f];
    for (int j = 0; j < n; ++j) {
      p.path[i * n + j] = g.path[perm[i] * n + perm[j]];
      if (!g.distance.empty()) p.distance[i * n + j] = g.distance[perm[i] * n + perm[j]];
      for (int f = 0; f < kNumBondFeatures; ++f)
        p.bonds[(i * n + j) * kNumBondFeatures + f] = g.bonds[(perm[i] * n + perm[j]) * kNumBondFeatures + f];
    }
  }
  return p;
}

MoleculeModelConfig Small(bool with_3d) {
  MoleculeModelConfig c;
  c.layers = 2;
  c.hidden = 32;
  c.heads = 4;
  c.ffn = 64;
  c.dropout = 0;
  c.gaussians = with_3d ? 16 : 0;
  return c;
}

TEST(MoleculeModelTest, PermutationAndPaddingInvariant) {
  for (bool with_3d : {false, true}) {
    MoleculeModel model(Small(with_3d), 1);
    model.eval();
    const MolGraph g = RandomGraph(9, 3, with_3d), big = RandomGraph(17, 4, with_3d);
    const at::Tensor alone = model.Predict(MakeBatch({&g}));
    const at::Tensor padded = model.Predict(MakeBatch({&g, &big}));
    EXPECT_LE((alone[0] - padded[0]).abs().max().item<double>(), 1e-5) << "padding changed the prediction";
    const MolGraph p = Permuted(g, {4, 0, 8, 2, 7, 1, 6, 3, 5});
    const at::Tensor permuted = model.Predict(MakeBatch({&p}));
    EXPECT_LE((alone - permuted).abs().max().item<double>(), 1e-5) << "atom order changed the prediction";
    EXPECT_GT((alone[0] - padded[1]).abs().max().item<double>(), 1e-4) << "different molecules, same prediction";
  }
}

TEST(MoleculeModelTest, LossSkipsMissingTargets) {
  MoleculeModelConfig c = Small(false);
  c.targets = 2;
  MoleculeModel model(c, 2);
  model.eval();
  MolGraph a = RandomGraph(5, 1, false, 2), b = RandomGraph(6, 2, false, 2);
  const at::Tensor out = model.Predict(MakeBatch({&a, &b}));
  b.targets[1] = std::numeric_limits<float>::quiet_NaN();
  const at::Tensor loss = model.Forward(MakeBatch({&a, &b}));
  const double want =
      (std::pow(out[0][0].item<double>() - a.targets[0], 2) + std::pow(out[0][1].item<double>() - a.targets[1], 2) +
       std::pow(out[1][0].item<double>() - b.targets[0], 2)) /
      3;
  EXPECT_NEAR(loss.item<double>(), want, 1e-5);
  EXPECT_TRUE(std::isfinite(loss.item<double>()));

  c.classification = true;
  MoleculeModel cls(c, 2);
  cls.eval();
  a.targets = {1, 0};
  b.targets = {0, std::numeric_limits<float>::quiet_NaN()};
  const at::Tensor logits = cls.Predict(MakeBatch({&a, &b}));
  auto bce = [](double z, double y) { return std::log1p(std::exp(-std::abs(z))) + std::max(z, 0.0) - z * y; };
  const double want_cls = (bce(logits[0][0].item<double>(), 1) + bce(logits[0][1].item<double>(), 0) +
                           bce(logits[1][0].item<double>(), 0)) /
                          3;
  EXPECT_NEAR(cls.Forward(MakeBatch({&a, &b})).item<double>(), want_cls, 1e-5);
}

TEST(MoleculeModelTest, ConfigRoundTripsAndRejects) {
  MoleculeModelConfig c = Small(true);
  c.targets = 3;
  c.classification = true;
  absl::StatusOr<MoleculeModelConfig> back = MoleculeModelConfig::FromJson(c.ToJson(), "config.json");
  ASSERT_THAT(back.status(), IsOk());
  EXPECT_EQ(back->ToJson(), c.ToJson());
  EXPECT_THAT(MoleculeModelConfig::FromJson(R"({"hidden": 30, "heads": 4})", "x/config.json").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("x/config.json: needs")));
  EXPECT_THAT(MoleculeModelConfig::FromJson(R"({"layers": "six"})", "x/config.json").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"layers\" has the wrong type")));
  EXPECT_THAT(MoleculeModelConfig::FromJson("[1", "x/config.json").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a JSON object")));
}

// Global batch of step s: 4 molecules of different sizes.
std::vector<MolGraph> Molecules(int s) {
  std::vector<MolGraph> out;
  for (int i = 0; i < 4; ++i) out.push_back(RandomGraph(5 + (i * 3 + s) % 7, 100 * s + i, true));
  return out;
}

Batch Of(const std::vector<MolGraph>& m, std::size_t begin, std::size_t n) {
  std::vector<const MolGraph*> g;
  for (std::size_t i = begin; i < begin + n; ++i) g.push_back(&m[i]);
  return MakeBatch(g);
}

constexpr int kSteps = 3;

class MoleculeEngineTest : public ::testing::TestWithParam<int> {};

// Every rank's loss is the mean over its own targets; with one target per molecule and the same
// count per rank the global mean is the mean of the ranks' losses, as one process computes it.
TEST_P(MoleculeEngineTest, TwoRanksMatchOneProcess) {
  const int stage = GetParam();
  std::vector<at::Tensor> want;
  double first_loss = 0, last_loss = 0;
  {
    MoleculeModel model(Small(true), 7);
    torch::optim::AdamW opt(model.parameters(), torch::optim::AdamWOptions(1e-2).weight_decay(0.01));
    for (int s = 0; s < kSteps; ++s) {
      opt.zero_grad();
      // The mean of the two ranks' losses, each over its own padded batch (padding changes the
      // rounding, and Adam magnifies rounding in near-zero gradients).
      at::Tensor loss = (model.Forward(Of(Molecules(s), 0, 2)) + model.Forward(Of(Molecules(s), 2, 2))) / 2;
      (s == 0 ? first_loss : last_loss) = loss.item<double>();
      loss.backward();
      opt.step();
    }
    for (const auto& p : model.parameters()) want.push_back(p.detach().clone());
  }
  const std::string json = absl::StrFormat(R"({
    "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 1, "gradient_clipping": 0,
    "optimizer": {"type": "AdamW", "params": {"lr": 0.01, "weight_decay": 0.01}},
    "zero_optimization": {"stage": %d, "stage3_param_persistence_threshold": 10, "reduce_bucket_size": 2000}})",
                                           stage);
  const absl::Status s = RunOnRanks(2, [&](Communicator& comm) -> absl::Status {
    AutoValues job;
    job.world_size = 2;
    ASSIGN_OR_RETURN(Config config, Config::FromJson(json, "model_test", job));
    std::shared_ptr<Communicator> borrowed(&comm, [](Communicator*) {});
    ASSIGN_OR_RETURN(auto engine, Engine::Create(std::make_shared<MoleculeModel>(Small(true), 7), config, borrowed));
    for (int step = 0; step < kSteps; ++step) {
      ASSIGN_OR_RETURN(at::Tensor loss, engine->Forward(Of(Molecules(step), 2 * comm.rank(), 2)));
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
  EXPECT_NE(first_loss, last_loss);
}

INSTANTIATE_TEST_SUITE_P(Stages, MoleculeEngineTest, ::testing::Values(0, 2, 3),
                         [](const auto& info) { return "stage" + std::to_string(info.param); });

}  // namespace
}  // namespace zt::science::molecule
