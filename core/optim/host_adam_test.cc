#include "core/optim/host_adam.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "core/optim/adam_shard.h"
#include "core/util/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

AdamConfig Adamw() {
  AdamConfig c;
  c.lr = 1e-2;
  c.eps = 1e-8;
  c.weight_decay = 0.01;
  c.decoupled_weight_decay = true;
  return c;
}

constexpr std::int64_t kN = 1003;  // not a multiple of any SIMD width

// The host optimizer takes the same steps as the device one (AdamShard, the engine's
// reference path): SIMD fused multiply-adds against the reference's separate ones, so 1e-6.
TEST(HostAdam, Fp32HostParametersAreUpdatedInPlaceAsAdamShardUpdatesThem) {
  at::manual_seed(1);
  at::Tensor params = at::randn({kN});
  at::Tensor reference = params.clone();
  auto created = HostAdam::Create(params, Adamw(), {});
  ASSERT_THAT(created, IsOk());
  std::unique_ptr<HostAdam> host = *std::move(created);
  EXPECT_TRUE(host->master().is_same(params));  // no second copy of fp32 host weights
  AdamShard device(reference, Adamw());
  for (int step = 0; step < 4; ++step) {
    at::Tensor g = at::randn({kN});
    // Copies of host gradients are no-ops; the step reads them in place.
    ASSERT_THAT(host->CopyGradsDown(0, g.narrow(0, 0, 10)), IsOk());
    ASSERT_THAT(host->Step(g, 1e-2, 0.9, 0.99, 0.5f), IsOk());
    ASSERT_THAT(device.Step(g, 1e-2, 0.9, 0.99, 0.5f), IsOk());
  }
  EXPECT_EQ(host->step_count(), 4);
  EXPECT_LE(at::max(at::abs(params - reference)).item<float>(), 1e-6);
  EXPECT_LE(at::max(at::abs(host->exp_avg_sq() - device.exp_avg_sq())).item<float>(),
            1e-6 * at::max(device.exp_avg_sq()).item<float>());
}

TEST(HostAdam, Bf16ParametersGetTheRoundedMasterWeights) {
  at::manual_seed(2);
  at::Tensor params = at::randn({kN}).to(at::kBFloat16);
  auto created = HostAdam::Create(params, Adamw(), {});
  ASSERT_THAT(created, IsOk());
  std::unique_ptr<HostAdam> host = *std::move(created);
  AdamShard device(params.to(at::kFloat), Adamw());
  for (int step = 0; step < 3; ++step) {
    at::Tensor g = at::randn({kN});
    ASSERT_THAT(host->Step(g, 1e-2, 0.9, 0.99, 1.0f), IsOk());
    ASSERT_THAT(device.Step(g, 1e-2, 0.9, 0.99, 1.0f), IsOk());
  }
  EXPECT_LE(at::max(at::abs(host->master() - device.master())).item<float>(), 1e-6);
  // Every element written, rounded as PyTorch rounds.
  EXPECT_TRUE(at::equal(params, host->master().to(at::kBFloat16)));
}

TEST(HostAdam, SetMasterReplacesTheMasterWeights) {
  at::Tensor params = at::zeros({8}, at::kHalf);
  auto created = HostAdam::Create(params, Adamw(), {});
  ASSERT_THAT(created, IsOk());
  std::unique_ptr<HostAdam> host = *std::move(created);
  ASSERT_THAT(host->SetMaster(at::full({2, 4}, 3.0)), IsOk());
  EXPECT_TRUE(at::equal(host->master(), at::full({8}, 3.0)));
}

