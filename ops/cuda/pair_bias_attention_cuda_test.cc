// The fused CUDA pair-bias attention against the reference on the GPU: outputs, the gradients
// of q, k, v and bias, padded keys, rows with every key padded, and peak memory.
#include <ATen/ATen.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "ops/cuda/pair_bias_attention_autograd.h"
#include "ops/pair_bias_attention.h"

namespace zt::ops::cuda {
namespace {

struct Inputs {
  at::Tensor q, k, v, bias, key_mask;
  double scale;
};

// Batch 0: every 5th key and the last one padded; batch 1: only key 0 real; batch 2: every key
// padded (its rows must give 0, never NaN).
at::Tensor MakeMask(std::int64_t b, std::int64_t n) {
  at::Tensor mask = at::ones({b, n}, at::kBool);
  for (std::int64_t j = 0; j < n; j += 5) mask[0][j] = false;
  mask[0][n - 1] = false;
  if (n > 1) mask[0][1] = true;  // keep one real key even when n is tiny
  if (b > 1 && n > 1) mask[1].narrow(0, 1, n - 1).fill_(false);
  if (b > 2) mask[2].fill_(false);
  return mask.to(at::kCUDA);
}

Inputs MakeInputs(std::int64_t b, std::int64_t h, std::int64_t n, std::int64_t d, at::ScalarType dtype,
                  std::uint64_t seed) {
  at::manual_seed(seed);
  const auto opts = at::TensorOptions().dtype(at::kFloat).device(at::kCUDA);
  Inputs in;
  in.q = at::randn({b, h, n, d}, opts).to(dtype);
  in.k = at::randn({b, h, n, d}, opts).to(dtype);
  in.v = at::randn({b, h, n, d}, opts).to(dtype);
  in.bias = at::randn({b, h, n, n}, opts).to(dtype);
  in.key_mask = MakeMask(b, n);
  in.scale = 1.0 / std::sqrt(static_cast<double>(d));
  return in;
}

struct Result {
  at::Tensor out, dq, dk, dv, dbias;
};

template <typename Fn>
Result ForwardBackward(const Inputs& in, const at::Tensor& dout, Fn fn) {
  const at::Tensor q = in.q.detach().clone().requires_grad_(true), k = in.k.detach().clone().requires_grad_(true),
                   v = in.v.detach().clone().requires_grad_(true), bias = in.bias.detach().clone().requires_grad_(true);
  at::Tensor out = fn(q, k, v, bias, in.key_mask, in.scale);
  out.backward(dout);
  return {out.detach(), q.grad(), k.grad(), v.grad(), bias.grad()};
}

// max |a - b| / max |b| (b the reference), in float32 on the CPU.
double RelError(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor fa = a.to(at::kFloat).cpu(), fb = b.to(at::kFloat).cpu();
  const double scale = std::max(fb.abs().max().item<double>(), 1e-12);
  return (fa - fb).abs().max().item<double>() / scale;
}

bool AllFinite(const Result& r) {
  for (const at::Tensor* t : {&r.out, &r.dq, &r.dk, &r.dv, &r.dbias}) {
    if (!t->defined() || !t->isfinite().all().item<bool>()) return false;
  }
  return true;
}

using Case = std::tuple<at::ScalarType, std::int64_t /*n*/, std::int64_t /*d*/>;

class PairBiasAttentionCudaTest : public ::testing::TestWithParam<Case> {};

TEST_P(PairBiasAttentionCudaTest, MatchesReference) {
  ASSERT_TRUE(at::hasCUDA()) << "no CUDA device";
  const auto [dtype, n, d] = GetParam();
  const Inputs in = MakeInputs(3, 2, n, d, dtype, 1000 * n + d);
  const at::Tensor dout = at::randn(in.q.sizes(), in.q.options());
  const Result fused = ForwardBackward(in, dout, PairBiasAttentionCuda);
  const Result ref = ForwardBackward(in, dout, PairBiasAttentionReference);

  ASSERT_EQ(fused.out.scalar_type(), dtype);
  ASSERT_EQ(fused.dbias.scalar_type(), dtype);
  EXPECT_TRUE(AllFinite(fused));
  const bool fp32 = dtype == at::kFloat;
  if (fp32) {
    EXPECT_TRUE(at::allclose(fused.out, ref.out, 1e-5, 1e-5))
        << "out max diff " << (fused.out - ref.out).abs().max().item<double>();
  } else {
    EXPECT_TRUE(at::allclose(fused.out.to(at::kFloat), ref.out.to(at::kFloat), 2e-2, 2e-2))
        << "out max diff " << (fused.out.to(at::kFloat) - ref.out.to(at::kFloat)).abs().max().item<double>();
  }
  const double grad_tol = fp32 ? 1e-4 : 3e-2;
  EXPECT_LE(RelError(fused.dq, ref.dq), grad_tol) << "dq";
  EXPECT_LE(RelError(fused.dk, ref.dk), grad_tol) << "dk";
  EXPECT_LE(RelError(fused.dv, ref.dv), grad_tol) << "dv";
  EXPECT_LE(RelError(fused.dbias, ref.dbias), grad_tol) << "dbias";

  // Batch 2 has every key padded: zeros everywhere.
  for (const at::Tensor* t : {&fused.out, &fused.dq, &fused.dk, &fused.dv, &fused.dbias}) {
    EXPECT_EQ((*t)[2].abs().max().item<double>(), 0.0);
  }
  // Padded keys of batch 0 get no dk, dv, dbias.
  const at::Tensor padded0 = in.key_mask[0].logical_not();
  EXPECT_EQ(fused.dk[0].index({at::indexing::Slice(), padded0}).abs().sum().item<double>(), 0.0);
  EXPECT_EQ(fused.dv[0].index({at::indexing::Slice(), padded0}).abs().sum().item<double>(), 0.0);
  EXPECT_EQ(fused.dbias[0].index({at::indexing::Slice(), at::indexing::Slice(), padded0}).abs().sum().item<double>(),
            0.0);
}

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  const auto [dtype, n, d] = info.param;
  const char* type = dtype == at::kFloat ? "fp32" : dtype == at::kBFloat16 ? "bf16" : "fp16";
  return std::string(type) + "_n" + std::to_string(n) + "_d" + std::to_string(d);
}

INSTANTIATE_TEST_SUITE_P(Grid, PairBiasAttentionCudaTest,
                         ::testing::Combine(::testing::Values(at::kFloat, at::kBFloat16),
                                            ::testing::Values(7, 64, 129, 300), ::testing::Values(16, 32, 64)),
                         CaseName);

// Wider head dimensions, odd ones (padded to the next tile width) and fp16.
INSTANTIATE_TEST_SUITE_P(Extra, PairBiasAttentionCudaTest,
                         ::testing::Values(Case{at::kFloat, 33, 128}, Case{at::kBFloat16, 129, 128},
                                           Case{at::kFloat, 50, 20}, Case{at::kFloat, 17, 1}, Case{at::kFloat, 65, 100},
                                           Case{at::kHalf, 64, 32}, Case{at::kHalf, 129, 64}, Case{at::kFloat, 1, 16}),
                         CaseName);

TEST(PairBiasAttentionCuda, EntryPointDispatchesToTheFusedKernel) {
  ASSERT_TRUE(at::hasCUDA()) << "no CUDA device";
  ASSERT_TRUE(HasCudaPairBiasAttention()) << "the CUDA library did not register itself (alwayslink?)";
  const Inputs in = MakeInputs(2, 4, 40, 32, at::kFloat, 3);
  const at::Tensor via_entry = PairBiasAttention(in.q, in.k, in.v, in.bias, in.key_mask, in.scale);
  const at::Tensor fused = PairBiasAttentionCuda(in.q, in.k, in.v, in.bias, in.key_mask, in.scale);
  EXPECT_TRUE(at::equal(via_entry, fused));  // the kernel is deterministic
  // Non-contiguous inputs give the same result.
  const at::Tensor q_t = in.q.transpose(1, 2).contiguous().transpose(1, 2);
  ASSERT_FALSE(q_t.is_contiguous());
  EXPECT_TRUE(at::equal(PairBiasAttention(q_t, in.k, in.v, in.bias, in.key_mask, in.scale), fused));
}

TEST(PairBiasAttentionCuda, UnsupportedHeadDimThrowsAndEntryPointFallsBack) {
  ASSERT_TRUE(at::hasCUDA()) << "no CUDA device";
  const Inputs in = MakeInputs(1, 2, 9, 160, at::kFloat, 4);
  try {
    PairBiasAttentionCuda(in.q, in.k, in.v, in.bias, in.key_mask, in.scale);
    ADD_FAILURE() << "D = 160 accepted";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("head dimension D = 160"), std::string::npos)
        << e.what_without_backtrace();
  }
  EXPECT_TRUE(at::equal(PairBiasAttention(in.q, in.k, in.v, in.bias, in.key_mask, in.scale),
                        PairBiasAttentionReference(in.q, in.k, in.v, in.bias, in.key_mask, in.scale)));
}

