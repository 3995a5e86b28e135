// Our T5 against HF transformers' T5ForConditionalGeneration on the fixtures that
// testdata/make_t5_fixtures.py made: same weights, same inputs, same logits, loss and gradients.
#include "nlp/t5/t5_model.h"

#include <ATen/ATen.h>

#include <cstdlib>
#include <map>
#include <string>

#include "core/ckpt/safetensors.h"
#include "core/util/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlp/t5/t5_config.h"

namespace zt::nlp {
namespace {

using ::testing::HasSubstr;

std::string Fixture(const std::string& style) {
  return std::string(std::getenv("TEST_SRCDIR")) + "/zerotrain/nlp/t5/testdata/" + style;
}

std::shared_ptr<T5ForConditionalGeneration> LoadFixture(const std::string& dir, std::uint64_t seed = 5) {
  absl::StatusOr<T5Config> config = ReadT5Config(dir + "/config.json");
  EXPECT_THAT(config.status(), IsOk());
  auto model = std::make_shared<T5ForConditionalGeneration>(*config, seed);
  EXPECT_THAT(model->LoadHfCheckpoint(dir + "/model.safetensors"), IsOk());
  model->eval();
  return model;
}

double MaxAbs(const at::Tensor& t) { return t.abs().max().item<double>(); }

class T5ParityTest : public ::testing::TestWithParam<std::string> {};

TEST_P(T5ParityTest, LogitsLossAndGradientsMatchHf) {
  const std::string dir = Fixture(GetParam());
  auto model = LoadFixture(dir);
  absl::StatusOr<ckpt::Safetensors> ref = ckpt::ReadSafetensors(dir + "/reference.safetensors");
  ASSERT_THAT(ref.status(), IsOk());
  const Batch batch = {{"input_ids", *ref->Find("input_ids")},
                       {"attention_mask", *ref->Find("attention_mask")},
                       {"labels", *ref->Find("labels")}};
  const at::Tensor logits = model->Logits(batch);
  const at::Tensor& want = *ref->Find("logits");
  ASSERT_EQ(logits.sizes(), want.sizes());
  EXPECT_LE(MaxAbs(logits - want), 1e-4) << "logits differ from HF's";

  const at::Tensor loss = model->Forward(batch);
  EXPECT_NEAR(loss.item<double>(), ref->Find("loss")->item<double>(), 1e-5);
  loss.backward();
  std::map<std::string, at::Tensor> grads;
  for (const auto& [name, p] : model->HfStateDict()) grads[name] = p.grad();
  int compared = 0;
  for (const auto& [key, g] : ref->tensors) {
    if (key.rfind("grad.", 0) != 0) continue;
    const std::string name = key.substr(5);
    ASSERT_EQ(grads.count(name), 1u) << "HF has a parameter we lack: " << name;
    const at::Tensor& ours = grads[name];
    ASSERT_TRUE(ours.defined()) << name << " got no gradient";
    EXPECT_LE(MaxAbs(ours - g), 1e-4 * std::max(MaxAbs(g), 1e-6)) << name;
    ++compared;
  }
  EXPECT_EQ(compared, static_cast<int>(grads.size())) << "we have parameters HF lacks";
}

// The settings make_t5_fixtures.py passed to generate().
TEST_P(T5ParityTest, GenerateMatchesHf) {
  const std::string dir = Fixture(GetParam());
  auto model = LoadFixture(dir);
  absl::StatusOr<ckpt::Safetensors> ref = ckpt::ReadSafetensors(dir + "/reference.safetensors");
  ASSERT_THAT(ref.status(), IsOk());
  using ES = GenerateOptions::EarlyStopping;
  const std::map<std::string, GenerateOptions> settings = {
      {"greedy", {12, 1, 1.0, ES::kFalse}},
      {"beam3", {12, 3, 1.0, ES::kFalse}},
      {"beam4_early", {9, 4, 0.6, ES::kTrue}},
  };
  for (const auto& [key, options] : settings) {
    const at::Tensor got = model->Generate(*ref->Find("input_ids"), *ref->Find("attention_mask"), options);
    const at::Tensor& want = *ref->Find("generate." + key);
    EXPECT_TRUE(got.sizes() == want.sizes() && at::equal(got, want)) << key << ": ours " << got << "\nHF's " << want;
  }
  EXPECT_TRUE(model->is_training() == false);
}

INSTANTIATE_TEST_SUITE_P(Styles, T5ParityTest, ::testing::Values("t5", "v1_1"));

// fp16: the fixture's FFN outputs pass 65504 in every block.  HF loads it as fp16 with wo kept in
// fp32; ours, all fp16, computes wo in fp32 and must agree with that (pure fp16 is 0.69 off).
TEST(T5ModelTest, Fp16KeepsTheFfnOutputInFp32) {
  const std::string dir = Fixture("fp16");
  auto model = LoadFixture(dir);
  absl::StatusOr<ckpt::Safetensors> ref = ckpt::ReadSafetensors(dir + "/reference.safetensors");
  ASSERT_THAT(ref.status(), IsOk());
  const Batch batch = {{"input_ids", *ref->Find("input_ids")}, {"labels", *ref->Find("labels")}};
  EXPECT_LE(MaxAbs(model->Logits(batch) - *ref->Find("logits")), 1e-4) << "fp32 logits differ from HF's";

  model->to(at::kHalf);
  const at::Tensor logits = model->Logits(batch);
  EXPECT_EQ(logits.scalar_type(), at::kHalf);
  EXPECT_LE(MaxAbs(logits.to(at::kFloat) - *ref->Find("logits_fp16")), 1e-2) << "fp16 logits differ from HF's";
  EXPECT_LE(MaxAbs(logits.to(at::kFloat) - *ref->Find("logits")), 2e-2) << "fp16 logits drift from fp32";
  const at::Tensor loss = model->Forward(batch);
  EXPECT_NEAR(loss.item<double>(), ref->Find("loss_fp16")->item<double>(), 5e-3);
  loss.backward();
  for (const auto& [name, p] : model->HfStateDict()) {
    ASSERT_TRUE(p.grad().defined()) << name;
    EXPECT_TRUE(at::isfinite(p.grad()).all().item<bool>()) << name << " has a non-finite gradient";
  }
}

TEST(T5ModelTest, SavedCheckpointLoadsBackIdentically) {
  auto model = LoadFixture(Fixture("v1_1"));
  const std::string out = std::string(std::getenv("TEST_TMPDIR")) + "/saved";
  ASSERT_THAT(model->SaveHfCheckpoint(out), IsOk());
  auto again = LoadFixture(out, /*seed=*/77);
  const auto a = model->HfStateDict(), b = again->HfStateDict();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_TRUE(at::equal(a[i].second, b[i].second)) << a[i].first;
  }
  absl::StatusOr<T5Config> c = ReadT5Config(out + "/config.json");
  ASSERT_THAT(c.status(), IsOk());
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_TRUE(c->gated);
  EXPECT_EQ(c->num_decoder_layers, 3);
}

TEST(T5ModelTest, CheckpointErrorsNameFileAndTensor) {
  const std::string dir = Fixture("t5");
  absl::StatusOr<T5Config> config = ReadT5Config(dir + "/config.json");
  ASSERT_THAT(config.status(), IsOk());
  T5Config wider = *config;
  wider.d_ff = 48;
  T5ForConditionalGeneration a(wider, 1);
  EXPECT_THAT(a.LoadHfCheckpoint(dir + "/model.safetensors"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("model.safetensors"), HasSubstr("DenseReluDense.wi.weight"),
                                        HasSubstr("[32, 16]"), HasSubstr("[48, 16]"))));
  T5Config untied = *config;
  untied.tie_word_embeddings = false;
  T5ForConditionalGeneration b(untied, 1);
  EXPECT_THAT(b.LoadHfCheckpoint(dir + "/model.safetensors"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no tensor \"lm_head.weight\"")));
  EXPECT_THAT(b.LoadHfCheckpoint(dir + "/nothing.safetensors"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nothing.safetensors")));
}

TEST(T5ModelTest, ShiftRightAndDropout) {
  T5Config c;
  c.vocab_size = 40;
  c.d_model = 8;
  c.d_kv = 2;
  c.num_heads = 4;
  c.d_ff = 16;
  c.num_layers = c.num_decoder_layers = 2;
  c.decoder_start_token_id = 3;
  T5ForConditionalGeneration m(c, 9);
  const at::Tensor labels = at::tensor({5, 6, 7, -100}, at::kLong).view({1, 4});
  EXPECT_TRUE(at::equal(m.ShiftRight(labels), at::tensor({3, 5, 6, 7}, at::kLong).view({1, 4})));
  EXPECT_TRUE(at::equal(m.ShiftRight(at::tensor({8, -100, -100}, at::kLong).view({1, 3})),
                        at::tensor({3, 8, 0}, at::kLong).view({1, 3})));
  const Batch batch = {{"input_ids", at::randint(2, 40, {2, 5})}, {"labels", at::randint(2, 40, {2, 4})}};
  m.eval();
  const at::Tensor a = m.Logits(batch), b = m.Logits(batch);
  EXPECT_TRUE(at::equal(a, b));  // eval: deterministic
  m.train();
  EXPECT_FALSE(at::equal(m.Logits(batch), a));  // train: dropout
}

TEST(T5ConfigTest, ParsesAndRejects) {
  absl::StatusOr<T5Config> c = ParseT5Config(R"({"model_type": "t5", "d_model": 64, "num_layers": 3,
      "feed_forward_proj": "gated-gelu", "tie_word_embeddings": false})",
                                             "c.json");
  ASSERT_THAT(c.status(), IsOk());
  EXPECT_EQ(c->num_decoder_layers, 3);  // defaults to num_layers
  EXPECT_EQ(c->activation, "gelu_new");
  EXPECT_FALSE(c->scale_decoder_outputs);
  EXPECT_THAT(
      ParseT5Config(R"({"d_model": "big"})", "c.json").status(),
      StatusIs(absl::StatusCode::kInvalidArgument, ::testing::AllOf(HasSubstr("c.json"), HasSubstr("d_model"))));
  EXPECT_THAT(ParseT5Config(R"({"feed_forward_proj": "swish"})", "c.json").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("feed_forward_proj")));
  EXPECT_THAT(ParseT5Config(R"({"model_type": "bart"})", "c.json").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"bart\"")));
  EXPECT_THAT(ParseT5Config("{", "c.json").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a JSON object")));
  absl::StatusOr<T5Config> large = T5ConfigForName("t5-large");
  ASSERT_THAT(large.status(), IsOk());
  EXPECT_EQ(large->d_model, 1024);
  EXPECT_EQ(large->num_layers, 24);
  absl::StatusOr<T5Config> flan = T5ConfigForName("google/flan-t5-base");
  ASSERT_THAT(flan.status(), IsOk());
  EXPECT_TRUE(flan->gated);
  EXPECT_FALSE(flan->tie_word_embeddings);
  EXPECT_THAT(T5ConfigForName("t5-huge").status(),
              StatusIs(absl::StatusCode::kNotFound, ::testing::AllOf(HasSubstr("t5-huge"), HasSubstr("t5-11b"))));
}

}  // namespace
}  // namespace zt::nlp
