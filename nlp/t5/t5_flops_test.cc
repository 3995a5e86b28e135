// The flops profiler (core/profiler) on one T5 forward: every matmul MAC it counts, module by
// module, against a count made from the config alone.
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>

#include "core/profiler/flops_profiler.h"
#include "core/util/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlp/t5/t5_config.h"
#include "nlp/t5/t5_model.h"

namespace zt::nlp {
namespace {

using profiler::FlopsProfiler;
using profiler::ModuleProfile;
using ::testing::HasSubstr;

// What T5 multiplies, from the config (MACs; no biases anywhere in T5).  B sentences of S source
// and T target tokens, D = d_model, I = heads x d_kv, F = d_ff:
//   encoder layer:  q k v o over S tokens (4 B S D I), scores and context S x S per head
//                   (2 B H S S d_kv), FFN (wi, or wi_0 and wi_1 when gated; wo) over S tokens
//   decoder layer:  the same self-attention over T tokens; cross-attention q and o over T tokens,
//                   k and v over the S encoder outputs, scores and context T x S; FFN over T
//   head:           B T D V (the shared embedding when tied)
// Embedding lookups, the relative position bias (a lookup) and the loss multiply nothing.
struct T5Macs {
  std::int64_t self_attention_enc, ffn_enc, encoder_block;
  std::int64_t self_attention_dec, cross_attention, ffn_dec, decoder_block;
  std::int64_t head, total;
};

T5Macs CountT5Macs(const T5Config& c, std::int64_t B, std::int64_t S, std::int64_t T) {
  const std::int64_t D = c.d_model, I = c.inner_dim(), H = c.num_heads, dk = c.d_kv, F = c.d_ff;
  const std::int64_t ffn_mats = c.gated ? 3 : 2;
  T5Macs m;
  m.self_attention_enc = 4 * B * S * D * I + 2 * B * H * S * S * dk;
  m.ffn_enc = ffn_mats * B * S * D * F;
  m.encoder_block = m.self_attention_enc + m.ffn_enc;
  m.self_attention_dec = 4 * B * T * D * I + 2 * B * H * T * T * dk;
  m.cross_attention = 2 * B * T * D * I + 2 * B * S * D * I + 2 * B * H * T * S * dk;
  m.ffn_dec = ffn_mats * B * T * D * F;
  m.decoder_block = m.self_attention_dec + m.cross_attention + m.ffn_dec;
  m.head = B * T * D * c.vocab_size;
  m.total = c.num_layers * m.encoder_block + c.num_decoder_layers * m.decoder_block + m.head;
  return m;
}

T5Config TinyConfig(bool gated) {
  T5Config c;
  c.vocab_size = 40;
  c.d_model = 16;
  c.d_kv = 6;  // inner 12 != d_model: a transposed count would show
  c.num_heads = 2;
  c.d_ff = 24;
  c.num_layers = 2;
  c.num_decoder_layers = 3;
  c.relative_attention_num_buckets = 8;
  c.relative_attention_max_distance = 16;
  c.gated = gated;
  c.activation = gated ? "gelu_new" : "relu";
  c.tie_word_embeddings = !gated;
  c.scale_decoder_outputs = !gated;
  return c;
}

Batch TinyBatch(std::int64_t B, std::int64_t S, std::int64_t T, std::int64_t vocab) {
  at::manual_seed(3);
  at::Tensor mask = at::ones({B, S}, at::kLong);
  mask.select(0, 1).narrow(0, S - 2, 2).zero_();  // padding changes no shape, so no count
  return {{"input_ids", at::randint(2, vocab, {B, S}, at::kLong)},
          {"attention_mask", mask},
          {"labels", at::randint(2, vocab, {B, T}, at::kLong)}};
}

void ExpectMatmulMacsMatchTheConfig(bool gated) {
  const T5Config c = TinyConfig(gated);
  auto model = std::make_shared<T5ForConditionalGeneration>(c, /*seed=*/1);
  const std::int64_t B = 2, S = 7, T = 5;
  const Batch batch = TinyBatch(B, S, T, c.vocab_size);
  FlopsProfiler prof;
  ASSERT_OK(prof.Start(*model, at::kCPU));
  const at::Tensor loss = model->Forward(batch);
  ASSERT_OK(prof.Stop());
  ASSERT_TRUE(loss.defined());

  const T5Macs want = CountT5Macs(c, B, S, T);
  EXPECT_EQ(prof.total_macs(), want.total);
  // Matmul FLOPs are 2 x MACs; only the projections and FFN (ops::Linear's aten::mm), the head
  // (aten::linear) and attention (aten::matmul) multiply.
  const auto& ops = prof.op_counts();
  ASSERT_EQ(ops.count("aten::linear"), 1u);
  ASSERT_EQ(ops.count("aten::matmul"), 1u);
  ASSERT_EQ(ops.count("aten::mm"), 1u);
  EXPECT_EQ(ops.at("aten::linear").flops + ops.at("aten::matmul").flops + ops.at("aten::mm").flops, 2 * want.total);
  EXPECT_EQ(ops.at("aten::matmul").macs,
            2 * B * c.num_heads * c.d_kv * (c.num_layers * S * S + c.num_decoder_layers * (T * T + T * S)));
  EXPECT_EQ(ops.count("aten::bmm") + ops.count("aten::addmm"), 0u);
  // Norms, softmax, activations and residual adds are counted too, as DeepSpeed counts them.
  EXPECT_GT(prof.total_flops(), 2 * want.total);

  // Module by module: units hold the blocks ("<unit>.module"), blocks their layers.
  auto macs = [&](const std::string& name) -> std::int64_t {
    const ModuleProfile* m = prof.Find(name);
    EXPECT_NE(m, nullptr) << name;
    return m == nullptr ? -1 : m->macs;
  };
  EXPECT_EQ(macs("encoder.block.0.module.layer.0.SelfAttention"), want.self_attention_enc);
  EXPECT_EQ(macs("encoder.block.1.module.layer.1.DenseReluDense"), want.ffn_enc);
  EXPECT_EQ(macs("encoder.block.1.module"), want.encoder_block);
  EXPECT_EQ(macs("encoder.block.1"), want.encoder_block);
  EXPECT_EQ(macs("encoder"), c.num_layers * want.encoder_block);
  EXPECT_EQ(macs("decoder.block.2.module.layer.0.SelfAttention"), want.self_attention_dec);
  EXPECT_EQ(macs("decoder.block.2.module.layer.1.EncDecAttention"), want.cross_attention);
  EXPECT_EQ(macs("decoder.block.0.module.layer.2"), want.ffn_dec);
  EXPECT_EQ(macs("decoder"), c.num_decoder_layers * want.decoder_block);
  EXPECT_EQ(prof.Find("")->own_macs, want.head);  // the head is the model's own linear
  EXPECT_EQ(prof.Find("decoder.block.0.module.layer.1.EncDecAttention")->calls, 1);
  EXPECT_EQ(prof.Find("encoder.final_layer_norm")->calls, 1);
  EXPECT_EQ(prof.Find("encoder.block.0.module")->class_name, "EncoderBlock");
  EXPECT_EQ(prof.Find("encoder.block.0")->class_name, "Unit<EncoderBlock>");

  std::int64_t params = 0;
  for (const at::Tensor& p : model->parameters()) params += p.numel();
  EXPECT_EQ(prof.total_params(), params);

  const std::string report = prof.Report(profiler::ProfileSummary{});
  EXPECT_THAT(report, HasSubstr("T5ForConditionalGeneration(\n"));
  EXPECT_THAT(report, HasSubstr("(SelfAttention): Attention("));
  EXPECT_THAT(report, HasSubstr(profiler::MacsToString(static_cast<double>(want.total))));
}

TEST(T5Flops, MatmulMacsOfAForwardMatchTheConfig) { ExpectMatmulMacsMatchTheConfig(/*gated=*/false); }

TEST(T5Flops, MatmulMacsOfAGatedUntiedForwardMatchTheConfig) { ExpectMatmulMacsMatchTheConfig(/*gated=*/true); }

// The count from the config is what the model holds, tied and untied, with uneven stacks.
TEST(T5Flops, ParameterCountFromTheConfigIsTheModels) {
  for (const bool gated : {false, true}) {
    const T5Config c = TinyConfig(gated);  // 2 encoder and 3 decoder layers
    const auto model = std::make_shared<T5ForConditionalGeneration>(c, /*seed=*/1);
    std::int64_t held = 0;
    for (const auto& p : model->parameters()) held += p.numel();
    EXPECT_EQ(T5ParameterCount(c), held) << (gated ? "gated, untied" : "relu, tied");
  }
}

}  // namespace
}  // namespace zt::nlp
