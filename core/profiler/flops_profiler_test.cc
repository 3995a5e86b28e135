#include "core/profiler/flops_profiler.h"

#include <ATen/ATen.h>
#include <ATen/record_function.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "core/profiler/module_scope.h"
#include "core/util/status_matchers.h"
#include "core/util/test_files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt::profiler {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Linear(in -> hidden), relu, Linear(hidden -> out).  The Linears have no scope of their own,
// so their ops land in Mlp.  LibTorch's C++ Linear runs at::addmm(bias, x, weight.t()) on 2-D
// input (Python's runs F.linear), which DeepSpeed counts as 2 x MACs + bias.numel() FLOPs.
class Mlp : public torch::nn::Module {
 public:
  Mlp(std::int64_t in, std::int64_t hidden, std::int64_t out) {
    fc1 = register_module("fc1", torch::nn::Linear(in, hidden));
    fc2 = register_module("fc2", torch::nn::Linear(hidden, out));
  }
  at::Tensor forward(const at::Tensor& x) {
    ZT_PROFILE_MODULE(this);
    return fc2->forward(at::relu(fc1->forward(x)));
  }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};

// x @ weight [d, classes] without bias, then softmax.
class Head : public torch::nn::Module {
 public:
  Head(std::int64_t d, std::int64_t classes) { weight = register_parameter("weight", at::randn({d, classes})); }
  at::Tensor forward(const at::Tensor& x) {
    ZT_PROFILE_MODULE(this);
    return at::softmax(at::matmul(x, weight), -1);
  }
  at::Tensor weight;
};

class Net : public torch::nn::Module {
 public:
  Net() {
    mlp = register_module("mlp", std::make_shared<Mlp>(64, 32, 16));
    head = register_module("head", std::make_shared<Head>(16, 4));
  }
  at::Tensor forward(const at::Tensor& x) {
    ZT_PROFILE_MODULE(this);
    return head->forward(mlp->forward(x));
  }
  std::shared_ptr<Mlp> mlp;
  std::shared_ptr<Head> head;
};

// Hand counts for Net on x [8, 64].
constexpr std::int64_t kFc1Macs = 8 * 64 * 32;
constexpr std::int64_t kFc2Macs = 8 * 32 * 16;
constexpr std::int64_t kReluFlops = 8 * 32;
constexpr std::int64_t kMlpMacs = kFc1Macs + kFc2Macs;
constexpr std::int64_t kMlpFlops = 2 * kMlpMacs + 32 + 16 + kReluFlops;  // addmm's bias adds
constexpr std::int64_t kHeadMacs = 8 * 16 * 4;
constexpr std::int64_t kHeadFlops = 2 * kHeadMacs + 8 * 4;  // matmul + softmax
constexpr std::int64_t kNetMacs = kMlpMacs + kHeadMacs;
constexpr std::int64_t kNetFlops = kMlpFlops + kHeadFlops;

absl::Status ProfileNet(Net& net, FlopsProfiler& prof, const at::Tensor& x) {
  if (absl::Status s = prof.Start(net, at::kCPU); !s.ok()) return s;
  (void)net.forward(x);
  return prof.Stop();
}

TEST(FlopsProfiler, CountsLinearsActivationAndMatmulExactly) {
  Net net;
  FlopsProfiler prof;
  ASSERT_OK(ProfileNet(net, prof, at::randn({8, 64})));
  EXPECT_EQ(prof.total_macs(), kNetMacs);
  EXPECT_EQ(prof.total_flops(), kNetFlops);
  const auto& ops = prof.op_counts();
  ASSERT_EQ(ops.count("aten::addmm"), 1u);
  EXPECT_EQ(ops.at("aten::addmm").calls, 2);
  EXPECT_EQ(ops.at("aten::addmm").macs, kMlpMacs);
  EXPECT_EQ(ops.at("aten::addmm").flops, 2 * kMlpMacs + 32 + 16);
  EXPECT_EQ(ops.count("aten::mm"), 0u);  // addmm's own kernel is not counted again
  EXPECT_EQ(ops.at("aten::relu").flops, kReluFlops);
  EXPECT_EQ(ops.at("aten::softmax").flops, 8 * 4);
}

