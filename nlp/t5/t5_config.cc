#include "nlp/t5/t5_config.h"

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "core/util/file_util.h"
#include "nlohmann/json.hpp"

namespace zt::nlp {
namespace {

struct Named {
  const char* name;
  std::int64_t d_model, d_ff, d_kv, heads, layers;
  bool v1_1;
};
constexpr Named kNamed[] = {
    {"t5-small", 512, 2048, 64, 8, 6, false},        {"t5-base", 768, 3072, 64, 12, 12, false},
    {"t5-large", 1024, 4096, 64, 16, 24, false},     {"t5-3b", 1024, 16384, 128, 32, 24, false},
    {"t5-11b", 1024, 65536, 128, 128, 24, false},    {"t5-v1_1-small", 512, 1024, 64, 6, 8, true},
    {"t5-v1_1-base", 768, 2048, 64, 12, 12, true},   {"t5-v1_1-large", 1024, 2816, 64, 16, 24, true},
    {"t5-v1_1-xl", 2048, 5120, 64, 32, 24, true},    {"t5-v1_1-xxl", 4096, 10240, 64, 64, 24, true},
    {"flan-t5-small", 512, 1024, 64, 6, 8, true},    {"flan-t5-base", 768, 2048, 64, 12, 12, true},
    {"flan-t5-large", 1024, 2816, 64, 16, 24, true}, {"flan-t5-xl", 2048, 5120, 64, 32, 24, true},
    {"flan-t5-xxl", 4096, 10240, 64, 64, 24, true},
};

absl::Status KeyError(absl::string_view source, absl::string_view key, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": key \"", key, "\" ", what));
}

}  // namespace

absl::StatusOr<T5Config> ParseT5Config(absl::string_view json, absl::string_view source) {
  const nlohmann::json j = nlohmann::json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  }
  if (auto mt = j.find("model_type"); mt != j.end() && *mt != "t5") {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": model_type ", mt->dump(), " is not \"t5\" (only T5 models are supported)"));
  }
  T5Config c;
  absl::Status bad;
  auto integer = [&](const char* key, std::int64_t& out, std::int64_t min) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null() || !bad.ok()) return;
    if (!it->is_number_integer() || it->get<std::int64_t>() < min) {
      bad = KeyError(source, key, absl::StrCat("must be an integer >= ", min, ", got ", it->dump()));
      return;
    }
    out = it->get<std::int64_t>();
  };
  auto real = [&](const char* key, double& out) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null() || !bad.ok()) return;
    if (!it->is_number() || it->get<double>() < 0) {
      bad = KeyError(source, key, absl::StrCat("must be a non-negative number, got ", it->dump()));
      return;
    }
    out = it->get<double>();
  };
  integer("vocab_size", c.vocab_size, 1);
  integer("d_model", c.d_model, 1);
  integer("d_kv", c.d_kv, 1);
  integer("d_ff", c.d_ff, 1);
  integer("num_layers", c.num_layers, 1);
  c.num_decoder_layers = c.num_layers;
  integer("num_decoder_layers", c.num_decoder_layers, 1);
  integer("num_heads", c.num_heads, 1);
  integer("relative_attention_num_buckets", c.relative_attention_num_buckets, 2);
  integer("relative_attention_max_distance", c.relative_attention_max_distance, 1);
  integer("pad_token_id", c.pad_token_id, 0);
  integer("eos_token_id", c.eos_token_id, 0);
  c.decoder_start_token_id = c.pad_token_id;
  integer("decoder_start_token_id", c.decoder_start_token_id, 0);
  real("dropout_rate", c.dropout_rate);
  real("layer_norm_epsilon", c.layer_norm_epsilon);
  real("initializer_factor", c.initializer_factor);
  if (!bad.ok()) return bad;
  if (c.dropout_rate >= 1) return KeyError(source, "dropout_rate", "must be below 1");
  std::string proj = "relu";
  if (auto it = j.find("feed_forward_proj"); it != j.end()) {
    if (!it->is_string()) return KeyError(source, "feed_forward_proj", "must be a string");
    proj = it->get<std::string>();
  }
  c.gated = absl::StartsWith(proj, "gated-");
  c.activation = c.gated ? proj.substr(6) : proj;
  if (c.activation == "gelu" && c.gated) c.activation = "gelu_new";  // as HF maps "gated-gelu"
  if (c.activation != "relu" && c.activation != "gelu_new" && c.activation != "gelu" && c.activation != "silu") {
    return KeyError(source, "feed_forward_proj",
                    absl::StrCat("\"", proj, "\" is not one of relu, gelu, gelu_new, silu (optionally gated-)"));
  }
  auto boolean = [&](const char* key, bool& out) -> absl::Status {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return absl::OkStatus();
    if (!it->is_boolean()) return KeyError(source, key, "must be true or false");
    out = it->get<bool>();
    return absl::OkStatus();
  };
  if (absl::Status s = boolean("tie_word_embeddings", c.tie_word_embeddings); !s.ok()) return s;
  c.scale_decoder_outputs = c.tie_word_embeddings;
  if (absl::Status s = boolean("scale_decoder_outputs", c.scale_decoder_outputs); !s.ok()) return s;
  for (std::int64_t id : {c.pad_token_id, c.eos_token_id, c.decoder_start_token_id}) {
    if (id >= c.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": a special token id (", id, ") is outside vocab_size ", c.vocab_size));
    }
  }
  return c;
}

