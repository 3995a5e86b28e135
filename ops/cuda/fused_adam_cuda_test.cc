// The fused Adam kernel against ops/adam.h's reference on fresh random inputs: bit for bit on
// the fp32 state, the 16-bit copy equal to the master rounded, many chunks per call, and the
// fp16 overflow flags.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>

#include <cmath>
#include <limits>
#include <vector>

#include "gtest/gtest.h"
#include "ops/adam.h"
#include "ops/cuda/fused_adam.h"

namespace zt::ops::cuda {
namespace {

struct State {
  at::Tensor p, g, m, v;  // fp32
};

State Random(std::int64_t n, std::uint64_t seed) {
  at::manual_seed(seed);
  return {at::randn({n}), at::randn({n}) * 0.1, at::randn({n}) * 0.01, at::rand({n}) * 1e-3};
}

State ToCuda(const State& s) { return {s.p.to(at::kCUDA), s.g.to(at::kCUDA), s.m.to(at::kCUDA), s.v.to(at::kCUDA)}; }

void Reference(State& s, const AdamStep& step) {
  AdamReference(s.p.data_ptr<float>(), s.g.data_ptr<float>(), s.m.data_ptr<float>(), s.v.data_ptr<float>(), s.p.numel(),
                step);
}

AdamChunk ChunkOf(State& s, const at::Tensor& out16 = at::Tensor()) {
  AdamChunk c;
  c.param = s.p.data_ptr<float>();
  c.grad = s.g.data_ptr<float>();
  c.exp_avg = s.m.data_ptr<float>();
  c.exp_avg_sq = s.v.data_ptr<float>();
  c.out16 = out16.defined() ? out16.data_ptr() : nullptr;
  c.n = s.p.numel();
  return c;
}

AdamStep Step(float lr, float weight_decay, bool decoupled, std::int64_t t, float grad_scale) {
  AdamStep s;
  s.lr = lr;
  s.weight_decay = weight_decay;
  s.decoupled = decoupled;
  s.step = t;
  s.grad_scale = grad_scale;
  return s;
}

cudaStream_t Stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

void ExpectSame(const State& gpu, const State& ref, const char* what) {
  EXPECT_TRUE(at::equal(gpu.p.cpu(), ref.p)) << what << ": params";
  EXPECT_TRUE(at::equal(gpu.m.cpu(), ref.m)) << what << ": exp_avg";
  EXPECT_TRUE(at::equal(gpu.v.cpu(), ref.v)) << what << ": exp_avg_sq";
}

TEST(FusedAdamCuda, MatchesReferenceBitForBitOverSteps) {
  ASSERT_TRUE(at::hasCUDA()) << "no CUDA device";
  for (const bool decoupled : {true, false}) {
    for (const std::int64_t n : {std::int64_t{1}, std::int64_t{1023}, std::int64_t{(1 << 20) + 5}}) {
      State ref = Random(n, n + decoupled);
      State gpu = ToCuda(ref);
      at::Tensor out = at::empty({n}, at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA));
      for (std::int64_t t = 1; t <= 3; ++t) {
        const AdamStep s = Step(1e-3f, 0.01f, decoupled, t, 0.25f * t);
        Reference(ref, s);
        AdamChunk c = ChunkOf(gpu, out);
        ASSERT_EQ(LaunchFusedAdam(&c, 1, AdamCopyOut::kBFloat16, MakeFusedAdamArgs(s), nullptr, nullptr, Stream()),
                  cudaSuccess);
        // The next step's gradient: fresh values.
        at::Tensor g = at::randn({n}) * 0.1;
        ref.g.copy_(g);
        gpu.g.copy_(g);
      }
      ExpectSame(gpu, ref, decoupled ? "AdamW" : "Adam L2");
      EXPECT_TRUE(at::equal(out.cpu(), ref.p.to(at::kBFloat16))) << "the bf16 copy is the master rounded";
    }
  }
}

// A clipping factor that lives on the device multiplies the gradients as the host's grad_scale
// would: the same bits as the reference stepping with their product.
TEST(FusedAdamCuda, DeviceGradScaleActsAsTheHostOne) {
  ASSERT_TRUE(at::hasCUDA()) << "no CUDA device";
  const std::int64_t n = 4099;
  State ref = Random(n, 11);
  State gpu = ToCuda(ref);
  at::Tensor out = at::empty({n}, at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA));
  for (const float factor : {0.3137f, 1.0f}) {
    at::Tensor on_device = at::full({1}, factor, at::TensorOptions().dtype(at::kFloat).device(at::kCUDA));
    AdamStep s = Step(1e-3f, 0.01f, /*decoupled=*/true, factor == 1.0f ? 2 : 1, 0.5f);
    AdamStep product = s;
    product.grad_scale = 0.5f * factor;
    Reference(ref, product);
    FusedAdamArgs args = MakeFusedAdamArgs(s);
    args.device_grad_scale = on_device.data_ptr<float>();
    AdamChunk c = ChunkOf(gpu, out);
    ASSERT_EQ(LaunchFusedAdam(&c, 1, AdamCopyOut::kBFloat16, args, nullptr, nullptr, Stream()), cudaSuccess);
  }
  ExpectSame(gpu, ref, "device grad scale");
  EXPECT_TRUE(at::equal(out.cpu(), ref.p.to(at::kBFloat16)));
}

