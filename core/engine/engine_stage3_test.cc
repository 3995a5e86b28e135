// ZeRO stage 3 beyond the equivalence grid (engine_test.cc): memory held per rank, building
// sharded (ZeroInit), data-dependent control flow across ranks, scoped full parameters, the
// fetch schedule at work, and saving consolidated weights.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adamw.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/comm/local_group.h"
#include "core/engine/engine.h"
#include "core/engine/test_models.h"
#include "core/util/status_macros.h"
#include "core/zero/unit.h"
#include "core/zero/zero_init.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt::testing {
namespace {

using ::testing::HasSubstr;

class Stage3Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { at::set_num_threads(1); }
};

std::shared_ptr<Communicator> Borrow(Communicator& comm) {
  return {&comm, [](Communicator*) {}};
}

absl::StatusOr<Config> Stage3Config(int world, const std::string& extra = "", int persistence_threshold = 10) {
  AutoValues job;
  job.world_size = world;
  return Config::FromJson(absl::StrCat(R"({"train_micro_batch_size_per_gpu": 2, "gradient_clipping": 0.0,
      "optimizer": {"type": "AdamW", "params": {"lr": 0.01}},
      "zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": )",
                                       persistence_threshold, extra, "}}"),
                          "stage-3 test", job);
}

absl::Status Expect(bool ok, const std::string& what) { return ok ? absl::OkStatus() : absl::InternalError(what); }

// Per-rank parameter bytes: this rank's shards of every unit + the gathered units + the
// persistent parameters (whole, plus their shard in the optimizer's flat view).
TEST_F(Stage3Test, RankHoldsItsShardsPlusLiveUnitsPlusPersistentParameters) {
  constexpr int kWorld = 4;
  absl::Status s = RunOnRanks(kWorld, [&](Communicator& comm) -> absl::Status {
    ASSIGN_OR_RETURN(Config config, Stage3Config(kWorld));
    auto model = MakeTransformerStack(3, 3, 32, 2, 128);  // 6 units
    ASSIGN_OR_RETURN(auto engine, Engine::Create(model, config, Borrow(comm)));
    const Stage3& s3 = *engine->stage3();
    const std::int64_t p = s3.partitioned_elems(), q = s3.persistent_elems();
    std::int64_t total = 0;
    for (const auto& t : model->parameters()) total += t.numel();
    RETURN_IF_ERROR(Expect(p + q == total, "every parameter is partitioned or persistent"));
    RETURN_IF_ERROR(Expect(q < p / 20, absl::StrCat("persistent ", q, " of ", total)));
    // Nothing gathered: P/N (+ at most one padding element per unit) + Q + Q/N, in fp32.
    const std::int64_t idle = engine->ParameterBytes() / 4;
    const std::int64_t low = p / kWorld + q, high = p / kWorld + s3.num_units() + q + q / kWorld + 1;
    RETURN_IF_ERROR(Expect(idle >= low && idle <= high, absl::StrCat("idle elements ", idle, " not in [", low, ", ",
                                                                     high, "] for P=", p, " Q=", q)));
    RETURN_IF_ERROR(Expect(idle < total / 2, "a rank holds far less than the model"));
    // Train a step: afterwards everything is released again.
    ASSIGN_OR_RETURN(at::Tensor loss,
                     engine->Forward(Slice(TransformerBatch(1, 2 * kWorld, 4, 32), 2 * comm.rank(), 2)));
    RETURN_IF_ERROR(engine->Backward(loss));
    RETURN_IF_ERROR(engine->Step());
    RETURN_IF_ERROR(Expect(engine->ParameterBytes() / 4 == idle, "units stay gathered after the step"));
    // In scope: every unit gathered.
    ASSIGN_OR_RETURN(auto scope, engine->GatherParameters());
    std::int64_t gathered = 0;
    for (int u = 0; u < s3.num_units(); ++u) gathered += s3.gathered(u);
    RETURN_IF_ERROR(Expect(gathered == s3.num_units(), "all units gathered in scope"));
    const std::int64_t full = engine->ParameterBytes() / 4;
    RETURN_IF_ERROR(Expect(full >= idle + p, absl::StrCat("in scope ", full, " < ", idle, " + ", p)));
    RETURN_IF_ERROR(scope->Release());
    return engine->Shutdown();
  });
  EXPECT_TRUE(s.ok()) << s;
}

