// Engine behaviour beyond the fp32 equivalence grid: the config options that change how
// gradients travel, mixed precision, the loss scaler across ranks, optimizer state size and
// the errors a user can hit.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <mutex>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/comm/local_group.h"
#include "core/engine/engine.h"
#include "core/engine/equivalence.h"
#include "core/engine/test_models.h"
#include "core/util/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt::testing {
namespace {

using ::testing::HasSubstr;

class EngineFeatures : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { at::set_num_threads(1); }
};

// Options that change how gradients and parameters travel but not the result.
TEST_F(EngineFeatures, TransportOptionsKeepTheUpdate) {
  const auto want = ReferenceParameters(Net::kMlp, 0.05, at::kCPU);
  struct Variant {
    int stage;
    std::string zero;
    std::string top;
    std::int64_t allgather_bucket_size = 300;
    bool overlap_comm = true;
  };
  const std::vector<Variant> variants = {
      {1, R"(, "reduce_scatter": false)", ""},  // all-reduce instead of reduce-to-owner
      {2, R"(, "reduce_scatter": false)", ""},
      {2, R"(, "allgather_partitions": false)", ""},  // broadcasts instead of all-gather
      {1, "", "", 1000000},                           // one all-gather
      {2, "", "", 300, false},                        // reduce after backward
      {0, "", R"(, "prescale_gradients": true)"},
      {1, "", R"(, "gradient_predivide_factor": 2.0)"},
      {2, "", R"(, "communication_data_type": "fp32")"},
  };
  for (const Variant& v : variants) {
    EquivalenceCase c{Net::kMlp, v.stage, 4, 1, 0.05};
    c.zero_extra = v.zero;
    c.extra_config = v.top;
    c.allgather_bucket_size = v.allgather_bucket_size;
    c.overlap_comm = v.overlap_comm;
    absl::Status s = TrainAndCompare(c, want, 1e-5);
    EXPECT_TRUE(s.ok()) << CaseName(c) << v.zero << v.top << ": " << s;
  }
}

TEST_F(EngineFeatures, SumAllReduceOpTrainsOnTheSummedLoss) {
  EquivalenceCase c{Net::kMlp, 1, 2, 1, 0.0};
  c.extra_config = R"(, "gradient_allreduce_op": "sum")";
  absl::Status s = TrainAndCompare(c, ReferenceParameters(Net::kMlp, 0.0, at::kCPU, /*loss_multiplier=*/2.0), 1e-5);
  EXPECT_TRUE(s.ok()) << s;
}

// Gradients travelling in bf16 are rounded to 2^-8 relative (grad_reducer_test bounds that
// per gradient).  Through Adam that stays within 2 x lr of fp32 training after 10 steps: a
// gradient element near zero can change sign under that rounding, and Adam's normalised step
// then moves the weight by up to lr in the other direction.
TEST_F(EngineFeatures, Bf16CommunicationStaysCloseToFp32) {
  EquivalenceCase c{Net::kMlp, 2, 4, 1, 0.0};
  c.extra_config = R"(, "communication_data_type": "bf16")";
  absl::Status s = TrainAndCompare(c, ReferenceParameters(Net::kMlp, 0.0, at::kCPU), 2e-2);
  EXPECT_TRUE(s.ok()) << s;
}

// bf16 training: parameters are bf16 copies of fp32 master weights.  N ranks match one rank
// training the whole global batch in bf16 to within 2 bf16 ulps of the largest weight:
// splitting the batch changes where bf16 gradients are rounded (by up to 2^-8 relative), Adam
// then moves a master weight by a small fraction of lr, which can flip the bf16 rounding of
// that weight by one ulp (twice, counting the reference).  One rank in bf16 stays within 0.05 of
// fp32 training.
TEST_F(EngineFeatures, Bf16RanksMatchOneRankWithinTwoUlps) {
  const auto fp32 = ReferenceParameters(Net::kBlock, 0.05, at::kCPU);
  for (int stage : {0, 1, 2, 3}) {
    EquivalenceCase one{Net::kBlock, stage, 1, 1, 0.05};
    one.extra_config = R"(, "bf16": {"enabled": true})";
    auto single = TrainParameters(one);
    ASSERT_TRUE(single.ok()) << single.status();
    double max_abs = 0;
    for (const auto& p : *single) max_abs = std::max(max_abs, p.abs().max().item<double>());
    const double tolerance = 2 * std::ldexp(1.0, static_cast<int>(std::floor(std::log2(max_abs))) - 7);
    ASSERT_TRUE(TrainAndCompare(one, fp32, 0.05).ok()) << "bf16 on one rank strays from fp32";
    for (int world : {2, 4}) {
      for (int gas : {1, 3}) {
        EquivalenceCase c{Net::kBlock, stage, world, gas, 0.05};
        c.extra_config = one.extra_config;
        absl::Status s = TrainAndCompare(c, *single, tolerance);
        EXPECT_TRUE(s.ok()) << CaseName(c) << ": " << s;
      }
    }
  }
}