TEST(FlopsProfiler, AttributesOpsToTheInnermostScopeAndSumsParents) {
  Net net;
  FlopsProfiler prof;
  ASSERT_OK(ProfileNet(net, prof, at::randn({8, 64})));
  const ModuleProfile* root = prof.Find("");
  const ModuleProfile* mlp = prof.Find("mlp");
  const ModuleProfile* head = prof.Find("head");
  const ModuleProfile* fc1 = prof.Find("mlp.fc1");
  ASSERT_NE(root, nullptr);
  ASSERT_NE(mlp, nullptr);
  ASSERT_NE(head, nullptr);
  ASSERT_NE(fc1, nullptr);
  EXPECT_EQ(mlp->macs, kMlpMacs);
  EXPECT_EQ(mlp->flops, kMlpFlops);
  EXPECT_EQ(mlp->own_flops, kMlpFlops);
  EXPECT_EQ(head->flops, kHeadFlops);
  EXPECT_EQ(root->own_flops, 0);
  EXPECT_EQ(root->flops, kNetFlops);
  EXPECT_EQ(fc1->flops, 0);  // no scope: its linear is Mlp's
  EXPECT_EQ(fc1->depth, 2);
  EXPECT_EQ(fc1->class_name, "Linear");
  EXPECT_EQ(mlp->class_name, "Mlp");
  EXPECT_EQ(root->class_name, "Net");
  EXPECT_EQ(mlp->calls, 1);
  EXPECT_EQ(fc1->calls, 0);
  EXPECT_GT(mlp->latency_s, 0.0);
  EXPECT_GE(root->latency_s, mlp->latency_s + head->latency_s);
  EXPECT_DOUBLE_EQ(fc1->latency_s, 0.0);
}

TEST(FlopsProfiler, OpsOutsideAnyScopeGoToTheRoot) {
  Net net;
  FlopsProfiler prof;
  const at::Tensor a = at::randn({3, 5}), b = at::randn({5, 7});
  ASSERT_OK(prof.Start(net, at::kCPU));
  (void)at::mm(a, b);
  ASSERT_OK(prof.Stop());
  EXPECT_EQ(prof.Find("")->own_macs, 3 * 5 * 7);
  EXPECT_EQ(prof.total_macs(), 3 * 5 * 7);
  EXPECT_EQ(prof.Find("mlp")->macs, 0);
}

TEST(FlopsProfiler, CountsCompositeOpsOnce) {
  Net net;
  FlopsProfiler prof;
  const at::Tensor a3 = at::randn({6, 3, 5}), b3 = at::randn({6, 5, 7}), a = at::randn({3, 5}), b = at::randn({5, 7}),
                   x3 = at::randn({2, 3, 5}), w = at::randn({7, 5}), bias = at::randn({7}),
                   a4 = at::randn({2, 1, 3, 5}), b4 = at::randn({4, 5, 7});
  ASSERT_OK(prof.Start(net, at::kCPU));
  // matmul -> bmm (batched), matmul -> mm (2-D), linear with bias -> addmm / matmul + add.
  (void)at::matmul(a3, b3);
  (void)at::matmul(a, b);
  (void)at::linear(x3, w, bias);
  (void)at::linear(a, w, bias);
  // Broadcast batch dims: [2, 1, 3, 5] @ [4, 5, 7] is 2 x 4 products of 3x5 @ 5x7.
  (void)at::matmul(a4, b4);
  ASSERT_OK(prof.Stop());
  const auto& ops = prof.op_counts();
  EXPECT_EQ(ops.count("aten::bmm"), 0u);
  EXPECT_EQ(ops.count("aten::mm"), 0u);
  EXPECT_EQ(ops.count("aten::addmm"), 0u);
  EXPECT_EQ(ops.count("aten::add"), 0u);
  EXPECT_EQ(ops.at("aten::matmul").macs, 6 * 3 * 5 * 7 + 3 * 5 * 7 + 2 * 4 * 3 * 5 * 7);
  EXPECT_EQ(ops.at("aten::linear").macs, 2 * 3 * 5 * 7 + 3 * 5 * 7);
  EXPECT_EQ(prof.total_flops(), 2 * prof.total_macs());
}