// A CPU allocator that counts live and peak bytes (LibTorch's CPU allocations all go through it).
class CountingAllocator : public c10::Allocator {
 public:
  explicit CountingAllocator(c10::Allocator* base) : base_(base) {}
  c10::DataPtr allocate(std::size_t n) override {
    c10::DataPtr inner = base_->allocate(n);
    void* data = inner.get();
    auto* ctx = new Ctx{std::move(inner), n, this};
    const std::int64_t now = live_.fetch_add(static_cast<std::int64_t>(n)) + static_cast<std::int64_t>(n);
    std::int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    return {data, ctx, &Delete, c10::Device(c10::kCPU)};
  }
  void copy_data(void* dest, const void* src, std::size_t count) const override { std::memcpy(dest, src, count); }
  std::int64_t live() const { return live_.load(); }
  std::int64_t peak() const { return peak_.load(); }
  void ResetPeak() { peak_.store(live_.load()); }

 private:
  struct Ctx {
    c10::DataPtr inner;
    std::size_t n;
    CountingAllocator* owner;
  };
  static void Delete(void* p) {
    auto* ctx = static_cast<Ctx*>(p);
    ctx->owner->live_.fetch_sub(static_cast<std::int64_t>(ctx->n));
    delete ctx;
  }
  c10::Allocator* base_;
  std::atomic<std::int64_t> live_{0};
  std::atomic<std::int64_t> peak_{0};
};

class BigModel : public Model {
 public:
  BigModel(ZeroInit* init, int layers, int dim) {
    for (int i = 0; i < layers; ++i) {
      std::shared_ptr<Unit<torch::nn::LinearImpl>> unit;
      if (init != nullptr) {
        auto built = init->Build<torch::nn::LinearImpl>(dim, dim);
        if (!built.ok()) throw StatusException(built.status());
        unit = *std::move(built);
      } else {
        unit = MakeUnit(std::make_shared<torch::nn::LinearImpl>(dim, dim));
      }
      layers_.push_back(register_module("layer" + std::to_string(i), unit));
    }
  }
  at::Tensor Forward(const Batch& b) override {
    at::Tensor x = b.at("x");
    for (auto& l : layers_) x = at::tanh(l->forward(x));
    return x.pow(2).mean();
  }

 private:
  std::vector<std::shared_ptr<Unit<torch::nn::LinearImpl>>> layers_;
};

// Building with ZeroInit: the memory of the whole model is never there at once.  Two ranks
// build 16 units of 256x256 (263 KB each) concurrently; at the end each holds half of every
// unit.  The peak over that final size is a few units per rank (a unit's parameters, its flat
// buffer, the broadcast), where building the model whole would add all 16 on each rank.
TEST_F(Stage3Test, ZeroInitConstructionPeaksAtAboutOneUnit) {
  constexpr int kWorld = 2, kLayers = 16, kDim = 256;
  const std::int64_t unit_bytes = (kDim * kDim + kDim) * 4;
  CountingAllocator counting(c10::GetDefaultCPUAllocator());
  c10::Allocator* previous = c10::GetCPUAllocator();
  c10::SetCPUAllocator(&counting, /*priority=*/100);
  std::mutex mu;
  std::vector<std::shared_ptr<Model>> models(kWorld);
  std::int64_t before = 0;
  absl::Status s = RunOnRanks(kWorld, [&](Communicator& comm) -> absl::Status {
    ASSIGN_OR_RETURN(Config config, Stage3Config(kWorld, "", /*persistence_threshold=*/1000));
    ASSIGN_OR_RETURN(ZeroInit init, ZeroInit::Create(config, comm, at::Device(at::kCPU)));
    RETURN_IF_ERROR(comm.Barrier());
    if (comm.rank() == 0) {
      before = counting.live();
      counting.ResetPeak();
    }
    RETURN_IF_ERROR(comm.Barrier());
    auto model = CallTorch("build", [&] { return std::make_shared<BigModel>(&init, kLayers, kDim); });
    if (!model.ok()) return model.status();
    RETURN_IF_ERROR(comm.Barrier());
    std::lock_guard<std::mutex> lock(mu);
    models[comm.rank()] = *model;
    return absl::OkStatus();
  });
  const std::int64_t after = counting.live() - before, peak = counting.peak() - before;
  models.clear();
  c10::SetCPUAllocator(previous, /*priority=*/100);
  ASSERT_TRUE(s.ok()) << s;
  const std::int64_t model_bytes = kLayers * unit_bytes;
  std::printf("ZeroInit, 2 ranks x %d units of %lld bytes (model %lld): resident after %lld, peak %lld (+%.2f units)\n",
              kLayers, static_cast<long long>(unit_bytes), static_cast<long long>(model_bytes),
              static_cast<long long>(after), static_cast<long long>(peak),
              static_cast<double>(peak - after) / unit_bytes);
  // What stays: both ranks' halves of the weights (the whole model once), the small biases.
  EXPECT_LT(after, model_bytes * 11 / 10) << "after " << after;
  EXPECT_LE(peak - after, 4 * kWorld * unit_bytes) << "peak " << peak << " after " << after;
  EXPECT_LT(peak, after + model_bytes) << "construction held a whole model somewhere";
}