TEST(HostAdam, RefusesWhatItCannotUpdate) {
  EXPECT_THAT(HostAdam::Create(at::zeros({4}, at::kLong), Adamw(), {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("parameters of Long")));
  EXPECT_THAT(HostAdam::Create(at::zeros({4, 4}).t(), Adamw(), {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("non-contiguous")));
  auto created = HostAdam::Create(at::zeros({4}), Adamw(), {});
  ASSERT_THAT(created, IsOk());
  std::unique_ptr<HostAdam> host = *std::move(created);
  EXPECT_THAT(host->Step(at::zeros({5}), 1e-2, 0.9, 0.99, 1.0f),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("5 gradients for a shard of 4")));
  EXPECT_EQ(host->step_count(), 0);  // a refused step is not counted
}

// ---- swapped state (offload_optimizer device nvme) ----------------------------------------

struct SwapCase {
  const char* name;
  int buffer_count;
  bool pipeline_read, pipeline_write, fast_init;
  std::int64_t chunk;
};

class HostAdamSwapped : public ::testing::TestWithParam<SwapCase> {
 protected:
  static void SetUpTestSuite() {
    io::AioOptions aio;
    aio.block_size = 4096;  // several pieces per sub-group, across two workers
    aio.thread_count = 2;
    io_ = *io::IoEngine::Create(aio);
  }
  static void TearDownTestSuite() { io_.reset(); }
  HostAdamOptions Options() const {
    HostAdamOptions o;
    o.chunk_elems = GetParam().chunk;
    HostAdamSwap sw;
    sw.io = io_.get();
    sw.dir = std::getenv("TEST_TMPDIR");
    sw.name = std::string(GetParam().name) + ".swp";
    sw.buffer_count = GetParam().buffer_count;
    sw.pipeline_read = GetParam().pipeline_read;
    sw.pipeline_write = GetParam().pipeline_write;
    sw.fast_init = GetParam().fast_init;
    o.swap = sw;
    return o;
  }
  static std::unique_ptr<io::IoEngine> io_;
};
std::unique_ptr<io::IoEngine> HostAdamSwapped::io_;

// Swapping changes where the state lives, not one bit of the update: the same CPU Adam as the
// in-memory optimizer, for fp32 and bf16 parameters.  (Sub-groups are multiples of 16 elements,
// so each element takes the same SIMD or scalar-tail path as in one sweep over the shard.)
TEST_P(HostAdamSwapped, StepsExactlyAsInMemory) {
  for (at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    at::manual_seed(7);
    at::Tensor params = at::randn({kN}).to(dtype);
    at::Tensor in_memory = params.clone();
    auto swapped = HostAdam::Create(params, Adamw(), Options());
    ASSERT_THAT(swapped, IsOk());
    HostAdamOptions plain;
    plain.chunk_elems = GetParam().chunk;
    auto reference = HostAdam::Create(in_memory, Adamw(), plain);
    ASSERT_THAT(reference, IsOk());
    EXPECT_TRUE((*swapped)->swapped());
    EXPECT_FALSE((*swapped)->exp_avg().defined());  // no host copy of the whole state
    EXPECT_EQ((*swapped)->swap_file()->size(), HostAdam::SwapBytes(kN, GetParam().chunk));
    for (int step = 0; step < 3; ++step) {
      at::Tensor g = at::randn({kN});
      ASSERT_THAT((*swapped)->Step(g, 1e-2, 0.9, 0.99, 0.5f), IsOk());
      ASSERT_THAT((*reference)->Step(g, 1e-2, 0.9, 0.99, 0.5f), IsOk());
      ASSERT_TRUE(at::equal(params, in_memory)) << c10::toString(dtype) << " step " << step;
    }
    auto state = (*swapped)->ReadState();
    ASSERT_THAT(state, IsOk());
    EXPECT_TRUE(at::equal(state->master, (*reference)->master()));
    EXPECT_TRUE(at::equal(state->exp_avg, (*reference)->exp_avg()));
    EXPECT_TRUE(at::equal(state->exp_avg_sq, (*reference)->exp_avg_sq()));
    // SetMaster reaches the swap file.
    ASSERT_THAT((*swapped)->SetMaster(at::full({kN}, 2.5)), IsOk());
    state = (*swapped)->ReadState();
    ASSERT_THAT(state, IsOk());
    EXPECT_TRUE(at::equal(state->master, at::full({kN}, 2.5)));
    EXPECT_TRUE(at::equal(state->exp_avg, (*reference)->exp_avg()));
  }
}

INSTANTIATE_TEST_SUITE_P(Buffers, HostAdamSwapped,
                         ::testing::Values(SwapCase{"one_buffer", 1, false, false, false, 256},
                                           SwapCase{"two_buffers_pipelined", 2, true, true, false, 256},
                                           SwapCase{"four_buffers_read_ahead", 4, true, false, false, 96},
                                           SwapCase{"four_buffers_pipelined_fast_init", 4, true, true, true, 304},
                                           SwapCase{"whole_shard_one_group", 4, true, true, true, 1 << 20}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_P(HostAdamSwapped, ATruncatedSwapFileIsAnErrorNamingIt) {
  at::Tensor params = at::randn({kN});
  auto swapped = HostAdam::Create(params, Adamw(), Options());
  ASSERT_THAT(swapped, IsOk());
  const std::string path = (*swapped)->swap_file()->path();
  ASSERT_EQ(::truncate(path.c_str(), 0), 0);
  EXPECT_THAT((*swapped)->Step(at::randn({kN}), 1e-2, 0.9, 0.99, 1.0f),
              StatusIs(absl::StatusCode::kOutOfRange, AllOf(HasSubstr(path), HasSubstr("truncated"))));
}

TEST(HostAdamSwap, TheSwapFileGoesWithTheOptimizer) {
  auto io = *io::IoEngine::Create({});
  HostAdamOptions o;
  o.swap = HostAdamSwap{io.get(), std::getenv("TEST_TMPDIR"), "gone.swp"};
  std::string path;
  {
    auto h = HostAdam::Create(at::randn({kN}), Adamw(), o);
    ASSERT_THAT(h, IsOk());
    path = (*h)->swap_file()->path();
    EXPECT_EQ(::access(path.c_str(), F_OK), 0);
  }
  EXPECT_NE(::access(path.c_str(), F_OK), 0);
  o.swap->dir = "/nonexistent/zerotrain";
  EXPECT_THAT(HostAdam::Create(at::randn({kN}), Adamw(), o),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent/zerotrain/gone.swp")));
}

}  // namespace
}  // namespace zt