TEST(FlopsProfiler, AddmmAndBaddbmmCountTheirAddsAsDeepSpeedDoes) {
  Net net;
  FlopsProfiler prof;
  const at::Tensor c = at::randn({7}), a = at::randn({3, 5}), b = at::randn({5, 7}), bc = at::randn({2, 3, 7}),
                   ba = at::randn({2, 3, 5}), bb = at::randn({2, 5, 7});
  ASSERT_OK(prof.Start(net, at::kCPU));
  (void)at::addmm(c, a, b);
  (void)at::baddbmm(bc, ba, bb);
  ASSERT_OK(prof.Stop());
  EXPECT_EQ(prof.total_macs(), 3 * 5 * 7 + 2 * 3 * 5 * 7);
  EXPECT_EQ(prof.total_flops(), 2 * (3 * 5 * 7) + 7 + 2 * (2 * 3 * 5 * 7) + 2 * 3 * 7);
}

TEST(FlopsProfiler, CountsConvolutionFromItsOutput) {
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(3, 4, 3).padding(1));
  FlopsProfiler prof;
  const at::Tensor x = at::randn({2, 3, 8, 8});
  ASSERT_OK(prof.Start(*conv, at::kCPU));
  (void)conv->forward(x);
  ASSERT_OK(prof.Stop());
  const std::int64_t outputs = 2 * 4 * 8 * 8;
  const std::int64_t macs = outputs * 3 * 3 * 3;
  EXPECT_EQ(prof.total_macs(), macs);
  EXPECT_EQ(prof.total_flops(), 2 * macs + outputs);  // + one bias add per output
  EXPECT_EQ(prof.op_counts().at("aten::conv2d").calls, 1);
  EXPECT_EQ(prof.op_counts().count("aten::convolution"), 0u);
  EXPECT_EQ(prof.Find("")->class_name, "Conv2d");
}

TEST(FlopsProfiler, CountsScaledDotProductAttentionOnce) {
  Net net;
  FlopsProfiler prof;
  const at::Tensor q = at::randn({2, 4, 5, 8}), k = at::randn({2, 4, 7, 8}), v = at::randn({2, 4, 7, 6});
  ASSERT_OK(prof.Start(net, at::kCPU));
  (void)at::scaled_dot_product_attention(q, k, v);
  ASSERT_OK(prof.Stop());
  const std::int64_t macs = q.numel() * 7 + 2 * 4 * 5 * 7 * 6;  // q k^T, then weights @ v
  EXPECT_EQ(prof.total_macs(), macs);
  EXPECT_EQ(prof.total_flops(), 2 * macs);
  EXPECT_EQ(prof.op_counts().size(), 1u);
}

TEST(FlopsProfiler, CountsNormsAndElementwiseOpsByElements) {
  Net net;
  FlopsProfiler prof;
  const at::Tensor x = at::randn({4, 10}), w = at::ones({10}), b = at::zeros({10});
  ASSERT_OK(prof.Start(net, at::kCPU));
  (void)at::layer_norm(x, {10}, w, b);  // 5 per element with an affine weight
  (void)at::layer_norm(x, {10});        // 4 without
  // T5's RMS norm written out: pow, mean, + eps, rsqrt, x * r, w * h.
  const at::Tensor var = x.pow(2).mean(-1, /*keepdim=*/true);
  (void)(w * (x * at::rsqrt(var + 1e-6)));
  // Index arithmetic on integers is not floating-point work.
  (void)(at::arange(10) * 3 + 1);
  ASSERT_OK(prof.Stop());
  EXPECT_EQ(prof.total_macs(), 0);
  EXPECT_EQ(prof.total_flops(), 40 * 5 + 40 * 4 + (40 + 40 + 4 + 4 + 40 + 40));
  EXPECT_EQ(prof.op_counts().count("aten::native_layer_norm"), 0u);
  EXPECT_EQ(prof.op_counts().at("aten::mul").flops, 80);
}