// A model whose loss becomes inf on one rank at one step (an fp16 overflow).
class PoisonAt : public Model {
 public:
  PoisonAt(std::shared_ptr<Model> inner, int rank, std::vector<int> steps)
      : inner_(register_module("inner", inner)), rank_(rank), steps_(std::move(steps)) {}
  void set_rank(int r) { me_ = r; }
  at::Tensor Forward(const Batch& b) override {
    at::Tensor loss = inner_->Forward(b);
    const int call = calls_++;
    for (int s : steps_) {
      if (me_ == rank_ && call == s) return loss * std::numeric_limits<float>::infinity();
    }
    return loss;
  }

 private:
  std::shared_ptr<Model> inner_;
  int rank_;
  std::vector<int> steps_;
  int me_ = -1;
  int calls_ = 0;
};

struct RankResult {
  std::int64_t skipped = 0;
  double scale = 0;
  double checksum = 0;
  std::int64_t sched_iter = 0;
};

std::vector<RankResult> TrainFp16(int stage, int world, int hysteresis, std::vector<int> poison_steps, int steps,
                                  const std::string& zero_extra = "") {
  std::vector<RankResult> out(world);
  absl::Status s = RunOnRanks(world, [&](Communicator& comm) -> absl::Status {
    AutoValues job;
    job.world_size = world;
    const std::string json = absl::StrCat(R"({"train_micro_batch_size_per_gpu": 2, "gradient_clipping": 1.0,
      "fp16": {"enabled": true, "initial_scale_power": 8, "hysteresis": )",
                                          hysteresis, R"(, "loss_scale_window": 1000},
      "optimizer": {"type": "Adam", "params": {"lr": 1e-3}},
      "scheduler": {"type": "WarmupLR", "params": {"warmup_num_steps": 5, "warmup_max_lr": 1e-3}},
      "zero_optimization": {"stage": )",
                                          stage, zero_extra, "}}");
    ASSIGN_OR_RETURN(Config config, Config::FromJson(json, "fp16 test", job));
    auto model = std::make_shared<PoisonAt>(MakeMlp(5, 8, 16, 4), /*rank=*/world - 1, poison_steps);
    model->set_rank(comm.rank());
    std::shared_ptr<Communicator> borrowed(&comm, [](Communicator*) {});
    ASSIGN_OR_RETURN(auto engine, Engine::Create(model, config, borrowed));
    for (int step = 0; step < steps; ++step) {
      Batch b = Slice(MlpBatch(77 + step, 2 * world, 8, 4), 2 * comm.rank(), 2);
      ASSIGN_OR_RETURN(at::Tensor loss, engine->Forward(b));
      RETURN_IF_ERROR(engine->Backward(loss));
      RETURN_IF_ERROR(engine->Step());
    }
    double sum = 0;
    for (const auto& p : engine->module().parameters()) sum += p.detach().to(at::kDouble).abs().sum().item<double>();
    out[comm.rank()] = {engine->skipped_steps(), engine->loss_scale(), sum, 0};
    return absl::OkStatus();
  });
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

TEST_F(EngineFeatures, Fp16OverflowOnOneRankSkipsTheStepOnAll) {
  for (int stage : {0, 1, 2}) {
    auto r = TrainFp16(stage, 2, /*hysteresis=*/1, {2}, 5);
    for (int rank = 0; rank < 2; ++rank) {
      EXPECT_EQ(r[rank].skipped, 1) << "stage " << stage << " rank " << rank;
      EXPECT_EQ(r[rank].scale, 128.0) << "stage " << stage << " rank " << rank;  // 2^8 halved once
    }
    EXPECT_EQ(r[0].checksum, r[1].checksum) << "stage " << stage << ": ranks diverged";
  }
}

// With the optimizer state offloaded, the overflow check still sees every gradient (it runs
// before anything travels to the host) and the applied steps match the device optimizer's.
TEST_F(EngineFeatures, Fp16OverflowWithOffloadSkipsLikeWithout) {
  for (int stage : {1, 2, 3}) {
    auto offloaded = TrainFp16(stage, 2, /*hysteresis=*/1, {2}, 5, R"(, "offload_optimizer": {"device": "cpu"})");
    auto device = TrainFp16(stage, 2, /*hysteresis=*/1, {2}, 5);
    for (int rank = 0; rank < 2; ++rank) {
      EXPECT_EQ(offloaded[rank].skipped, 1) << "stage " << stage << " rank " << rank;
      EXPECT_EQ(offloaded[rank].scale, 128.0) << "stage " << stage << " rank " << rank;
      // fp16 weights: CPU Adam's fused multiply-adds may round a few of them one ulp apart.
      EXPECT_NEAR(offloaded[rank].checksum, device[rank].checksum, 1e-3 * device[rank].checksum)
          << "stage " << stage << " rank " << rank;
    }
  }
}

TEST_F(EngineFeatures, Fp16HysteresisAbsorbsTheFirstOverflow) {
  auto once = TrainFp16(2, 2, /*hysteresis=*/2, {1}, 4);
  EXPECT_EQ(once[0].skipped, 1);
  EXPECT_EQ(once[0].scale, 256.0);  // absorbed by hysteresis
  auto twice = TrainFp16(2, 2, /*hysteresis=*/2, {1, 3}, 5);
  EXPECT_EQ(twice[1].skipped, 2);
  EXPECT_EQ(twice[1].scale, 128.0);
}

TEST_F(EngineFeatures, OptimizerStateIsCeilOfParamsOverRanksPerRank) {
  for (int stage : {0, 1, 2}) {
    absl::Status s = RunOnRanks(3, [&](Communicator& comm) -> absl::Status {
      AutoValues job;
      job.world_size = 3;
      ASSIGN_OR_RETURN(Config config, Config::FromJson(absl::StrCat(R"({"train_micro_batch_size_per_gpu": 1,
          "optimizer": {"type": "AdamW"}, "zero_optimization": {"stage": )",
                                                                    stage, "}}"),
                                                       "state size", job));
      std::shared_ptr<Communicator> borrowed(&comm, [](Communicator*) {});
      ASSIGN_OR_RETURN(auto engine, Engine::Create(MakeMlp(1, 8, 16, 4), config, borrowed));
      const std::int64_t p = engine->layout().total();  // 8*16+16 + 16*4+4 = 212
      const std::int64_t want = stage == 0 ? engine->layout().padded() : (p + 2) / 3;
      if (p != 212 || engine->device_optimizer()->exp_avg().numel() != want ||
          engine->device_optimizer()->exp_avg_sq().numel() != want ||
          engine->device_optimizer()->master().numel() != want) {
        return absl::InternalError(absl::StrCat("stage ", stage, ": P=", p, " state ",
                                                engine->device_optimizer()->exp_avg().numel(), " want ", want));
      }
      return absl::OkStatus();
    });
    EXPECT_TRUE(s.ok()) << s;
  }
}

TEST_F(EngineFeatures, OffloadedOptimizerStateIsInHostMemoryOnly) {
  for (const char* zero : {R"("stage": 2, "offload_optimizer": {"device": "cpu"})",
                           R"("stage": 3, "offload_optimizer": {"device": "cpu", "ratio": 0.25})"}) {
    absl::Status s = RunOnRanks(2, [&](Communicator& comm) -> absl::Status {
      AutoValues job;
      job.world_size = 2;
      ASSIGN_OR_RETURN(Config config, Config::FromJson(absl::StrCat(R"({"train_micro_batch_size_per_gpu": 1,
          "optimizer": {"type": "AdamW"}, "zero_optimization": {)",
                                                                    zero, "}}"),
                                                       "offload", job));
      std::shared_ptr<Communicator> borrowed(&comm, [](Communicator*) {});
      ASSIGN_OR_RETURN(auto engine, Engine::Create(MakeMlp(1, 8, 16, 4), config, borrowed));
      const HostAdam* host = engine->host_optimizer();
      const AdamShard* device = engine->device_optimizer();
      if (host == nullptr) return absl::InternalError("no host optimizer");
      if (config.zero_optimization.stage == 2) {
        const std::int64_t shard = (212 + 1) / 2;
        if (device != nullptr || engine->host_elems() != shard || host->exp_avg().numel() != shard) {
          return absl::InternalError(absl::StrCat("stage 2: host ", host->exp_avg().numel(), " of ", shard));
        }
        return absl::OkStatus();
      }
      // Stage 3, ratio 0.25: the first quarter of this rank's partition on the host.
      const std::int64_t n = engine->stage3()->params().numel();
      const std::int64_t want = std::llround(0.25 * static_cast<double>(n));
      if (device == nullptr || engine->host_elems() != want || host->exp_avg_sq().numel() != want ||
          device->exp_avg_sq().numel() != n - want || engine->stage3()->master().defined()) {
        return absl::InternalError(absl::StrCat("stage 3: ", engine->host_elems(), " on the host of ", n));
      }
      return absl::OkStatus();
    });
    EXPECT_TRUE(s.ok()) << zero << ": " << s;
  }
}

TEST_F(EngineFeatures, LrScheduleAdvancesPerAppliedStep) {
  absl::Status s = RunOnRanks(1, [&](Communicator& comm) -> absl::Status {
    ASSIGN_OR_RETURN(Config config, Config::FromJson(R"({"train_micro_batch_size_per_gpu": 4,
        "gradient_accumulation_steps": 2, "optimizer": {"type": "AdamW", "params": {"lr": 0.1}},
        "scheduler": {"type": "WarmupLR", "params": {"warmup_num_steps": 4, "warmup_type": "linear"}}})",
                                                     "sched", {}));
    std::shared_ptr<Communicator> borrowed(&comm, [](Communicator*) {});
    ASSIGN_OR_RETURN(auto engine, Engine::Create(MakeMlp(1, 8, 16, 4), config, borrowed));
    std::vector<double> lrs;
    for (int micro = 0; micro < 8; ++micro) {
      lrs.push_back(engine->lr());
      ASSIGN_OR_RETURN(at::Tensor loss, engine->Forward(MlpBatch(micro, 4, 8, 4)));
      RETURN_IF_ERROR(engine->Backward(loss));
      RETURN_IF_ERROR(engine->Step());
    }
    // WarmupLR linear over 4 steps from 0 to 0.1: lr per update 0, 0, 0.025, 0.05 (DeepSpeed's
    // first two updates both run at warmup_min_lr); constant within an accumulation.
    const std::vector<double> want = {0, 0, 0, 0, 0.025, 0.025, 0.05, 0.05};
    for (int i = 0; i < 8; ++i) {
      if (std::fabs(lrs[i] - want[i]) > 1e-12) return absl::InternalError(absl::StrCat("micro ", i, ": ", lrs[i]));
    }
    return engine->global_steps() == 4 ? absl::OkStatus() : absl::InternalError("global steps");
  });
  EXPECT_TRUE(s.ok()) << s;
}

