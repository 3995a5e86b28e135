// T5's architecture as HF's config.json describes it (T5Config), for t5-small ... t5-11b, the
// v1.1 family and flan-t5.
//
//   ASSIGN_OR_RETURN(zt::nlp::T5Config c, zt::nlp::ReadT5Config(dir + "/config.json"));
//   ASSIGN_OR_RETURN(zt::nlp::T5Config c, zt::nlp::T5ConfigForName("t5-large"));
#ifndef ZEROTRAIN_NLP_T5_T5_CONFIG_H_
#define ZEROTRAIN_NLP_T5_T5_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace zt::nlp {

struct T5Config {
  std::int64_t vocab_size = 32128;
  std::int64_t d_model = 512;
  std::int64_t d_kv = 64;
  std::int64_t d_ff = 2048;
  std::int64_t num_layers = 6;
  std::int64_t num_decoder_layers = 6;
  std::int64_t num_heads = 8;
  std::int64_t relative_attention_num_buckets = 32;
  std::int64_t relative_attention_max_distance = 128;
  double dropout_rate = 0.1;
  double layer_norm_epsilon = 1e-6;
  double initializer_factor = 1.0;
  bool gated = false;               // feed_forward_proj "gated-<act>"
  std::string activation = "relu";  // relu | gelu_new | gelu | silu
  // The head shares the input embedding (t5); v1.1 and flan-t5 have their own lm_head.
  bool tie_word_embeddings = true;
  // Decoder output times d_model^-0.5 before the head (t5; not v1.1).  transformers 5 keeps it
  // in "scale_decoder_outputs"; older configs imply it by tie_word_embeddings.
  bool scale_decoder_outputs = true;
  std::int64_t pad_token_id = 0;
  std::int64_t eos_token_id = 1;
  std::int64_t decoder_start_token_id = 0;

  std::int64_t inner_dim() const { return num_heads * d_kv; }
  // As HF's config.json (transformers 4 layout, readable by 4 and 5).
  std::string ToJson() const;
};

// Parses an HF config.json; errors name the file and the key.
absl::StatusOr<T5Config> ReadT5Config(const std::string& path);
absl::StatusOr<T5Config> ParseT5Config(absl::string_view json, absl::string_view source);

// The published architectures: t5-small, t5-base, t5-large, t5-3b, t5-11b,
// google/t5-v1_1-{small,base,large,xl,xxl}, google/flan-t5-{small,base,large,xl,xxl} (the
// "google/" prefix is optional).  kNotFound lists them for any other name.
absl::StatusOr<T5Config> T5ConfigForName(absl::string_view name);

// Model FLOPs of one training step (forward + backward = 3 x the forward's matmul FLOPs) on
// `batch` samples of `src_len` source and `tgt_len` target tokens: 2 x the weights each token
// passes through (encoder stack, decoder stack, cross-attention keys and values over the source,
// the head), plus attention scores and context (encoder S^2, decoder T^2 and T x S per layer).
// tools/bench/peers/t5_hf.py counts the same way.
double T5TrainingFlops(const T5Config& c, double batch, double src_len, double tgt_len);

// The parameters T5ForConditionalGeneration holds for this architecture (the shared embedding
// once, lm_head when untied), from the config alone: what a run must find room for before it
// builds the model.
std::int64_t T5ParameterCount(const T5Config& c);

}  // namespace zt::nlp

#endif  // ZEROTRAIN_NLP_T5_T5_CONFIG_H_
