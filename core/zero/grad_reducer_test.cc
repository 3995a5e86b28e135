// GradReducer in isolation: parameters are plain leaf tensors and the loss is sum(w_i * x_i),
// so each rank's gradient is exactly its x_i.
#include "core/zero/grad_reducer.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "core/comm/local_group.h"
#include "core/util/status_macros.h"
#include "gtest/gtest.h"

namespace zt {
namespace {

const std::vector<std::int64_t> kSizes = {5, 12, 1, 30, 7};  // 55 elements

struct Params {
  std::vector<at::Tensor> params;
  FlatLayout layout;
};

Params MakeParams(int world, at::ScalarType dtype = at::kFloat) {
  Params s;
  for (std::int64_t n : kSizes) s.params.push_back(at::zeros({n}, dtype).set_requires_grad(true));
  s.layout = FlatLayout::Make(kSizes, world);
  return s;
}

// Rank r's gradient for parameter i: (r + 1) * (i + 1) + position / 100.
at::Tensor Input(int rank, std::size_t i, at::ScalarType dtype = at::kFloat) {
  return ((rank + 1.0) * (i + 1.0) + at::arange(kSizes[i], at::kDouble) / 100.0).to(dtype);
}

// What the averaged flat gradient must hold: mean over ranks of the inputs.
at::Tensor ExpectedMean(int world, const FlatLayout& layout) {
  at::Tensor flat = at::zeros({layout.padded()}, at::kDouble);
  for (int r = 0; r < world; ++r) {
    for (std::size_t i = 0; i < kSizes.size(); ++i) {
      flat.narrow(0, layout.param(i).begin, kSizes[i]).add_(Input(r, i, at::kDouble) / world);
    }
  }
  return flat;
}

void Backward(const std::vector<at::Tensor>& params, int rank, std::vector<bool> use = {}) {
  at::Tensor loss = at::zeros({}, params[0].options().requires_grad(false));
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (!use.empty() && !use[i]) continue;
    loss = loss + (params[i] * Input(rank, i, params[i].scalar_type())).sum();
  }
  loss.backward();
}

absl::Status Near(const at::Tensor& got, const at::Tensor& want, double tol, const std::string& what) {
  const double d = (got.to(at::kDouble) - want).abs().max().item<double>();
  if (d > tol) return absl::InternalError(absl::StrCat(what, ": max diff ", d));
  return absl::OkStatus();
}

struct Mode {
  const char* name;
  GradReducerOptions options;
};

class GradReducerModes : public ::testing::TestWithParam<Mode> {
 protected:
  static void SetUpTestSuite() { at::set_num_threads(1); }
};

TEST_P(GradReducerModes, AveragesGradientsIntoTheRightPlaces) {
  for (int world : {1, 2, 3}) {
    absl::Status s = RunOnRanks(world, [&](Communicator& comm) -> absl::Status {
      Params setup = MakeParams(world);
      GradReducerOptions o = GetParam().options;
      o.bucket_elems = 8;  // several buckets, a parameter split across two
      ASSIGN_OR_RETURN(auto reducer, GradReducer::Create(setup.params, setup.layout, comm, o));
      for (int round = 0; round < 2; ++round) {  // twice: ZeroGrads resets everything
        reducer->BeginMicroStep(true);
        Backward(setup.params, comm.rank());
        RETURN_IF_ERROR(reducer->FinishBackward());
        at::Tensor want = ExpectedMean(world, setup.layout);
        const Range shard = setup.layout.shard(comm.rank());
        RETURN_IF_ERROR(Near(reducer->ShardGrads(), want.narrow(0, shard.begin, shard.size()), 1e-5, "shard"));
        const Range opt = reducer->optimizer_range();
        RETURN_IF_ERROR(Near(reducer->OptimizerGrads(), want.narrow(0, opt.begin, opt.size()), 1e-5, "optimizer"));
        reducer->ZeroGrads();
      }
      return absl::OkStatus();
    });
    EXPECT_TRUE(s.ok()) << GetParam().name << " world " << world << ": " << s;
  }
}

GradReducerOptions Opts(bool sharded, bool to_owner, bool partitioned, bool overlap) {
  GradReducerOptions o;
  o.sharded_optimizer = sharded;
  o.reduce_to_owner = to_owner;
  o.partitioned = partitioned;
  o.overlap = overlap;
  return o;
}

INSTANTIATE_TEST_SUITE_P(Stages, GradReducerModes,
                         ::testing::Values(Mode{"stage0", Opts(false, false, false, true)},
                                           Mode{"stage1", Opts(true, true, false, true)},
                                           Mode{"stage1_allreduce", Opts(true, false, false, false)},
                                           Mode{"stage2_partitioned", Opts(true, true, true, true)},
                                           Mode{"stage2_no_overlap", Opts(true, true, true, false)}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(GradReducer, PartitionedModeFreesParameterGradients) {
  absl::Status s = RunOnRanks(2, [&](Communicator& comm) -> absl::Status {
    Params setup = MakeParams(2);
    ASSIGN_OR_RETURN(auto reducer, GradReducer::Create(setup.params, setup.layout, comm, Opts(true, true, true, true)));
    reducer->BeginMicroStep(true);
    Backward(setup.params, comm.rank());
    RETURN_IF_ERROR(reducer->FinishBackward());
    for (const auto& p : setup.params) {
      if (p.grad().defined()) return absl::InternalError("a parameter kept its gradient");
    }
    return reducer->ShardGrads().numel() == setup.layout.shard_size() ? absl::OkStatus()
                                                                      : absl::InternalError("shard size");
  });
  EXPECT_TRUE(s.ok()) << s;
}

TEST(GradReducer, AccumulatesWithoutCommunicatingUntilTheBoundary) {
  absl::Status s = RunOnRanks(2, [&](Communicator& comm) -> absl::Status {
    Params setup = MakeParams(2);
    ASSIGN_OR_RETURN(auto reducer,
                     GradReducer::Create(setup.params, setup.layout, comm, Opts(true, true, false, true)));
    const std::int64_t calls = comm.stats().calls;
    for (int micro = 0; micro < 2; ++micro) {
      reducer->BeginMicroStep(false);
      Backward(setup.params, comm.rank());
      RETURN_IF_ERROR(reducer->FinishBackward());
    }
    if (comm.stats().calls != calls) return absl::InternalError("communicated before the boundary");
    reducer->BeginMicroStep(true);
    Backward(setup.params, comm.rank());
    RETURN_IF_ERROR(reducer->FinishBackward());
    if (comm.stats().calls == calls) return absl::InternalError("no communication at the boundary");
    const Range shard = setup.layout.shard(comm.rank());
    return Near(reducer->ShardGrads(), ExpectedMean(2, setup.layout).narrow(0, shard.begin, shard.size()) * 3, 1e-5,
                "three micro-steps");
  });
  EXPECT_TRUE(s.ok()) << s;
}

// A parameter one rank does not use this step counts as a zero gradient there; nothing hangs.
TEST(GradReducer, UnusedParameterOnOneRankCountsAsZero) {
  absl::Status s = RunOnRanks(2, [&](Communicator& comm) -> absl::Status {
    Params setup = MakeParams(2);
    ASSIGN_OR_RETURN(auto reducer,
                     GradReducer::Create(setup.params, setup.layout, comm, Opts(false, false, false, true)));
    reducer->BeginMicroStep(true);
    std::vector<bool> use(kSizes.size(), true);
    if (comm.rank() == 1) use[1] = false;
    Backward(setup.params, comm.rank(), use);
    RETURN_IF_ERROR(reducer->FinishBackward());
    at::Tensor want = Input(0, 1, at::kDouble) / 2;  // only rank 0 contributed
    return Near(reducer->OptimizerGrads().narrow(0, setup.layout.param(1).begin, kSizes[1]), want, 1e-5, "unused");
  });
  EXPECT_TRUE(s.ok()) << s;
}

// bf16 on the wire: every reduced gradient within 2^-7 relative of the fp32 result (a bf16
// rounding of each contribution and of the sum).
// Partitioned mode does not clear the shard between steps: each parameter's first gradient after
// ZeroGrads overwrites its slice and the slices of parameters without one are zeroed.  So a
// parameter unused in the second step reads zero, the others that step's gradients, and a second
// micro-step adds to the first; gradients read before any backward are zero.
TEST(GradReducer, PartitionedShardStartsEachStepFromZero) {
  for (int world : {1, 2}) {
    absl::Status s = RunOnRanks(world, [&](Communicator& comm) -> absl::Status {
      Params setup = MakeParams(world);
      GradReducerOptions o = Opts(true, true, true, true);
      o.bucket_elems = 8;
      ASSIGN_OR_RETURN(auto reducer, GradReducer::Create(setup.params, setup.layout, comm, o));
      const Range shard = setup.layout.shard(comm.rank());
      reducer->BeginMicroStep(true);
      Backward(setup.params, comm.rank());
      RETURN_IF_ERROR(reducer->FinishBackward());
      reducer->ZeroGrads();
      std::vector<bool> use(kSizes.size(), true);
      use[3] = false;  // 30 elements: on both ranks' shards at world 2
      for (int micro = 0; micro < 2; ++micro) {
        reducer->BeginMicroStep(micro == 1);
        Backward(setup.params, comm.rank(), use);
        RETURN_IF_ERROR(reducer->FinishBackward());
      }
      at::Tensor want = ExpectedMean(world, setup.layout) * 2;
      want.narrow(0, setup.layout.param(3).begin, kSizes[3]).zero_();
      RETURN_IF_ERROR(Near(reducer->ShardGrads(), want.narrow(0, shard.begin, shard.size()), 1e-5, "second step"));
      reducer->ZeroGrads();
      RETURN_IF_ERROR(Near(reducer->ShardGrads(), at::zeros({shard.size()}, at::kDouble), 0, "before a backward"));
      reducer->BeginMicroStep(true);
      Backward(setup.params, comm.rank());
      RETURN_IF_ERROR(reducer->FinishBackward());
      want = ExpectedMean(world, setup.layout);
      return Near(reducer->ShardGrads(), want.narrow(0, shard.begin, shard.size()), 1e-5, "third step");
    });
    EXPECT_TRUE(s.ok()) << "world " << world << ": " << s;
  }
}

TEST(GradReducer, Bf16WireRoundsEachGradientOnlyToBf16Precision) {
  absl::Status s = RunOnRanks(3, [&](Communicator& comm) -> absl::Status {
    Params setup = MakeParams(3);
    GradReducerOptions o = Opts(false, false, false, true);
    o.comm_dtype = at::kBFloat16;
    ASSIGN_OR_RETURN(auto reducer, GradReducer::Create(setup.params, setup.layout, comm, o));
    reducer->BeginMicroStep(true);
    Backward(setup.params, comm.rank());
    RETURN_IF_ERROR(reducer->FinishBackward());
    at::Tensor want = ExpectedMean(3, setup.layout);
    at::Tensor rel = (reducer->OptimizerGrads().to(at::kDouble) - want).abs() / want.abs().clamp_min(1e-30);
    const double worst = rel.narrow(0, 0, setup.layout.total()).max().item<double>();
    if (worst > 1.0 / 128) return absl::InternalError(absl::StrCat("relative error ", worst));
    if (worst == 0) return absl::InternalError("no rounding at all: the wire was not bf16");
    return absl::OkStatus();
  });
  EXPECT_TRUE(s.ok()) << s;
}

TEST(GradReducer, SixteenBitParametersAccumulateInFp32) {
  absl::Status s = RunOnRanks(2, [&](Communicator& comm) -> absl::Status {
    Params setup = MakeParams(2, at::kBFloat16);
    ASSIGN_OR_RETURN(auto reducer,
                     GradReducer::Create(setup.params, setup.layout, comm, Opts(true, true, false, true)));
    reducer->BeginMicroStep(true);
    Backward(setup.params, comm.rank());
    RETURN_IF_ERROR(reducer->FinishBackward());
    if (reducer->OptimizerGrads().scalar_type() != at::kFloat) return absl::InternalError("not fp32");
    const Range shard = setup.layout.shard(comm.rank());
    // The inputs themselves were bf16: compare with a bf16-rounded expectation.
    return Near(reducer->ShardGrads(), ExpectedMean(2, setup.layout).narrow(0, shard.begin, shard.size()), 0.05,
                "bf16 params");
  });
  EXPECT_TRUE(s.ok()) << s;
}

TEST(GradReducer, RejectsALayoutForAnotherWorld) {
  absl::Status s = RunOnRanks(2, [&](Communicator& comm) -> absl::Status {
    Params setup = MakeParams(3);
    auto r = GradReducer::Create(setup.params, setup.layout, comm, GradReducerOptions{});
    return r.status().code() == absl::StatusCode::kInvalidArgument ? absl::OkStatus() : absl::InternalError("accepted");
  });
  EXPECT_TRUE(s.ok()) << s;
}

}  // namespace
}  // namespace zt