TEST(FusedAdamCuda, ManyChunksInOneCallWithFp16CopyOut) {
  ASSERT_TRUE(at::hasCUDA()) << "no CUDA device";
  // More chunks than one launch takes, of odd sizes and offsets into one flat buffer (ZeRO's
  // shards are narrow views), plus an empty one.
  std::vector<std::int64_t> sizes;
  for (int i = 0; i < kFusedAdamMaxChunks + 9; ++i) sizes.push_back(i == 5 ? 0 : 17 + 997 * i);
  std::int64_t total = 0;
  for (std::int64_t s : sizes) total += s;
  State ref = Random(total + 3, 7);
  State flat = ToCuda(ref);
  at::Tensor out = at::zeros({total + 3}, at::TensorOptions().dtype(at::kHalf).device(at::kCUDA));
  const AdamStep s = Step(2e-3f, 0.1f, /*decoupled=*/true, 5, 1.0f);
  std::vector<AdamChunk> chunks;
  std::int64_t at_elem = 3;  // leave the first three untouched
  for (std::int64_t size : sizes) {
    State view{flat.p.narrow(0, at_elem, size), flat.g.narrow(0, at_elem, size), flat.m.narrow(0, at_elem, size),
               flat.v.narrow(0, at_elem, size)};
    chunks.push_back(ChunkOf(view, out.narrow(0, at_elem, size)));
    at_elem += size;
  }
  ASSERT_EQ(LaunchFusedAdam(chunks.data(), static_cast<int>(chunks.size()), AdamCopyOut::kFloat16, MakeFusedAdamArgs(s),
                            nullptr, nullptr, Stream()),
            cudaSuccess);
  State tail{ref.p.narrow(0, 3, total), ref.g.narrow(0, 3, total), ref.m.narrow(0, 3, total),
             ref.v.narrow(0, 3, total)};
  AdamReference(tail.p.data_ptr<float>(), tail.g.data_ptr<float>(), tail.m.data_ptr<float>(), tail.v.data_ptr<float>(),
                total, s);
  ExpectSame(flat, ref, "chunked");
  at::Tensor expect_out = ref.p.to(at::kHalf);
  expect_out.narrow(0, 0, 3).zero_();
  EXPECT_TRUE(at::equal(out.cpu(), expect_out));
}

TEST(FusedAdamCuda, Fp16OverflowFlagsAndSkip) {
  ASSERT_TRUE(at::hasCUDA()) << "no CUDA device";
  const std::int64_t n = 4099;
  const auto iopts = at::TensorOptions().dtype(at::kInt).device(at::kCUDA);
  const AdamStep s = Step(1e-3f, 0.0f, /*decoupled=*/true, 1, 1.0f);
  // A gradient that is inf, at the last element: flagged.
  {
    State ref = Random(n, 11);
    ref.g[n - 1] = std::numeric_limits<float>::infinity();
    State gpu = ToCuda(ref);
    at::Tensor flag = at::zeros({1}, iopts);
    at::Tensor out = at::empty({n}, at::TensorOptions().dtype(at::kHalf).device(at::kCUDA));
    AdamChunk c = ChunkOf(gpu, out);
    ASSERT_EQ(
        LaunchFusedAdam(&c, 1, AdamCopyOut::kFloat16, MakeFusedAdamArgs(s), nullptr, flag.data_ptr<int>(), Stream()),
        cudaSuccess);
    EXPECT_EQ(flag.item<int>(), 1);
  }
  // A master weight beyond fp16's range: its fp16 copy overflows, flagged.
  {
    State ref = Random(n, 12);
    ref.p[17] = 1e6f;
    State gpu = ToCuda(ref);
    at::Tensor flag = at::zeros({1}, iopts);
    at::Tensor out = at::empty({n}, at::TensorOptions().dtype(at::kHalf).device(at::kCUDA));
    AdamChunk c = ChunkOf(gpu, out);
    ASSERT_EQ(
        LaunchFusedAdam(&c, 1, AdamCopyOut::kFloat16, MakeFusedAdamArgs(s), nullptr, flag.data_ptr<int>(), Stream()),
        cudaSuccess);
    EXPECT_EQ(flag.item<int>(), 1);
  }
  // Finite everything: no flag.  Then skip_if set: nothing changes.
  {
    State ref = Random(n, 13);
    State gpu = ToCuda(ref);
    at::Tensor flag = at::zeros({1}, iopts);
    at::Tensor out = at::zeros({n}, at::TensorOptions().dtype(at::kHalf).device(at::kCUDA));
    AdamChunk c = ChunkOf(gpu, out);
    ASSERT_EQ(
        LaunchFusedAdam(&c, 1, AdamCopyOut::kFloat16, MakeFusedAdamArgs(s), nullptr, flag.data_ptr<int>(), Stream()),
        cudaSuccess);
    EXPECT_EQ(flag.item<int>(), 0);
    const State before{gpu.p.cpu(), gpu.g.cpu(), gpu.m.cpu(), gpu.v.cpu()};
    const at::Tensor out_before = out.cpu();
    at::Tensor skip = at::ones({1}, iopts);
    ASSERT_EQ(
        LaunchFusedAdam(&c, 1, AdamCopyOut::kFloat16, MakeFusedAdamArgs(s), skip.data_ptr<int>(), nullptr, Stream()),
        cudaSuccess);
    ExpectSame(gpu, before, "skipped");
    EXPECT_TRUE(at::equal(out.cpu(), out_before));
  }
}

TEST(FusedAdamCuda, RejectsMissingPointers) {
  AdamChunk c;
  c.n = 10;
  EXPECT_EQ(LaunchFusedAdam(&c, 1, AdamCopyOut::kNone, FusedAdamArgs{}, nullptr, nullptr, nullptr),
            cudaErrorInvalidValue);
}

}  // namespace
}  // namespace zt::ops::cuda