TEST(FlopsProfiler, DropoutAndEmbeddingAreFreeAndHideTheirInsides) {
  Net net;
  FlopsProfiler prof;
  const at::Tensor x = at::randn({4, 10}), table = at::randn({10, 3}), ids = at::arange(4);
  ASSERT_OK(prof.Start(net, at::kCPU));
  (void)at::dropout(x, 0.5, /*train=*/true);
  (void)at::embedding(table, ids);
  ASSERT_OK(prof.Stop());
  EXPECT_EQ(prof.total_flops(), 0);
  EXPECT_EQ(prof.op_counts().count("aten::mul"), 0u);
  EXPECT_EQ(prof.op_counts().at("aten::dropout").calls, 1);
}

TEST(FlopsProfiler, CountsNothingWhenNotRunningAndStopRemovesTheCallback) {
  Net net;
  const at::Tensor x = at::randn({8, 64});
  EXPECT_EQ(ThreadModuleScopeListener(), nullptr);
  (void)net.forward(x);  // scopes are inert without a profiler
  FlopsProfiler prof;
  EXPECT_EQ(prof.total_flops(), 0);
  EXPECT_TRUE(prof.modules().empty());
  ASSERT_OK(prof.Start(net, at::kCPU));
  EXPECT_TRUE(at::hasThreadLocalCallbacks());
  EXPECT_NE(ThreadModuleScopeListener(), nullptr);
  (void)net.forward(x);
  ASSERT_OK(prof.Stop());
  EXPECT_FALSE(at::hasThreadLocalCallbacks());
  EXPECT_EQ(ThreadModuleScopeListener(), nullptr);
  (void)net.forward(x);
  (void)at::mm(at::randn({3, 5}), at::randn({5, 7}));
  EXPECT_EQ(prof.total_flops(), kNetFlops);
  EXPECT_EQ(prof.Find("mlp")->calls, 1);
  EXPECT_EQ(prof.op_counts().count("aten::mm"), 0u);
}

TEST(FlopsProfiler, SumsRepeatedCallsOfAModule) {
  Net net;
  FlopsProfiler prof;
  ASSERT_OK(prof.Start(net, at::kCPU));
  const at::Tensor x = at::randn({8, 64});
  (void)net.forward(x);
  (void)net.forward(x);
  ASSERT_OK(prof.Stop());
  EXPECT_EQ(prof.total_flops(), 2 * kNetFlops);
  EXPECT_EQ(prof.Find("mlp")->calls, 2);
  EXPECT_EQ(prof.Find("")->calls, 2);
}

TEST(FlopsProfiler, StartAgainDropsThePreviousProfile) {
  Net net;
  FlopsProfiler prof;
  ASSERT_OK(ProfileNet(net, prof, at::randn({8, 64})));
  ASSERT_OK(ProfileNet(net, prof, at::randn({8, 64})));
  EXPECT_EQ(prof.total_flops(), kNetFlops);
}

TEST(FlopsProfiler, CountsParametersPerModule) {
  Net net;
  FlopsProfiler prof;
  ASSERT_OK(ProfileNet(net, prof, at::randn({8, 64})));
  EXPECT_EQ(prof.Find("mlp.fc1")->params, 64 * 32 + 32);
  EXPECT_EQ(prof.Find("mlp")->params, 64 * 32 + 32 + 32 * 16 + 16);
  EXPECT_EQ(prof.Find("head")->params, 16 * 4);
  std::int64_t all = 0;
  for (const at::Tensor& p : net.parameters()) all += p.numel();
  EXPECT_EQ(prof.total_params(), all);
  EXPECT_EQ(prof.modules().size(), 5u);  // Net, mlp, fc1, fc2, head
  EXPECT_EQ(prof.Find("nope"), nullptr);
}

TEST(FlopsProfiler, RefusesMisuse) {
  Net net;
  FlopsProfiler prof;
  EXPECT_THAT(prof.Stop(), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("without a running")));
  ASSERT_OK(prof.Start(net, at::kCPU));
  EXPECT_THAT(prof.Start(net, at::kCPU), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("already")));
  FlopsProfiler other;
  EXPECT_THAT(other.Start(net, at::kCPU),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("another profile")));
  ASSERT_OK(prof.Stop());
  {
    at::RecordFunctionGuard off(/*is_enabled=*/false);
    EXPECT_THAT(other.Start(net, at::kCPU),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("RecordFunction is disabled")));
  }
  EXPECT_FALSE(other.running());
}

