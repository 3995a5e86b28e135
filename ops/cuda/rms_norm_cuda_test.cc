// The fused RMS norm against ops/rms_norm.h's reference on fresh random inputs: the forward
// against the reference in the same dtypes, the gradients against float64.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

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