// Ranks whose forward runs a unit a different number of times (generation of different
// lengths) stay matched without any flag, and the step after them is still exact.
class Looper : public Model {
 public:
  explicit Looper(int dim)
      : cell_(register_module("cell", MakeUnit(std::make_shared<torch::nn::LinearImpl>(dim, dim)))) {}
  at::Tensor Run(at::Tensor x, int steps) {
    for (int i = 0; i < steps; ++i) x = at::tanh(cell_->forward(x));
    return x;
  }
  at::Tensor Forward(const Batch& b) override {
    return Run(b.at("x"), static_cast<int>(b.at("steps").item<int64_t>())).pow(2).mean();
  }

 private:
  std::shared_ptr<Unit<torch::nn::LinearImpl>> cell_;
};

// Ranks are threads of one process sharing LibTorch's default generator: seeding and drawing
// must not interleave with another rank's, or rank 0 starts from other values than the
// reference (seen once on a 32-thread host).
std::shared_ptr<Looper> MakeLooper() {
  static std::mutex seed_mutex;
  std::lock_guard<std::mutex> lock(seed_mutex);
  at::manual_seed(5);
  return std::make_shared<Looper>(16);
}

TEST_F(Stage3Test, DivergentForwardsOnRanksFinishWithCorrectResults) {
  at::Tensor x0 = at::randn({2, 16}), x1 = at::randn({2, 16});
  // Reference: one process runs both ranks' work (no grad: generation), then one training step
  // on the mean of both ranks' losses.
  auto ref = MakeLooper();
  at::Tensor want0, want1;
  {
    at::NoGradGuard g;
    want0 = ref->Run(x0, 3);
    want1 = ref->Run(x1, 7);
  }
  torch::optim::AdamW opt(ref->parameters(), torch::optim::AdamWOptions(0.01).weight_decay(0));  // DeepSpeed's default
  ((ref->Run(x0, 3).pow(2).mean() + ref->Run(x1, 7).pow(2).mean()) / 2).backward();
  opt.step();
  std::vector<at::Tensor> want_params;
  for (const auto& p : ref->parameters()) want_params.push_back(p.detach().clone());

  absl::Status s = RunOnRanks(2, [&](Communicator& comm) -> absl::Status {
    ASSIGN_OR_RETURN(Config config, Stage3Config(2));
    auto model = MakeLooper();
    ASSIGN_OR_RETURN(auto engine, Engine::Create(model, config, Borrow(comm)));
    const int steps = comm.rank() == 0 ? 3 : 7;
    const at::Tensor& x = comm.rank() == 0 ? x0 : x1;
    at::Tensor out;
    RETURN_IF_ERROR(CallTorch("generate", [&] {
      at::NoGradGuard g;
      out = model->Run(x, steps);
    }));
    RETURN_IF_ERROR(Expect(at::allclose(out, comm.rank() == 0 ? want0 : want1, 1e-5, 1e-6), "generation output"));
    // Training with divergent backward graphs: 3 uses of the unit on one rank, 7 on the other.
    ASSIGN_OR_RETURN(at::Tensor loss, engine->Forward({{"x", x}, {"steps", at::tensor(static_cast<int64_t>(steps))}}));
    RETURN_IF_ERROR(engine->Backward(loss));
    RETURN_IF_ERROR(engine->Step());
    ASSIGN_OR_RETURN(auto scope, engine->GatherParameters());
    auto params = model->parameters();
    for (std::size_t i = 0; i < params.size(); ++i) {
      const double d = (params[i].detach() - want_params[i]).abs().max().item<double>();
      RETURN_IF_ERROR(Expect(d < 1e-5, absl::StrCat("parameter ", i, " differs by ", d)));
    }
    RETURN_IF_ERROR(scope->Release());
    return engine->Shutdown();
  });
  EXPECT_TRUE(s.ok()) << s;
}