TEST(FlopsProfiler, DestructorStopsARunningProfile) {
  Net net;
  {
    FlopsProfiler prof;
    ASSERT_OK(prof.Start(net, at::kCPU));
  }
  EXPECT_FALSE(at::hasThreadLocalCallbacks());
  EXPECT_EQ(ThreadModuleScopeListener(), nullptr);
}

TEST(FlopsProfilerUnits, MatchDeepSpeed) {
  EXPECT_EQ(NumberToString(1.234e9), "1.23 G");
  EXPECT_EQ(NumberToString(0), "0 ");
  EXPECT_EQ(DurationToString(0.0456), "45.6 ms");
  EXPECT_EQ(DurationToString(1.5), "1.5 s");
  EXPECT_EQ(DurationToString(3.409e-5), "34.09 us");
  EXPECT_EQ(FlopsToString(12.3e12), "12.3 TFLOPS");
  EXPECT_EQ(MacsToString(3139.93e9), "3.14 TMACs");
  EXPECT_EQ(ParamsToString(336.23e6), "336.23 M");
  EXPECT_EQ(ParamsToString(1.5e9), "1.5 B");
  EXPECT_EQ(ParamsToString(12), "12");
}

ProfileSummary Summary() {
  ProfileSummary s;
  s.profile_step = 3;
  s.world_size = 2;
  s.data_parallel_size = 2;
  s.micro_batch_size_per_gpu = 8;
  s.fwd_latency_s = 0.1;
  s.bwd_latency_s = 0.2;
  s.step_latency_s = 0.1;
  return s;
}

TEST(FlopsProfilerReport, HasDeepSpeedsSectionsNamesAndNumbers) {
  Net net;
  FlopsProfiler prof;
  ASSERT_OK(ProfileNet(net, prof, at::randn({8, 64})));
  const std::string r = prof.Report(Summary());
  EXPECT_THAT(r, HasSubstr("-------------------------- DeepSpeed Flops Profiler --------------------------\n"
                           "Profile Summary at step 3:\n"));
  EXPECT_THAT(r, HasSubstr(absl::StrFormat("%-70s  %s\n", "world size: ", "2")));
  EXPECT_THAT(r, HasSubstr("batch size per GPU: "));
  EXPECT_THAT(r, HasSubstr("params per GPU: "));
  EXPECT_THAT(r, HasSubstr(ParamsToString(static_cast<double>(prof.total_params())) + "\n"));
  EXPECT_THAT(r, HasSubstr("fwd MACs per GPU: "));
  EXPECT_THAT(r, HasSubstr(MacsToString(kNetMacs) + "\n"));  // 20.99 KMACs
  EXPECT_THAT(r, HasSubstr("fwd flops per GPU: "));
  EXPECT_THAT(r, HasSubstr(NumberToString(kNetFlops) + "\n"));
  EXPECT_THAT(r, HasSubstr("fwd latency: "));
  EXPECT_THAT(r, HasSubstr("100 ms\n"));
  EXPECT_THAT(r, HasSubstr("bwd FLOPS per GPU = 2 * fwd flops per GPU / bwd latency: "));
  EXPECT_THAT(r, HasSubstr("fwd+bwd FLOPS per GPU = 3 * fwd flops per GPU / (fwd+bwd latency): "));
  EXPECT_THAT(r, HasSubstr("FLOPS per GPU = 3 * fwd flops per GPU / iter latency: "));
  EXPECT_THAT(r, HasSubstr("iter latency: "));
  EXPECT_THAT(r, HasSubstr("400 ms\n"));
  EXPECT_THAT(r, HasSubstr("samples/second: "));
  EXPECT_THAT(r, HasSubstr("40.0\n"));  // 8 x 2 / 0.4 s
  EXPECT_THAT(r, HasSubstr("----------------------------- Aggregated Profile per GPU -----------------------------\n"
                           "Top 1 modules in terms of params, MACs or fwd latency at different model depths:\n"
                           "depth 0:\n"));
  EXPECT_THAT(r, HasSubstr("    MACs        - {'Net': '" + MacsToString(kNetMacs) + "'}\n"));
  EXPECT_THAT(r, HasSubstr("    MACs        - {'Mlp': '" + MacsToString(kMlpMacs) + "'}\n"));
  EXPECT_THAT(r, HasSubstr("    params      - {'Mlp': '2.61 K'}\n"));  // 2080 + 528
  EXPECT_THAT(r, HasSubstr("depth 2:\n"));
  EXPECT_THAT(r, HasSubstr("------------------------------ Detailed Profile per GPU ------------------------------\n"));
  EXPECT_THAT(r, HasSubstr("Net(\n  " + ParamsToString(static_cast<double>(prof.total_params())) +
                           ", 100.00% Params, " + MacsToString(kNetMacs) + ", 100.00% MACs, "));
  EXPECT_THAT(r, HasSubstr("  (mlp): Mlp(\n    2.61 K, "));
  EXPECT_THAT(r, HasSubstr("    (fc1): Linear(2.08 K, "));
  EXPECT_THAT(r, HasSubstr("  (head): Head(64, "));
}

