#include "core/optim/host_adam.h"

#include <ATen/ATen.h>

#include "core/optim/adam_shard.h"
#include "core/util/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt {
namespace {

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

}  // namespace
}  // namespace zt