TEST_F(Stage3Test, RanksInDifferentEngineCallsGetAnErrorNotAHang) {
  absl::Status s = RunOnRanks(2, [&](Communicator& comm) -> absl::Status {
    ASSIGN_OR_RETURN(Config config, Stage3Config(2));
    ASSIGN_OR_RETURN(auto engine, Engine::Create(MakeLooper(), config, Borrow(comm)));
    absl::Status st = comm.rank() == 0 ? engine->Barrier() : engine->Shutdown();
    RETURN_IF_ERROR(Expect(st.code() == absl::StatusCode::kFailedPrecondition, st.ToString()));
    return Expect(absl::StrContains(st.message(), "every rank must make the same engine calls"), st.ToString());
  });
  EXPECT_TRUE(s.ok()) << s;
}

TEST_F(Stage3Test, ModifiedParametersInScopeReachEveryRank) {
  absl::Status s = RunOnRanks(2, [&](Communicator& comm) -> absl::Status {
    ASSIGN_OR_RETURN(Config config, Stage3Config(2));
    auto model = MakeMlp(3, 8, 16, 4);
    ASSIGN_OR_RETURN(auto engine, Engine::Create(model, config, Borrow(comm)));
    {
      ASSIGN_OR_RETURN(auto scope, engine->GatherParameters(/*modifier_rank=*/0));
      if (comm.rank() == 0) {
        at::NoGradGuard g;
        for (auto& p : model->parameters()) p.fill_(0.5);
      }
      RETURN_IF_ERROR(scope->Release());
    }
    ASSIGN_OR_RETURN(auto read, engine->GatherParameters());
    for (const auto& p : model->parameters()) RETURN_IF_ERROR(Expect(p.eq(0.5).all().item<bool>(), "not 0.5"));
    RETURN_IF_ERROR(read->Release());
    // The optimizer's master weights took the new values too (shards end with zero padding).
    const at::Tensor& m = engine->stage3()->master();
    return Expect((m.eq(0.5) | m.eq(0)).all().item<bool>() && m.eq(0.5).sum().item<int64_t>() > 0, "master weights");
  });
  EXPECT_TRUE(s.ok()) << s;
}

// Stack of 4 blocks = 8 units of 4,192 (attention) and 8,416 (feedforward) elements, trained
// for 3 steps; `params`, when given, receives the trained parameters.
absl::StatusOr<Stage3Stats> TrainStack(Communicator& comm, const std::string& schedule,
                                       std::vector<at::Tensor>* params = nullptr) {
  ASSIGN_OR_RETURN(Config config, Stage3Config(2, schedule));
  auto model = MakeTransformerStack(7, 4, 32, 2, 128);
  ASSIGN_OR_RETURN(auto engine, Engine::Create(model, config, Borrow(comm)));
  for (int step = 0; step < 3; ++step) {
    ASSIGN_OR_RETURN(at::Tensor loss, engine->Forward(Slice(TransformerBatch(step, 4, 4, 32), 2 * comm.rank(), 2)));
    RETURN_IF_ERROR(engine->Backward(loss));
    RETURN_IF_ERROR(engine->Step());
  }
  if (engine->stage3()->schedule().trace(FetchSchedule::kForward).size() != 8) {
    return absl::InternalError("the forward trace is not the 8 units in order");
  }
  if (params != nullptr) {
    ASSIGN_OR_RETURN(auto scope, engine->GatherParameters());
    for (const auto& p : model->parameters()) params->push_back(p.detach().clone());
    RETURN_IF_ERROR(scope->Release());
  }
  Stage3Stats stats = engine->stage3()->stats();
  RETURN_IF_ERROR(engine->Shutdown());
  return stats;
}