// Peak CUDA memory of forward + backward above what the inputs already hold.
template <typename Fn>
std::int64_t PeakBytes(const Inputs& in, const at::Tensor& dout, Fn fn) {
  namespace alloc = c10::cuda::CUDACachingAllocator;
  const auto device = c10::cuda::current_device();
  constexpr auto kAll = static_cast<std::size_t>(c10::CachingAllocator::StatType::AGGREGATE);
  at::Tensor q = in.q.detach().requires_grad_(true), k = in.k.detach().requires_grad_(true);
  at::Tensor v = in.v.detach().requires_grad_(true), bias = in.bias.detach().requires_grad_(true);
  c10::cuda::device_synchronize();
  alloc::resetPeakStats(device);
  const std::int64_t before = alloc::getDeviceStats(device).allocated_bytes[kAll].current;
  {
    at::Tensor out = fn(q, k, v, bias, in.key_mask, in.scale);
    out.backward(dout);
    c10::cuda::device_synchronize();
  }
  const std::int64_t peak = alloc::getDeviceStats(device).allocated_bytes[kAll].peak;
  for (at::Tensor* t : {&q, &k, &v, &bias}) t->mutable_grad().reset();
  return peak - before;
}

TEST(PairBiasAttentionCuda, FusedPeakMemoryIsFarBelowTheReference) {
  ASSERT_TRUE(at::hasCUDA()) << "no CUDA device";
  const Inputs in = MakeInputs(4, 8, 512, 32, at::kBFloat16, 5);
  const at::Tensor dout = at::randn(in.q.sizes(), in.q.options());
  PeakBytes(in, dout, PairBiasAttentionCuda);  // warm-up: lazy CUDA state, the allocator's pools
  PeakBytes(in, dout, PairBiasAttentionReference);
  const std::int64_t fused = PeakBytes(in, dout, PairBiasAttentionCuda);
  const std::int64_t ref = PeakBytes(in, dout, PairBiasAttentionReference);
  std::printf("peak above inputs, B=4 H=8 N=512 D=32 bf16: fused %.1f MiB, reference %.1f MiB\n", fused / 1048576.0,
              ref / 1048576.0);
  EXPECT_GT(fused, 0);
  EXPECT_LE(2 * fused, ref);
}

}  // namespace
}  // namespace zt::ops::cuda