TEST_F(EngineFeatures, RanksWithDifferentModelsFailInsteadOfHanging) {
  absl::Status s = RunOnRanks(2, [&](Communicator& comm) -> absl::Status {
    AutoValues job;
    job.world_size = 2;
    ASSIGN_OR_RETURN(Config config,
                     Config::FromJson(R"({"train_batch_size": 2, "optimizer": {"type": "AdamW"}})", "mismatch", job));
    std::shared_ptr<Communicator> borrowed(&comm, [](Communicator*) {});
    auto engine = Engine::Create(MakeMlp(1, 8, comm.rank() == 0 ? 16 : 17, 4), config, borrowed);
    if (engine.ok()) return absl::InternalError("created");
    if (engine.status().code() != absl::StatusCode::kFailedPrecondition ||
        !absl::StrContains(engine.status().message(), "model parameters differ across ranks")) {
      return absl::InternalError(std::string(engine.status().message()));
    }
    return absl::OkStatus();
  });
  EXPECT_TRUE(s.ok()) << s;
}

TEST_F(EngineFeatures, MisuseIsAnErrorNotACrash) {
  absl::Status s = RunOnRanks(1, [&](Communicator& comm) -> absl::Status {
    std::shared_ptr<Communicator> borrowed(&comm, [](Communicator*) {});
    ASSIGN_OR_RETURN(Config no_opt, Config::FromJson(R"({"train_batch_size": 2})", "no optimizer", {}));
    auto e1 = Engine::Create(MakeMlp(1, 8, 16, 4), no_opt, borrowed);
    if (e1.status().code() != absl::StatusCode::kInvalidArgument) return absl::InternalError("no optimizer");
    ASSIGN_OR_RETURN(Config offload, Config::FromJson(R"({"train_batch_size": 2, "optimizer": {"type": "AdamW"},
        "zero_optimization": {"stage": 3, "offload_param": {"device": "nvme", "nvme_path": "/tmp"}}})",
                                                      "offload", {}));
    auto e2 = Engine::Create(MakeMlp(1, 8, 16, 4), offload, borrowed);
    if (e2.status().code() != absl::StatusCode::kUnimplemented) return absl::InternalError(e2.status().ToString());
    ASSIGN_OR_RETURN(Config ok,
                     Config::FromJson(R"({"train_batch_size": 2, "optimizer": {"type": "AdamW"}})", "ok", {}));
    ASSIGN_OR_RETURN(auto engine, Engine::Create(MakeMlp(1, 8, 16, 4), ok, borrowed));
    if (engine->Step().code() != absl::StatusCode::kFailedPrecondition) return absl::InternalError("step first");
    ASSIGN_OR_RETURN(at::Tensor loss, engine->Forward(MlpBatch(1, 2, 8, 4)));
    if (engine->Backward(loss.detach()).code() != absl::StatusCode::kInvalidArgument) {
      return absl::InternalError("detached loss");
    }
    auto bad = engine->Forward({{"x", at::zeros({2, 3})}, {"y", at::zeros({2, 4})}});  // wrong width
    if (bad.ok()) return absl::InternalError("bad input accepted");
    return absl::OkStatus();
  });
  EXPECT_TRUE(s.ok()) << s;
}

}  // namespace
}  // namespace zt::testing
