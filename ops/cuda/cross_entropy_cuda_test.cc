// The chunked linear cross-entropy against ops/linear_cross_entropy.h's reference on fresh random
// inputs, its gradients against float64, ignored and invalid labels, and its memory: no
// float32 logits for the batch.
#include <ATen/ATen.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>

#include "gtest/gtest.h"
#include "ops/cuda/cross_entropy_autograd.h"
#include "ops/linear_cross_entropy.h"

namespace zt::ops::cuda {
namespace {

double RelErr(const at::Tensor& got, const at::Tensor& want) {
  const at::Tensor g = got.to(at::kDouble).cpu(), w = want.to(at::kDouble).cpu();
  return (g - w).abs().max().item<double>() / std::max(w.abs().max().item<double>(), 1e-30);
}

struct Case {
  at::ScalarType dtype;
  std::int64_t n, d, v, chunk;
};

class LinearCrossEntropyCudaTest : public ::testing::TestWithParam<Case> {};

TEST_P(LinearCrossEntropyCudaTest, MatchesReference) {
  ASSERT_TRUE(at::hasCUDA()) << "no CUDA device";
  const Case c = GetParam();
  at::manual_seed(c.n + c.v);
  const auto cuda = at::TensorOptions().device(at::kCUDA);
  const at::Tensor h0 = at::randn({c.n, c.d}, cuda.dtype(at::kDouble));
  const at::Tensor w0 = at::randn({c.v, c.d}, cuda.dtype(at::kDouble)) * 0.3;
  at::Tensor labels = at::randint(0, c.v, {c.n}, cuda.dtype(at::kLong));
  labels.masked_fill_(at::rand({c.n}, cuda) < 0.2, -100);  // some ignored

  at::Tensor h = h0.to(c.dtype).requires_grad_(), w = w0.to(c.dtype).requires_grad_();
  const at::Tensor loss = LinearCrossEntropyCuda(h, w, labels, -100, c.chunk);
  ASSERT_TRUE(loss.defined());
  EXPECT_EQ(loss.scalar_type(), at::kFloat);
  const at::Tensor want = LinearCrossEntropyReference(h.detach(), w.detach(), labels, -100);
  const double tol = c.dtype == at::kFloat ? 1e-5 : 2e-2;
  EXPECT_NEAR(loss.item<double>(), want.item<double>(), tol * std::abs(want.item<double>()));
  auto grads = torch::autograd::grad({loss * 3.0}, {h, w});

  at::Tensor h64 = h0.to(c.dtype).to(at::kDouble).requires_grad_(),
             w64 = w0.to(c.dtype).to(at::kDouble).requires_grad_();
  const at::Tensor loss64 = LinearCrossEntropyReference(h64, w64, labels, -100) * 3.0;
  auto want_grads = torch::autograd::grad({loss64}, {h64, w64});
  EXPECT_LE(RelErr(grads[0], want_grads[0]), tol * 2) << "dhidden";
  EXPECT_LE(RelErr(grads[1], want_grads[1]), tol * 2) << "dweight";
}

INSTANTIATE_TEST_SUITE_P(DtypesAndChunks, LinearCrossEntropyCudaTest,
                         ::testing::Values(Case{at::kBFloat16, 300, 64, 1000, 0}, Case{at::kBFloat16, 300, 64, 1000, 7},
                                           Case{at::kFloat, 129, 32, 5003, 50}, Case{at::kHalf, 64, 128, 777, 64},
                                           Case{at::kBFloat16, 1, 16, 32128, 0}));

TEST(LinearCrossEntropyCuda, IgnoredAndInvalidLabels) {
  ASSERT_TRUE(at::hasCUDA()) << "no CUDA device";
  const auto cuda = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  const at::Tensor h = at::randn({4, 8}, cuda), w = at::randn({10, 8}, cuda);
  const auto lopts = at::TensorOptions().device(at::kCUDA).dtype(at::kLong);
  EXPECT_TRUE(std::isnan(LinearCrossEntropyCuda(h, w, at::full({4}, -100, lopts), -100).item<float>()))
      << "every label ignored: NaN, as torch";
  const at::Tensor bad = at::tensor({1, 2, 10, 3}, lopts);  // 10 is outside the vocabulary
  EXPECT_TRUE(std::isnan(LinearCrossEntropyCuda(h, w, bad, -100).item<float>()));
  // The entry point takes the fused path on CUDA.
  EXPECT_TRUE(HasCudaLinearCrossEntropy());
  const at::Tensor ok = at::tensor({1, 2, -100, 3}, lopts);
  EXPECT_NEAR(LinearCrossEntropy(h, w, ok, -100).item<double>(),
              LinearCrossEntropyReference(h, w, ok, -100).item<double>(), 2e-2);
}

TEST(LinearCrossEntropyCuda, NeverHoldsTheBatchsFloat32Logits) {
  ASSERT_TRUE(at::hasCUDA()) << "no CUDA device";
  const std::int64_t n = 4096, d = 64, v = 32128;  // float32 logits: 526 MB
  const auto cuda = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  at::Tensor h = at::randn({n, d}, cuda).requires_grad_();
  at::Tensor w = (at::randn({v, d}, cuda) * 0.1).requires_grad_();
  const at::Tensor labels = at::randint(0, v, {n}, cuda.dtype(at::kLong));
  c10::cuda::CUDACachingAllocator::emptyCache();
  const auto before = c10::cuda::CUDACachingAllocator::getDeviceStats(0).allocated_bytes[0].current;
  c10::cuda::CUDACachingAllocator::resetPeakStats(0);
  LinearCrossEntropyCuda(h, w, labels, -100).backward();
  const auto peak = c10::cuda::CUDACachingAllocator::getDeviceStats(0).allocated_bytes[0].peak;
  // One 64 MiB bf16 chunk of logits at a time, plus the gradients (h: 0.5 MB, w: 4 MB).
  EXPECT_LT(peak - before, 200LL << 20) << "peak " << (peak - before) / (1 << 20) << " MiB above the inputs";
}

}  // namespace
}  // namespace zt::ops::cuda