TEST_F(Stage3Test, PrefetchBatchesGathersAndTheLiveCapHolds) {
  absl::Status s = RunOnRanks(2, [&](Communicator& comm) -> absl::Status {
    ASSIGN_OR_RETURN(Stage3Stats lone, TrainStack(comm, R"(, "stage3_prefetch_bucket_size": 0,
        "stage3_max_reuse_distance": 0)"));
    ASSIGN_OR_RETURN(Stage3Stats ahead, TrainStack(comm, R"(, "stage3_prefetch_bucket_size": 20000,
        "stage3_max_live_parameters": 30000, "stage3_max_reuse_distance": 0)"));
    RETURN_IF_ERROR(Expect(ahead.rounds < lone.rounds, absl::StrCat("prefetch does not batch gathers: ", ahead.rounds,
                                                                    " rounds vs ", lone.rounds)));
    RETURN_IF_ERROR(Expect(ahead.peak_live_elems > lone.peak_live_elems, "nothing was prefetched"));
    return Expect(ahead.peak_live_elems <= 30000 + 8416,
                  absl::StrCat("peak live ", ahead.peak_live_elems, " over the cap plus the needed unit"));
  });
  EXPECT_TRUE(s.ok()) << s;
}

// overlap_comm leaves reduce-scatters running behind the backward and folds them in later, in
// the same order: the same bits as waiting for each at once.
TEST_F(Stage3Test, OverlappedReduceScattersGiveTheSameParameters) {
  absl::Status s = RunOnRanks(2, [&](Communicator& comm) -> absl::Status {
    std::vector<at::Tensor> waited, overlapped;
    ASSIGN_OR_RETURN(Stage3Stats off, TrainStack(comm, R"(, "overlap_comm": false)", &waited));
    ASSIGN_OR_RETURN(Stage3Stats on, TrainStack(comm, R"(, "overlap_comm": true)", &overlapped));
    RETURN_IF_ERROR(Expect(off.peak_reduces_in_flight == 1,
                           absl::StrCat("overlap_comm false left ", off.peak_reduces_in_flight, " in flight")));
    RETURN_IF_ERROR(Expect(on.peak_reduces_in_flight > 1, "overlap_comm true never had two reduce-scatters in flight"));
    RETURN_IF_ERROR(Expect(waited.size() == overlapped.size() && !waited.empty(), "parameter lists differ"));
    for (std::size_t i = 0; i < waited.size(); ++i) {
      RETURN_IF_ERROR(Expect(at::equal(waited[i], overlapped[i]), absl::StrCat("parameter ", i, " differs")));
    }
    return absl::OkStatus();
  });
  EXPECT_TRUE(s.ok()) << s;
}

TEST_F(Stage3Test, ConsolidatedWeightsNeedTheGatherOnSaveFlag) {
  absl::Status s = RunOnRanks(2, [&](Communicator& comm) -> absl::Status {
    ASSIGN_OR_RETURN(Config off, Stage3Config(2));
    auto model = MakeMlp(3, 8, 16, 4);
    ASSIGN_OR_RETURN(auto engine, Engine::Create(model, off, Borrow(comm)));
    auto refused = engine->ConsolidatedStateDict();
    RETURN_IF_ERROR(
        Expect(refused.status().code() == absl::StatusCode::kFailedPrecondition &&
                   absl::StrContains(refused.status().message(), "stage3_gather_16bit_weights_on_model_save"),
               refused.status().ToString()));
    ASSIGN_OR_RETURN(Config on, Stage3Config(2, R"(, "stage3_gather_16bit_weights_on_model_save": true)"));
    auto model2 = MakeMlp(3, 8, 16, 4);
    ASSIGN_OR_RETURN(auto engine2, Engine::Create(model2, on, Borrow(comm)));
    ASSIGN_OR_RETURN(auto weights, engine2->ConsolidatedStateDict());
    RETURN_IF_ERROR(Expect(weights.size() == 4, absl::StrCat(weights.size(), " tensors")));
    RETURN_IF_ERROR(Expect(weights.at("fc1.module.weight").sizes() == at::IntArrayRef({16, 8}), "shape"));
    auto fresh = MakeMlp(3, 8, 16, 4);
    RETURN_IF_ERROR(
        Expect(at::equal(weights.at("fc1.module.weight"), fresh->named_parameters()["fc1.module.weight"]), "values"));
    RETURN_IF_ERROR(engine->Shutdown());
    return engine2->Shutdown();
  });
  EXPECT_TRUE(s.ok()) << s;
}

}  // namespace
}  // namespace zt::testing