absl::StatusOr<T5Config> ReadT5Config(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  return ParseT5Config(*text, path);
}

absl::StatusOr<T5Config> T5ConfigForName(absl::string_view name) {
  absl::string_view n = name;
  absl::ConsumePrefix(&n, "google/");
  std::vector<std::string> known;
  for (const Named& m : kNamed) {
    known.push_back(m.name);
    if (n != m.name) continue;
    T5Config c;
    c.d_model = m.d_model;
    c.d_ff = m.d_ff;
    c.d_kv = m.d_kv;
    c.num_heads = m.heads;
    c.num_layers = c.num_decoder_layers = m.layers;
    if (m.v1_1) {
      c.gated = true;
      c.activation = "gelu_new";
      c.tie_word_embeddings = false;
      c.scale_decoder_outputs = false;
    }
    return c;
  }
  return absl::NotFoundError(absl::StrCat("\"", name, "\" is neither a model directory nor a known T5 architecture (",
                                          absl::StrJoin(known, ", "), ")"));
}

std::string T5Config::ToJson() const {
  nlohmann::json j = {
      {"architectures", {"T5ForConditionalGeneration"}},
      {"model_type", "t5"},
      {"vocab_size", vocab_size},
      {"d_model", d_model},
      {"d_kv", d_kv},
      {"d_ff", d_ff},
      {"num_layers", num_layers},
      {"num_decoder_layers", num_decoder_layers},
      {"num_heads", num_heads},
      {"relative_attention_num_buckets", relative_attention_num_buckets},
      {"relative_attention_max_distance", relative_attention_max_distance},
      {"dropout_rate", dropout_rate},
      {"layer_norm_epsilon", layer_norm_epsilon},
      {"initializer_factor", initializer_factor},
      {"feed_forward_proj",
       gated ? "gated-" + (activation == "gelu_new" ? std::string("gelu") : activation) : activation},
      {"is_encoder_decoder", true},
      {"tie_word_embeddings", tie_word_embeddings},
      {"scale_decoder_outputs", scale_decoder_outputs},
      {"pad_token_id", pad_token_id},
      {"eos_token_id", eos_token_id},
      {"decoder_start_token_id", decoder_start_token_id},
  };
  return j.dump(2) + "\n";
}

double T5TrainingFlops(const T5Config& c, double batch, double src_len, double tgt_len) {
  const double d = static_cast<double>(c.d_model), inner = static_cast<double>(c.inner_dim());
  const double ff = (c.gated ? 3.0 : 2.0) * d * static_cast<double>(c.d_ff);
  const double enc_tok = 4 * d * inner + ff;
  const double dec_tok = 4 * d * inner + 2 * d * inner + ff;  // self attention, cross q/o, FFN
  const double cross_kv_src = 2 * d * inner;                  // cross k/v over the encoder output
  const double enc_layers = c.num_layers, dec_layers = c.num_decoder_layers;
  double fwd = 2 * batch *
               (src_len * enc_layers * enc_tok + tgt_len * dec_layers * dec_tok + src_len * dec_layers * cross_kv_src +
                tgt_len * d * static_cast<double>(c.vocab_size));
  fwd += 4 * batch * inner * (enc_layers * src_len * src_len + dec_layers * (tgt_len * tgt_len + tgt_len * src_len));
  return 3 * fwd;
}

std::int64_t T5ParameterCount(const T5Config& c) {
  const std::int64_t d = c.d_model, inner = c.inner_dim();
  const std::int64_t ffn = (c.gated ? 3 : 2) * d * c.d_ff;
  const std::int64_t attention = 4 * d * inner;
  const std::int64_t position_bias = c.relative_attention_num_buckets * c.num_heads;  // layer 0 of each stack
  const std::int64_t encoder = c.num_layers * (attention + ffn + 2 * d) + position_bias + d;
  const std::int64_t decoder = c.num_decoder_layers * (2 * attention + ffn + 3 * d) + position_bias + d;
  const std::int64_t embeddings = (c.tie_word_embeddings ? 1 : 2) * c.vocab_size * d;
  return embeddings + encoder + decoder;
}

}  // namespace zt::nlp
