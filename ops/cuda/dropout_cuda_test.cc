// The fused dropout ops (ops/dropout.h) on fresh random inputs: every output element is either
// the kept or the dropped value, the dropped share matches p, the backward drops exactly the
// forward's elements, seeds repeat and differ, and both memory paths (16-byte and unaligned) draw
// the same mask.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "ops/cuda/dropout_autograd.h"
#include "ops/cuda/dropout_seed.h"
#include "ops/dropout.h"

namespace zt::ops::cuda {
namespace {

double Tolerance(at::ScalarType t) { return t == at::kFloat ? 1e-6 : t == at::kBFloat16 ? 1e-2 : 2e-3; }

// The keep scale the kernels use for p.
double KeepScale(double p) { return 65536.0 / (65536.0 - std::nearbyint(p * 65536.0)); }

// Nonzero values of both signs, away from 0 so a dropped element is told apart from a kept one.
at::Tensor Values(std::int64_t n, at::ScalarType t) {
  const auto cuda = at::TensorOptions().device(at::kCUDA);
  const at::Tensor r = at::randn({n}, cuda);
  return ((r.abs() + 0.25) * at::sign(at::randn({n}, cuda))).to(t);
}

// Whether got is within the dtype's tolerance of want, element by element (float64, CPU).
at::Tensor Close(const at::Tensor& got, const at::Tensor& want, at::ScalarType t) {
  return (got - want).abs() <= Tolerance(t) * (want.abs() + 1);
}

// The dropped share's distance from p in standard deviations.
double Sigmas(const at::Tensor& dropped, double p) {
  const double n = static_cast<double>(dropped.numel());
  const double share = dropped.to(at::kDouble).mean().item<double>();
  return std::abs(share - p) / std::sqrt(p * (1 - p) / n);
}

struct Case {
  at::ScalarType dtype;
  std::int64_t n;
  double p;
};

class DropoutCudaTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override { ASSERT_TRUE(at::hasCUDA()) << "no CUDA device"; }
};

TEST_P(DropoutCudaTest, DropoutAddKeepsOrDropsEachElementAndItsGradient) {
  const Case c = GetParam();
  at::manual_seed(c.n + static_cast<int>(c.p * 100));
  at::Tensor x = Values(c.n, c.dtype).requires_grad_(), h = Values(c.n, c.dtype).requires_grad_();
  const at::Tensor y = DropoutAddCuda(x, h, c.p);
  ASSERT_TRUE(y.defined());
  EXPECT_EQ(y.scalar_type(), c.dtype);
  const at::Tensor dy = Values(c.n, c.dtype);
  const auto grads = torch::autograd::grad({y}, {x, h}, {dy});

  const double scale = KeepScale(c.p);
  const at::Tensor x64 = x.detach().to(at::kDouble).cpu(), h64 = h.detach().to(at::kDouble).cpu();
  const at::Tensor y64 = y.to(at::kDouble).cpu(), dy64 = dy.to(at::kDouble).cpu();
  const at::Tensor kept_value = x64 + h64 * scale;
  const at::Tensor kept = (y64 - kept_value).abs() < (y64 - x64).abs();
  EXPECT_TRUE(at::where(kept, Close(y64, kept_value, c.dtype), Close(y64, x64, c.dtype)).all().item<bool>());
  if (c.n >= 100000) {
    EXPECT_LE(Sigmas(~kept, c.p), 5.0) << "dropped share";
  }

  EXPECT_TRUE(at::equal(grads[0].cpu(), dy.cpu())) << "dx is dy";
  const at::Tensor dh64 = grads[1].to(at::kDouble).cpu();
  EXPECT_TRUE(at::where(kept, Close(dh64, dy64 * scale, c.dtype), dh64 == 0).all().item<bool>()) << "dh";
}

TEST_P(DropoutCudaTest, ReluDropoutKeepsOrDropsEachElementAndItsGradient) {
  const Case c = GetParam();
  at::manual_seed(c.n * 7 + static_cast<int>(c.p * 100));
  at::Tensor h = Values(c.n, c.dtype).requires_grad_();
  const at::Tensor y = ReluDropoutCuda(h, c.p);
  ASSERT_TRUE(y.defined());
  const at::Tensor dy = Values(c.n, c.dtype);
  const at::Tensor dh = torch::autograd::grad({y}, {h}, {dy})[0];

  const double scale = KeepScale(c.p);
  const at::Tensor h64 = h.detach().to(at::kDouble).cpu(), y64 = y.to(at::kDouble).cpu();
  const at::Tensor positive = h64 > 0, kept = y64 != 0;
  EXPECT_FALSE((kept & ~positive).any().item<bool>()) << "a non-positive input came through";
  EXPECT_TRUE(at::where(kept, Close(y64, h64 * scale, c.dtype), y64 == 0).all().item<bool>());
  if (c.n >= 100000) {
    EXPECT_LE(Sigmas(~kept.masked_select(positive), c.p), 5.0) << "dropped share";
  }
  const at::Tensor dh64 = dh.to(at::kDouble).cpu(), dy64 = dy.to(at::kDouble).cpu();
  EXPECT_TRUE(at::where(kept, Close(dh64, dy64 * scale, c.dtype), dh64 == 0).all().item<bool>()) << "dh";
}

INSTANTIATE_TEST_SUITE_P(DtypesSizesRates, DropoutCudaTest,
                         ::testing::Values(Case{at::kBFloat16, 1 << 20, 0.1}, Case{at::kHalf, 1 << 20, 0.1},
                                           Case{at::kFloat, 1 << 20, 0.1}, Case{at::kBFloat16, 1000003, 0.5},
                                           Case{at::kFloat, 1000003, 0.9}, Case{at::kHalf, 7, 0.3},
                                           Case{at::kBFloat16, 1, 0.5}));

TEST(DropoutCuda, ElementsAreDrawnIndependently) {
  const std::int64_t n = 1 << 22;
  const double p = 0.3;
  const at::Tensor h = at::ones({n}, at::TensorOptions().device(at::kCUDA));
  const at::Tensor dropped = (ReluDropoutCuda(h, p) == 0).cpu();
  EXPECT_LE(Sigmas(dropped, p), 5.0);
  // Neighbours (one hash gives a pair), pairs and rows far apart: both dropped p^2 of the time.
  for (std::int64_t gap : {1, 2, 8, 4096}) {
    const at::Tensor both = dropped.narrow(0, 0, n - gap) & dropped.narrow(0, gap, n - gap);
    EXPECT_LE(Sigmas(both, p * p), 5.0) << "gap " << gap;
  }
}

TEST(DropoutCuda, SeedsRepeatAndDiffer) {
  at::manual_seed(1);
  const at::Tensor h = at::ones({4096}, at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16));
  SetNextDropoutSeedForTesting(42);
  const at::Tensor a = ReluDropoutCuda(h, 0.5);
  SetNextDropoutSeedForTesting(42);
  const at::Tensor b = ReluDropoutCuda(h, 0.5);
  const at::Tensor c = ReluDropoutCuda(h, 0.5);
  const at::Tensor d = ReluDropoutCuda(h, 0.5);
  EXPECT_TRUE(at::equal(a, b));
  EXPECT_FALSE(at::equal(a, c));
  EXPECT_FALSE(at::equal(c, d));
  at::manual_seed(7);
  const at::Tensor e = ReluDropoutCuda(h, 0.5);
  at::manual_seed(7);
  EXPECT_TRUE(at::equal(e, ReluDropoutCuda(h, 0.5))) << "at::manual_seed makes runs repeatable";
}

