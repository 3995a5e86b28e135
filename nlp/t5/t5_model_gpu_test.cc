// Our T5 on CUDA, where it runs the fused kernels (RMS norm, the chunked head + cross-entropy,
// the flash attention where the head size allows), against HF's numbers from the same fixtures
// as t5_model_test: fp32 to float rounding, bf16 and fp16 to their precision; and t5-small's
// bf16 flash attention against its fp32 reference attention.
#include <ATen/ATen.h>

#include <cstdlib>
#include <map>
#include <string>

#include "core/ckpt/safetensors.h"
#include "core/util/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlp/t5/t5_config.h"
#include "nlp/t5/t5_model.h"
#include "ops/linear_cross_entropy.h"
#include "ops/rms_norm.h"

namespace zt::nlp {
namespace {

std::string Fixture(const std::string& style) {
  return std::string(std::getenv("TEST_SRCDIR")) + "/zerotrain/nlp/t5/testdata/" + style;
}

struct Loaded {
  std::shared_ptr<T5ForConditionalGeneration> model;
  ckpt::Safetensors ref;
  Batch batch;  // on CUDA
};

Loaded Load(const std::string& style, at::ScalarType dtype) {
  const std::string dir = Fixture(style);
  absl::StatusOr<T5Config> config = ReadT5Config(dir + "/config.json");
  EXPECT_THAT(config.status(), IsOk());
  Loaded l{std::make_shared<T5ForConditionalGeneration>(*config, 5), {}, {}};
  EXPECT_THAT(l.model->LoadHfCheckpoint(dir + "/model.safetensors"), IsOk());
  l.model->eval();
  l.model->to(at::kCUDA, dtype);
  absl::StatusOr<ckpt::Safetensors> ref = ckpt::ReadSafetensors(dir + "/reference.safetensors");
  EXPECT_THAT(ref.status(), IsOk());
  l.ref = std::move(*ref);
  for (const char* key : {"input_ids", "attention_mask", "labels"}) {
    if (const at::Tensor* t = l.ref.Find(key)) l.batch[key] = t->to(at::kCUDA);
  }
  return l;
}

double MaxAbs(const at::Tensor& t) { return t.abs().max().item<double>(); }

class T5GpuParityTest : public ::testing::TestWithParam<std::string> {};

TEST_P(T5GpuParityTest, Fp32LogitsLossAndGradientsMatchHf) {
  ASSERT_TRUE(at::hasCUDA()) << "no CUDA device";
  ASSERT_TRUE(ops::HasCudaRmsNorm() && ops::HasCudaLinearCrossEntropy()) << "the fused kernels are not linked";
  Loaded l = Load(GetParam(), at::kFloat);
  const at::Tensor& want = *l.ref.Find("logits");
  EXPECT_LE(MaxAbs(l.model->Logits(l.batch).cpu() - want), 2e-4 * std::max(MaxAbs(want), 1.0));
  const at::Tensor loss = l.model->Forward(l.batch);
  EXPECT_NEAR(loss.item<double>(), l.ref.Find("loss")->item<double>(), 1e-4);
  loss.backward();
  std::map<std::string, at::Tensor> grads;
  for (const auto& [name, p] : l.model->HfStateDict()) grads[name] = p.grad();
  int compared = 0;
  for (const auto& [key, g] : l.ref.tensors) {
    if (key.rfind("grad.", 0) != 0) continue;
    const std::string name = key.substr(5);
    ASSERT_EQ(grads.count(name), 1u) << name;
    ASSERT_TRUE(grads[name].defined()) << name << " got no gradient";
    EXPECT_LE(MaxAbs(grads[name].cpu() - g), 1e-3 * std::max(MaxAbs(g), 1e-6)) << name;
    ++compared;
  }
  EXPECT_EQ(compared, static_cast<int>(grads.size()));
}

TEST_P(T5GpuParityTest, Bf16LossAndGradientsFollowHf) {
  ASSERT_TRUE(at::hasCUDA()) << "no CUDA device";
  Loaded l = Load(GetParam(), at::kBFloat16);
  const at::Tensor loss = l.model->Forward(l.batch);
  EXPECT_EQ(loss.scalar_type(), at::kFloat);
  const double want = l.ref.Find("loss")->item<double>();
  EXPECT_NEAR(loss.item<double>(), want, 0.02 * want) << "bf16 loss drifts from HF's fp32 loss";
  loss.backward();
  for (const auto& [name, p] : l.model->HfStateDict()) {
    const at::Tensor* g = l.ref.Find("grad." + name);
    ASSERT_NE(g, nullptr) << name;
    ASSERT_TRUE(p.grad().defined()) << name;
    EXPECT_EQ(p.grad().scalar_type(), at::kBFloat16) << name;
    // Per tensor: the bf16 gradient points where the fp32 one does.
    const at::Tensor a = p.grad().to(at::kDouble).cpu().reshape({-1}), b = g->to(at::kDouble).reshape({-1});
    const double cos =
        (a * b).sum().item<double>() / std::max(a.norm().item<double>() * b.norm().item<double>(), 1e-30);
    EXPECT_GT(cos, 0.99) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Styles, T5GpuParityTest, ::testing::Values("t5", "v1_1"));

// fp16 with the FFN output (and so the residual stream) in fp32: the norm's (fp32 x, fp16
// weight) pair and fp16 attention.
TEST(T5GpuTest, Fp16FollowsHf) {
  ASSERT_TRUE(at::hasCUDA()) << "no CUDA device";
  Loaded l = Load("fp16", at::kHalf);
  const at::Tensor logits = l.model->Logits(l.batch);
  EXPECT_EQ(logits.scalar_type(), at::kHalf);
  EXPECT_LE(MaxAbs(logits.to(at::kFloat).cpu() - *l.ref.Find("logits_fp16")), 2e-2);
  EXPECT_NEAR(l.model->Forward(l.batch).item<double>(), l.ref.Find("loss_fp16")->item<double>(), 1e-2);
}

// t5-small's heads (d_kv 64) take the flash attention kernels (ops/cuda/bias_attention) in bf16;
// the fp32 copy of the same weights runs the unfused reference attention.  Padded sources and
// lengths that are not whole tiles.
TEST(T5GpuTest, Bf16FlashAttentionFollowsFp32) {
  ASSERT_TRUE(at::hasCUDA()) << "no CUDA device";
  absl::StatusOr<T5Config> config = T5ConfigForName("t5-small");
  ASSERT_THAT(config.status(), IsOk());
  config->num_layers = config->num_decoder_layers = 2;
  auto fp32 = std::make_shared<T5ForConditionalGeneration>(*config, 11);
  auto bf16 = std::make_shared<T5ForConditionalGeneration>(*config, 11);
  fp32->eval();
  bf16->eval();
  fp32->to(at::kCUDA, at::kFloat);
  bf16->to(at::kCUDA, at::kBFloat16);
  at::manual_seed(3);
  const auto opts = at::TensorOptions().dtype(at::kLong).device(at::kCUDA);
  at::Tensor mask = at::ones({4, 100}, opts);
  mask.select(0, 1).narrow(0, 70, 30).zero_();
  mask.select(0, 3).narrow(0, 9, 91).zero_();
  const Batch batch = {{"input_ids", at::randint(2, config->vocab_size, {4, 100}, opts)},
                       {"attention_mask", mask},
                       {"labels", at::randint(2, config->vocab_size, {4, 37}, opts)}};
  const at::Tensor want = fp32->Forward(batch), got = bf16->Forward(batch);
  EXPECT_NEAR(got.item<double>(), want.item<double>(), 0.02 * want.item<double>());
  want.backward();
  got.backward();
  std::map<std::string, at::Tensor> ref;
  for (const auto& [name, p] : fp32->HfStateDict()) ref[name] = p;
  for (const auto& [name, p] : bf16->HfStateDict()) {
    ASSERT_TRUE(p.grad().defined()) << name;
    const at::Tensor a = p.grad().to(at::kDouble).reshape({-1}), b = ref.at(name).grad().to(at::kDouble).reshape({-1});
    const double cos =
        (a * b).sum().item<double>() / std::max(a.norm().item<double>() * b.norm().item<double>(), 1e-30);
    EXPECT_GT(cos, 0.99) << name;
  }
}

}  // namespace
}  // namespace zt::nlp