TEST(FlopsProfilerReport, TopModulesListsSeveralClasses) {
  Net net;
  FlopsProfiler prof;
  ASSERT_OK(ProfileNet(net, prof, at::randn({8, 64})));
  ProfileSummary s = Summary();
  s.top_modules = 2;
  const std::string r = prof.Report(s);
  EXPECT_THAT(r, HasSubstr("Top 2 modules"));
  EXPECT_THAT(r, HasSubstr("    params      - {'Mlp': '2.61 K', 'Head': '64'}\n"));
}

TEST(FlopsProfilerReport, ModuleDepthLimitsBothProfiles) {
  Net net;
  FlopsProfiler prof;
  ASSERT_OK(ProfileNet(net, prof, at::randn({8, 64})));
  ProfileSummary s = Summary();
  s.module_depth = 1;
  const std::string r = prof.Report(s);
  EXPECT_THAT(r, HasSubstr("depth 1:\n"));
  EXPECT_THAT(r, Not(HasSubstr("depth 2:\n")));
  EXPECT_THAT(r, HasSubstr("  (mlp): Mlp(2.61 K, "));  // one line: its children are below the limit
  EXPECT_THAT(r, Not(HasSubstr("(fc1)")));
}

TEST(FlopsProfilerReport, NotDetailedLeavesTheTreeOutAndNoBwdLeavesItsLinesOut) {
  Net net;
  FlopsProfiler prof;
  ASSERT_OK(ProfileNet(net, prof, at::randn({8, 64})));
  ProfileSummary s;
  s.detailed = false;
  const std::string r = prof.Report(s);
  EXPECT_THAT(r, Not(HasSubstr("Detailed Profile per GPU")));
  EXPECT_THAT(r, Not(HasSubstr("bwd latency: ")));
  EXPECT_THAT(r, Not(HasSubstr("samples/second: ")));
  EXPECT_THAT(r, HasSubstr("Aggregated Profile per GPU"));
  // The forward latency falls back to the profiler's own (Start to Stop).
  EXPECT_THAT(r, HasSubstr(DurationToString(prof.total_latency_s()) + "\n"));
}

TEST(FlopsProfilerReport, WritesTheOutputFile) {
  const std::string dir = zt::testing::FreshTestDir();
  const std::string path = dir + "/sub/flops.txt";
  ASSERT_OK(WriteReport("report text\n", path));
  EXPECT_EQ(zt::testing::Slurp(path), "report text\n");
}

TEST(FlopsProfilerReport, AnUnwritableOutputFileIsAnErrorNamingIt) {
  const std::string dir = zt::testing::FreshTestDir();
  std::ofstream(dir + "/blocker") << "a file, not a directory";
  const std::string path = dir + "/blocker/flops.txt";
  const absl::Status s = WriteReport("report text\n", path);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr(path));
}

}  // namespace
}  // namespace zt::profiler