TEST(DropoutCuda, UnalignedAndStridedInputsDrawTheSameMask) {
  at::manual_seed(3);
  const std::int64_t n = 10001;
  const at::Tensor x_big = Values(n + 1, at::kBFloat16), h_big = Values(n + 1, at::kBFloat16);
  const at::Tensor x = x_big.narrow(0, 0, n).clone(), h = h_big.narrow(0, 0, n).clone();
  const at::Tensor xu = x_big.narrow(0, 1, n), hu = h_big.narrow(0, 1, n);  // 2 bytes past an aligned start
  xu.copy_(x);
  hu.copy_(h);
  ASSERT_NE(reinterpret_cast<std::uintptr_t>(xu.data_ptr()) % 16, 0u);
  SetNextDropoutSeedForTesting(9);
  const at::Tensor aligned = DropoutAddCuda(x, h, 0.2);
  SetNextDropoutSeedForTesting(9);
  EXPECT_TRUE(at::equal(aligned, DropoutAddCuda(xu, hu, 0.2)));

  const at::Tensor m = Values(64 * 48, at::kHalf).view({64, 48});
  SetNextDropoutSeedForTesting(5);
  const at::Tensor strided = ReluDropoutCuda(m.t(), 0.2);
  SetNextDropoutSeedForTesting(5);
  EXPECT_TRUE(at::equal(strided, ReluDropoutCuda(m.t().contiguous(), 0.2)));
  EXPECT_EQ(strided.sizes(), m.t().sizes());
}

TEST(DropoutCuda, EntryPointsUseTheKernelsOnlyWhereTheyApply) {
  ASSERT_TRUE(HasCudaDropout());
  const auto cuda = at::TensorOptions().device(at::kCUDA);
  const at::Tensor x = at::randn({1000}, cuda), h = at::randn({1000}, cuda);
  EXPECT_TRUE(at::equal(DropoutAdd(x, h, 0.1, /*training=*/false), x + h));
  EXPECT_TRUE(at::equal(DropoutAdd(x, h, 0.0, true), x + h));
  EXPECT_TRUE(at::equal(ReluDropout(h, 0.1, false), at::relu(h)));
  EXPECT_TRUE(at::equal(ReluDropout(h, 1.0, true), at::zeros_like(h)));
  // Mixed dtypes take the reference and keep ATen's promotion.
  EXPECT_EQ(DropoutAdd(x, h.to(at::kBFloat16), 0.1, true).scalar_type(), at::kFloat);
  EXPECT_FALSE(DropoutAddCuda(x.to(at::kDouble), h.to(at::kDouble), 0.1).defined()) << "float64 is not taken";
  EXPECT_FALSE(ReluDropoutCuda(h, 0.0).defined());
  EXPECT_THROW(DropoutAddCuda(x, h.narrow(0, 0, 10), 0.1), c10::Error);
  EXPECT_THROW(DropoutAdd(x, h, 1.5, true), c10::Error);
}

}  // namespace
}  // namespace zt::ops::cuda
