// The fused RMS norm against ops/rms_norm.h's reference on fresh random inputs: the forward
// against the reference in the same dtypes, the gradients against float64.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <array>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "ops/cuda/rms_norm_autograd.h"
#include "ops/rms_norm.h"

namespace zt::ops::cuda {
namespace {

double RelErr(const at::Tensor& got, const at::Tensor& want) {
  const at::Tensor g = got.to(at::kDouble).cpu(), w = want.to(at::kDouble).cpu();
  return (g - w).abs().max().item<double>() / std::max(w.abs().max().item<double>(), 1e-30);
}

double Tolerance(at::ScalarType t) { return t == at::kFloat ? 2e-5 : t == at::kBFloat16 ? 2e-2 : 4e-3; }

struct Case {
  at::ScalarType x, w;
  std::int64_t rows, d;
};

class RmsNormCudaTest : public ::testing::TestWithParam<Case> {};

TEST_P(RmsNormCudaTest, MatchesReference) {
  ASSERT_TRUE(at::hasCUDA()) << "no CUDA device";
  const Case c = GetParam();
  at::manual_seed(c.rows * 31 + c.d);
  const auto cuda = at::TensorOptions().device(at::kCUDA);
  const at::Tensor x0 = at::randn({c.rows, c.d}, cuda.dtype(at::kDouble)) * 3;
  const at::Tensor w0 = 1 + at::randn({c.d}, cuda.dtype(at::kDouble)) * 0.1;
  const at::Tensor dy0 = at::randn({c.rows, c.d}, cuda.dtype(at::kDouble));
  const double eps = 1e-6;

  at::Tensor x = x0.to(c.x).requires_grad_(), w = w0.to(c.w).requires_grad_();
  const at::Tensor y = RmsNormCuda(x, w, eps);
  ASSERT_TRUE(y.defined());
  const at::Tensor want = RmsNormReference(x.detach(), w.detach(), eps);
  EXPECT_EQ(y.scalar_type(), want.scalar_type());
  EXPECT_LE(RelErr(y, want), Tolerance(want.scalar_type())) << "forward";
  auto grads = torch::autograd::grad({y}, {x, w}, {dy0.to(y.scalar_type())});

  // float64 ground truth of the same function (the 16-bit rounding of h aside).
  at::Tensor x64 = x0.to(c.x).to(at::kDouble).requires_grad_(), w64 = w0.to(c.w).to(at::kDouble).requires_grad_();
  const at::Tensor y64 = w64 * (x64 * at::rsqrt(x64.pow(2).mean(-1, true) + eps));
  auto want_grads = torch::autograd::grad({y64}, {x64, w64}, {dy0.to(y.scalar_type()).to(at::kDouble)});
  const double tol = std::max(Tolerance(c.x), Tolerance(c.w));
  EXPECT_LE(RelErr(grads[0], want_grads[0]), tol) << "dx";
  EXPECT_LE(RelErr(grads[1], want_grads[1]), tol) << "dweight";
  EXPECT_EQ(grads[0].scalar_type(), c.x);
  EXPECT_EQ(grads[1].scalar_type(), c.w);
}

INSTANTIATE_TEST_SUITE_P(
    DtypesAndShapes, RmsNormCudaTest,
    ::testing::Values(Case{at::kBFloat16, at::kBFloat16, 4099, 1024}, Case{at::kBFloat16, at::kBFloat16, 3, 37},
                      Case{at::kHalf, at::kHalf, 513, 512}, Case{at::kFloat, at::kFloat, 1000, 1000},
                      Case{at::kFloat, at::kBFloat16, 77, 2048}, Case{at::kFloat, at::kHalf, 129, 768}));

// The residual form: {y, r = x} from one node, whose backward adds r's gradient into x's.  Against
// the reference norm with x used directly, for a loss over both outputs and over each alone.
TEST(RmsNormCuda, ResidualFormAddsTheResidualGradientIntoX) {
  ASSERT_TRUE(at::hasCUDA()) << "no CUDA device";
  const auto cuda = at::TensorOptions().device(at::kCUDA);
  at::manual_seed(11);
  const at::Tensor x0 = at::randn({300, 512}, cuda.dtype(at::kFloat)) * 2;
  const at::Tensor w0 = 1 + at::randn({512}, cuda.dtype(at::kFloat)) * 0.1;
  const at::Tensor a = at::randn({300, 512}, cuda), b = at::randn({300, 512}, cuda);
  for (int run = 0; run < 6; ++run) {
    const int use = run % 3;                                        // 0: both outputs, 1: y only, 2: r only
    const at::ScalarType t = run < 3 ? at::kFloat : at::kBFloat16;  // bf16: the vectorised kernel
    const double tol = t == at::kFloat ? 1e-4 : 2e-2;
    SCOPED_TRACE(testing::Message() << "use " << use << " " << t);
    const at::Tensor x = x0.to(t).clone().requires_grad_(), w = w0.to(t).clone().requires_grad_();
    const std::array<at::Tensor, 2> yr = RmsNormResidualCuda(x, w, 1e-6);
    ASSERT_TRUE(yr[0].defined() && yr[1].defined());
    EXPECT_EQ(yr[1].data_ptr(), x.data_ptr()) << "r is x itself";
    EXPECT_EQ(yr[0].grad_fn(), yr[1].grad_fn()) << "one node";
    const at::Tensor xr = x0.to(t).to(at::kFloat).clone().requires_grad_(),
                     wr = w0.to(t).to(at::kFloat).clone().requires_grad_();
    const at::Tensor yref = RmsNormReference(xr, wr, 1e-6);
    EXPECT_LE(RelErr(yr[0], yref), tol);
    at::Tensor loss = at::zeros({}, cuda), loss_r = at::zeros({}, cuda);
    if (use != 2) {
      loss = loss + (yr[0].to(at::kFloat) * a).sum();
      loss_r = loss_r + (yref * a).sum();
    }
    if (use != 1) {
      loss = loss + (yr[1].to(at::kFloat) * b).sum();
      loss_r = loss_r + (xr * b).sum();
    }
    loss.backward();
    loss_r.backward();
    EXPECT_LE(RelErr(x.grad(), xr.grad()), tol) << "dx";
    if (use != 2) {
      EXPECT_LE(RelErr(w.grad(), wr.grad()), tol) << "dweight";
    } else {
      EXPECT_FALSE(w.grad().defined() && w.grad().abs().sum().item<float>() != 0) << "no gradient through y";
    }
  }
  // bf16 through the entry point, and its fallback for a pair the kernels do not take.
  const at::Tensor xb = x0.to(at::kBFloat16), wb = w0.to(at::kBFloat16);
  const std::array<at::Tensor, 2> fused = RmsNormResidual(xb, wb, 1e-6);
  EXPECT_LE(RelErr(fused[0], RmsNormReference(xb, wb, 1e-6)), 2e-2);
  const std::array<at::Tensor, 2> fallback = RmsNormResidual(xb, w0, 1e-6);
  EXPECT_TRUE(at::equal(fallback[0], RmsNormReference(xb, w0, 1e-6)));
  EXPECT_TRUE(fallback[1].is_same(xb));
}

TEST(RmsNormCuda, EntryPointUsesTheFusedKernelAndFallsBack) {
  ASSERT_TRUE(at::hasCUDA()) << "no CUDA device";
  EXPECT_TRUE(HasCudaRmsNorm());
  const auto cuda = at::TensorOptions().device(at::kCUDA);
  // 3-D input through the entry point.
  const at::Tensor x = at::randn({2, 5, 64}, cuda.dtype(at::kBFloat16));
  const at::Tensor w = at::rand({64}, cuda.dtype(at::kBFloat16));
  EXPECT_LE(RelErr(RmsNorm(x, w, 1e-6), RmsNormReference(x, w, 1e-6)), 2e-2);
  // bf16 x with a float32 weight: not a pair the kernels take; the reference answers.
  const at::Tensor w32 = w.to(at::kFloat);
  EXPECT_FALSE(RmsNormCuda(x, w32, 1e-6).defined());
  EXPECT_TRUE(at::equal(RmsNorm(x, w32, 1e-6), RmsNormReference(x, w32, 1e-6)));
}

}  // namespace
}  // namespace zt::ops::cuda
