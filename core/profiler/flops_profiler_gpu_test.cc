// The flops profiler on CUDA: the same counts as on the CPU (CUDA kernels are reached through
// different ATen decompositions), and module latencies that include the GPU's work because
// scopes synchronise the device.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>

#include "core/profiler/flops_profiler.h"
#include "core/profiler/module_scope.h"
#include "core/util/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt::profiler {
namespace {

class Mlp : public torch::nn::Module {
 public:
  Mlp(std::int64_t d, std::int64_t hidden) {
    fc1 = register_module("fc1", torch::nn::Linear(d, hidden));
    fc2 = register_module("fc2", torch::nn::Linear(hidden, d));
  }
  at::Tensor forward(const at::Tensor& x) {
    ZT_PROFILE_MODULE(this);
    return fc2->forward(at::gelu(fc1->forward(x)));
  }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};

// Attention over x [B, L, D] with H heads through scaled_dot_product_attention.
class Attention : public torch::nn::Module {
 public:
  Attention(std::int64_t d, std::int64_t heads) : heads_(heads) {
    qkv = register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(d, 3 * d).bias(false)));
  }
  at::Tensor forward(const at::Tensor& x) {
    ZT_PROFILE_MODULE(this);
    const std::int64_t B = x.size(0), L = x.size(1), D = x.size(2);
    const at::Tensor h = qkv->forward(x).view({B, L, 3, heads_, D / heads_}).permute({2, 0, 3, 1, 4});
    return at::scaled_dot_product_attention(h[0], h[1], h[2]).transpose(1, 2).reshape({B, L, D});
  }
  torch::nn::Linear qkv{nullptr};

 private:
  std::int64_t heads_;
};

class Block : public torch::nn::Module {
 public:
  Block(std::int64_t d, std::int64_t heads, std::int64_t hidden) {
    attn = register_module("attn", std::make_shared<Attention>(d, heads));
    mlp = register_module("mlp", std::make_shared<Mlp>(d, hidden));
  }
  at::Tensor forward(const at::Tensor& x) {
    ZT_PROFILE_MODULE(this);
    return mlp->forward(attn->forward(x));
  }
  std::shared_ptr<Attention> attn;
  std::shared_ptr<Mlp> mlp;
};

double Seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

void Sync() { c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->synchronizeDevice(0); }

class FlopsProfilerGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_F(FlopsProfilerGpu, CountsTheSameAsOnTheCpu) {
  const std::int64_t B = 4, L = 128, D = 256, H = 4, F = 1024;
  Block block(D, H, F);
  const at::Tensor x = at::randn({B, L, D});
  FlopsProfiler cpu;
  ASSERT_OK(cpu.Start(block, at::kCPU));
  (void)block.forward(x);
  ASSERT_OK(cpu.Stop());

  block.to(at::Device(at::kCUDA, 0), at::kBFloat16);
  const at::Tensor xg = x.to(at::Device(at::kCUDA, 0), at::kBFloat16);
  (void)block.forward(xg);  // warm up: cuBLAS handles, kernel selection
  FlopsProfiler gpu;
  ASSERT_OK(gpu.Start(block, at::Device(at::kCUDA)));
  (void)block.forward(xg);
  ASSERT_OK(gpu.Stop());

  // qkv and both MLP linears (C++ Linear on 3-D input: matmul, + bias add_), sdpa.
  const std::int64_t macs = B * L * D * 3 * D + (B * H * L * (D / H) * L) * 2 + 2 * B * L * D * F;
  EXPECT_EQ(cpu.total_macs(), macs);
  EXPECT_EQ(gpu.total_macs(), macs);
  EXPECT_EQ(gpu.total_flops(), cpu.total_flops());
  EXPECT_EQ(gpu.Find("attn")->macs, cpu.Find("attn")->macs);
  EXPECT_EQ(gpu.op_counts().at("aten::scaled_dot_product_attention").calls, 1);
  for (const auto& [name, count] : gpu.op_counts()) {
    EXPECT_THAT(name, ::testing::Not(::testing::HasSubstr("_scaled_dot_product"))) << "counted twice";
    EXPECT_NE(name, "aten::bmm");
    EXPECT_NE(name, "aten::mm");
  }
  EXPECT_GT(gpu.Find("attn")->latency_s, 0.0);
  EXPECT_GE(gpu.Find("")->latency_s, gpu.Find("attn")->latency_s + gpu.Find("mlp")->latency_s);
}

// Without the synchronisation a module's latency would be its kernels' launch time; with it,
// the GPU's time.  The MLP below runs ~0.9 TFLOP in bf16 (about a millisecond or more).
TEST_F(FlopsProfilerGpu, LatencyIncludesTheGpusWork) {
  const std::int64_t D = 4096, F = 16384, N = 8192;
  Mlp mlp(D, F);
  mlp.to(at::Device(at::kCUDA, 0), at::kBFloat16);
  const at::Tensor x = at::randn({N, D}, at::TensorOptions().device(at::kCUDA, 0).dtype(at::kBFloat16));
  for (int i = 0; i < 3; ++i) (void)mlp.forward(x);
  Sync();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i) (void)mlp.forward(x);
  Sync();
  const double reference = Seconds(std::chrono::steady_clock::now() - t0) / 5;

  FlopsProfiler prof;
  ASSERT_OK(prof.Start(mlp, at::Device(at::kCUDA, 0)));
  (void)mlp.forward(x);
  ASSERT_OK(prof.Stop());
  const double latency = prof.Find("")->latency_s;
  EXPECT_EQ(prof.total_macs(), 2 * N * D * F);
  EXPECT_GT(latency, 0.5 * reference) << "reference " << reference;
  EXPECT_LT(latency, 20 * reference + 0.05) << "reference " << reference;
  const std::string report = prof.Report(ProfileSummary{});
  EXPECT_THAT(report, ::testing::HasSubstr("TFLOPS"));
  std::printf("GPU MLP: %.3f ms profiled, %.3f ms unprofiled, %s\n", 1e3 * latency, 1e3 * reference,
              FlopsToString(static_cast<double>(prof.total_flops()) / latency).c_str());
}

}  // namespace
}  // namespace zt::profiler
