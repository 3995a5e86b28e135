// The reference Adam against LibTorch's own torch::optim::Adam / AdamW on fresh random inputs.
#include "ops/adam.h"

#include <ATen/ATen.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>

#include <vector>

#include "gtest/gtest.h"

namespace zt::ops {
namespace {

struct Case {
  bool decoupled;
  float weight_decay;
};

class AdamVsTorch : public ::testing::TestWithParam<Case> {};

// Five steps on 10,007 elements.  LibTorch's C++ optimizers compute m with mul/add where
// PyTorch's Python ones use lerp, so results agree to a few float ulps, not bit for bit:
// the tolerance is 2e-6 relative to the parameter scale (1).
TEST_P(AdamVsTorch, MatchesLibTorchOverSeveralSteps) {
  const Case c = GetParam();
  at::manual_seed(7);
  const std::int64_t n = 10007;
  at::Tensor p = at::randn({n});
  at::Tensor torch_p = p.clone().set_requires_grad(true);
  std::vector<at::Tensor> params = {torch_p};
  std::unique_ptr<torch::optim::Optimizer> opt;
  if (c.decoupled) {
    opt = std::make_unique<torch::optim::AdamW>(
        params, torch::optim::AdamWOptions(1e-2).betas({0.8, 0.95}).eps(1e-6).weight_decay(c.weight_decay));
  } else {
    opt = std::make_unique<torch::optim::Adam>(
        params, torch::optim::AdamOptions(1e-2).betas({0.8, 0.95}).eps(1e-6).weight_decay(c.weight_decay));
  }
  at::Tensor m = at::zeros({n}), v = at::zeros({n});
  for (int t = 1; t <= 5; ++t) {
    at::Tensor g = at::randn({n}) * 0.1;
    torch_p.mutable_grad() = g.clone();
    opt->step();
    AdamStep s;
    s.lr = 1e-2f;
    s.beta1 = 0.8f;
    s.beta2 = 0.95f;
    s.eps = 1e-6f;
    s.weight_decay = c.weight_decay;
    s.decoupled = c.decoupled;
    s.step = t;
    AdamReference(p.data_ptr<float>(), g.data_ptr<float>(), m.data_ptr<float>(), v.data_ptr<float>(), n, s);
    const double diff = (p - torch_p.detach()).abs().max().item<double>();
    EXPECT_LE(diff, 2e-6) << "step " << t;
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, AdamVsTorch,
                         ::testing::Values(Case{true, 0.0f}, Case{true, 0.1f}, Case{false, 0.0f}, Case{false, 0.1f}));

TEST(AdamReference, GradScaleEqualsScaledGradient) {
  at::manual_seed(3);
  at::Tensor p1 = at::randn({100}), g = at::randn({100});
  at::Tensor p2 = p1.clone(), g2 = g * 0.25;
  at::Tensor m1 = at::zeros({100}), v1 = at::zeros({100}), m2 = at::zeros({100}), v2 = at::zeros({100});
  AdamStep s;
  s.grad_scale = 0.25f;
  AdamReference(p1.data_ptr<float>(), g.data_ptr<float>(), m1.data_ptr<float>(), v1.data_ptr<float>(), 100, s);
  s.grad_scale = 1.0f;
  AdamReference(p2.data_ptr<float>(), g2.data_ptr<float>(), m2.data_ptr<float>(), v2.data_ptr<float>(), 100, s);
  EXPECT_TRUE(at::equal(p1, p2));
  EXPECT_TRUE(at::equal(v1, v2));
}

TEST(AdamReference, NoBiasCorrectionUsesRawMoments) {
  float p = 1.0f, g = 0.5f, m = 0.0f, v = 0.0f;
  AdamStep s;
  s.lr = 0.1f;
  s.bias_correction = false;
  AdamReference(&p, &g, &m, &v, 1, s);
  // m = 0.05, v = 0.00025, p = 1 - 0.1 * 0.05 / (sqrt(0.00025) + 1e-8) = 0.683772 (with bias
  // correction it would be 1 - 0.1 * 1 / (1 + ...) = 0.9)
  EXPECT_NEAR(m, 0.05f, 1e-7);
  EXPECT_NEAR(v, 0.00025f, 1e-8);  // 1 - 0.999f is 0.00099999 in float
  EXPECT_NEAR(p, 0.683772f, 1e-5);
}

}  // namespace
}  // namespace zt::ops
