#include "nlp/t5/t5_model.h"

#include <ATen/ATen.h>
#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <mutex>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "core/ckpt/safetensors.h"
#include "core/util/logging.h"
#include "core/util/torch_status.h"

namespace zt::nlp {
namespace t5 {

// A module holding one parameter called "weight" (HF's nn.Linear without bias, nn.Embedding).
class Weight : public torch::nn::Module {
 public:
  Weight(std::int64_t rows, std::int64_t cols, double std) {
    weight = register_parameter("weight", at::empty({rows, cols}).normal_(0.0, std));
  }
  at::Tensor Linear(const at::Tensor& x) const { return at::linear(x, weight); }
  at::Tensor weight;
};

class LayerNorm : public torch::nn::Module {
 public:
  LayerNorm(std::int64_t d, double eps) : eps_(eps) { weight = register_parameter("weight", at::ones({d})); }
  at::Tensor forward(const at::Tensor& x) const {
    const at::Tensor variance = x.to(at::kFloat).pow(2).mean(-1, /*keepdim=*/true);
    at::Tensor h = x * at::rsqrt(variance + eps_);
    if (weight.scalar_type() == at::kHalf || weight.scalar_type() == at::kBFloat16) h = h.to(weight.scalar_type());
    return weight * h;
  }
  at::Tensor weight;

 private:
  double eps_;
};

// HF's T5Attention: q, k, v, o without bias; the first block's self-attention also owns the
// relative position bias table [buckets, heads].
class Attention : public torch::nn::Module {
 public:
  Attention(const T5Config& c, bool relative_bias, bool bidirectional) : c_(c), bidirectional_(bidirectional) {
    const double f = c.initializer_factor;
    const std::int64_t inner = c.inner_dim();
    q = register_module("q", std::make_shared<Weight>(inner, c.d_model, f * std::pow(c.d_model * c.d_kv, -0.5)));
    k = register_module("k", std::make_shared<Weight>(inner, c.d_model, f * std::pow(c.d_model, -0.5)));
    v = register_module("v", std::make_shared<Weight>(inner, c.d_model, f * std::pow(c.d_model, -0.5)));
    o = register_module("o", std::make_shared<Weight>(c.d_model, inner, f * std::pow(inner, -0.5)));
    if (relative_bias) {
      relative_attention_bias = register_module(
          "relative_attention_bias",
          std::make_shared<Weight>(c.relative_attention_num_buckets, c.num_heads, f * std::pow(c.d_model, -0.5)));
    }
  }

  // x [B, q, D] attends to kv [B, k, D] with the additive bias [B or 1, H, q, k].
  at::Tensor forward(const at::Tensor& x, const at::Tensor& kv, const at::Tensor& bias, bool training) const {
    const std::int64_t b = x.size(0), h = c_.num_heads, dk = c_.d_kv;
    auto heads = [&](const at::Tensor& t) { return t.view({b, -1, h, dk}).transpose(1, 2); };
    const at::Tensor qh = heads(q->Linear(x)), kh = heads(k->Linear(kv)), vh = heads(v->Linear(kv));
    at::Tensor scores = at::matmul(qh, kh.transpose(3, 2));  // T5: no 1/sqrt(d_kv)
    scores = scores + bias;
    at::Tensor w = at::softmax(scores.to(at::kFloat), -1).to(scores.scalar_type());
    w = at::dropout(w, c_.dropout_rate, training);
    const at::Tensor out = at::matmul(w, vh).transpose(1, 2).contiguous().view({b, -1, c_.inner_dim()});
    return o->Linear(out);
  }

  // The learned bias [1, H, q, k] for query and key positions 0..q-1 / 0..k-1.
  at::Tensor PositionBias(std::int64_t q_len, std::int64_t k_len, const at::Device& device) const {
    const auto opts = at::TensorOptions().dtype(at::kLong).device(device);
    const at::Tensor relative = at::arange(k_len, opts).unsqueeze(0) - at::arange(q_len, opts).unsqueeze(1);
    const at::Tensor buckets = Bucket(relative);
    const at::Tensor values = at::embedding(relative_attention_bias->weight, buckets);  // [q, k, H]
    return values.permute({2, 0, 1}).unsqueeze(0);
  }

  std::shared_ptr<Weight> q, k, v, o, relative_attention_bias;

 private:
  // HF's _relative_position_bucket: exact buckets for small distances, logarithmic ones up to
  // max_distance, the last bucket beyond; the sign gets half the buckets when bidirectional.
  at::Tensor Bucket(at::Tensor relative) const {
    std::int64_t buckets = c_.relative_attention_num_buckets;
    at::Tensor result = at::zeros_like(relative);
    if (bidirectional_) {
      buckets /= 2;
      result = result + (relative > 0).to(at::kLong) * buckets;
      relative = relative.abs();
    } else {
      relative = -at::clamp_max(relative, 0);
    }
    const std::int64_t max_exact = buckets / 2;
    const at::Tensor is_small = relative < max_exact;
    at::Tensor large = max_exact + (at::log(relative.to(at::kFloat) / static_cast<double>(max_exact)) /
                                    std::log(static_cast<double>(c_.relative_attention_max_distance) / max_exact) *
                                    static_cast<double>(buckets - max_exact))
                                       .to(at::kLong);
    large = at::clamp_max(large, buckets - 1);
    return result + at::where(is_small, relative, large);
  }

  const T5Config c_;
  const bool bidirectional_;
};

class DenseActDense : public torch::nn::Module {
 public:
  explicit DenseActDense(const T5Config& c) : c_(c) {
    const double f = c.initializer_factor;
    if (c.gated) {
      wi_0 = register_module("wi_0", std::make_shared<Weight>(c.d_ff, c.d_model, f * std::pow(c.d_model, -0.5)));
      wi_1 = register_module("wi_1", std::make_shared<Weight>(c.d_ff, c.d_model, f * std::pow(c.d_model, -0.5)));
    } else {
      wi = register_module("wi", std::make_shared<Weight>(c.d_ff, c.d_model, f * std::pow(c.d_model, -0.5)));
    }
    wo = register_module("wo", std::make_shared<Weight>(c.d_model, c.d_ff, f * std::pow(c.d_ff, -0.5)));
  }
  at::Tensor forward(const at::Tensor& x, bool training) const {
    at::Tensor h = c_.gated ? Act(wi_0->Linear(x)) * wi_1->Linear(x) : Act(wi->Linear(x));
    h = at::dropout(h, c_.dropout_rate, training);
    if (h.scalar_type() != wo->weight.scalar_type()) h = h.to(wo->weight.scalar_type());
    return wo->Linear(h);
  }
  std::shared_ptr<Weight> wi, wi_0, wi_1, wo;

 private:
  at::Tensor Act(const at::Tensor& x) const {
    if (c_.activation == "relu") return at::relu(x);
    if (c_.activation == "gelu_new") return at::gelu(x, "tanh");
    if (c_.activation == "gelu") return at::gelu(x);
    return at::silu(x);
  }
  const T5Config c_;
};

// HF keeps fp16 activations finite by clamping them just below the largest half.
at::Tensor ClampHalf(const at::Tensor& x) {
  if (x.scalar_type() != at::kHalf) return x;
  const double max = 65504.0 - 1000.0;
  return at::clamp(x, -max, max);
}

// One sublayer: pre-norm, the inner computation, dropout, residual.
struct SelfAttentionLayer : torch::nn::Module {
  SelfAttentionLayer(const T5Config& c, bool relative_bias, bool bidirectional) : rate(c.dropout_rate) {
    SelfAttention = register_module("SelfAttention", std::make_shared<Attention>(c, relative_bias, bidirectional));
    layer_norm = register_module("layer_norm", std::make_shared<LayerNorm>(c.d_model, c.layer_norm_epsilon));
  }
  at::Tensor forward(const at::Tensor& x, const at::Tensor& bias) {
    const at::Tensor n = layer_norm->forward(x);
    return ClampHalf(x + at::dropout(SelfAttention->forward(n, n, bias, is_training()), rate, is_training()));
  }
  double rate;
  std::shared_ptr<Attention> SelfAttention;
  std::shared_ptr<LayerNorm> layer_norm;
};

struct CrossAttentionLayer : torch::nn::Module {
  explicit CrossAttentionLayer(const T5Config& c) : rate(c.dropout_rate) {
    EncDecAttention = register_module("EncDecAttention", std::make_shared<Attention>(c, false, true));
    layer_norm = register_module("layer_norm", std::make_shared<LayerNorm>(c.d_model, c.layer_norm_epsilon));
  }
  at::Tensor forward(const at::Tensor& x, const at::Tensor& enc, const at::Tensor& bias) {
    const at::Tensor n = layer_norm->forward(x);
    return ClampHalf(x + at::dropout(EncDecAttention->forward(n, enc, bias, is_training()), rate, is_training()));
  }
  double rate;
  std::shared_ptr<Attention> EncDecAttention;
  std::shared_ptr<LayerNorm> layer_norm;
};

struct FeedForwardLayer : torch::nn::Module {
  explicit FeedForwardLayer(const T5Config& c) : rate(c.dropout_rate) {
    DenseReluDense = register_module("DenseReluDense", std::make_shared<DenseActDense>(c));
    layer_norm = register_module("layer_norm", std::make_shared<LayerNorm>(c.d_model, c.layer_norm_epsilon));
  }
  at::Tensor forward(const at::Tensor& x) {
    const at::Tensor n = layer_norm->forward(x);
    return ClampHalf(x + at::dropout(DenseReluDense->forward(n, is_training()), rate, is_training()));
  }
  double rate;
  std::shared_ptr<DenseActDense> DenseReluDense;
  std::shared_ptr<LayerNorm> layer_norm;
};

// HF's block.N.layer.{0,1,2}: a container whose children are named by index.
class EncoderBlock : public torch::nn::Module {
 public:
  EncoderBlock(const T5Config& c, bool first) : first_(first) {
    auto layer = register_module("layer", std::make_shared<torch::nn::Module>());
    self_ = layer->register_module("0", std::make_shared<SelfAttentionLayer>(c, first, /*bidirectional=*/true));
    ff_ = layer->register_module("1", std::make_shared<FeedForwardLayer>(c));
  }
  // x [B, S, D]; bias: the position bias + mask from the first block (undefined for the first
  // block itself, which makes it from `mask_bias` [B, 1, 1, S]).  Returns the new x and, from
  // the first block only, the bias the others reuse.
  std::tuple<at::Tensor, at::Tensor> forward(const at::Tensor& x, const at::Tensor& bias, const at::Tensor& mask_bias) {
    at::Tensor made;
    if (first_)
      made = self_->SelfAttention->PositionBias(x.size(1), x.size(1), x.device()).to(x.scalar_type()) + mask_bias;
    const at::Tensor use = first_ ? made : bias;
    at::Tensor h = self_->forward(x, use);
    return {ff_->forward(h), made};
  }

 private:
  bool first_;
  std::shared_ptr<SelfAttentionLayer> self_;
  std::shared_ptr<FeedForwardLayer> ff_;
};

class DecoderBlock : public torch::nn::Module {
 public:
  DecoderBlock(const T5Config& c, bool first) : first_(first) {
    auto layer = register_module("layer", std::make_shared<torch::nn::Module>());
    self_ = layer->register_module("0", std::make_shared<SelfAttentionLayer>(c, first, /*bidirectional=*/false));
    cross_ = layer->register_module("1", std::make_shared<CrossAttentionLayer>(c));
    ff_ = layer->register_module("2", std::make_shared<FeedForwardLayer>(c));
  }
  // As EncoderBlock, with the causal mask as `mask_bias` [1, 1, T, T], the encoder output and
  // its padding mask as the additive `cross_bias` [B, 1, 1, S].
  std::tuple<at::Tensor, at::Tensor> forward(const at::Tensor& x, const at::Tensor& bias, const at::Tensor& mask_bias,
                                             const at::Tensor& enc, const at::Tensor& cross_bias) {
    at::Tensor made;
    if (first_)
      made = self_->SelfAttention->PositionBias(x.size(1), x.size(1), x.device()).to(x.scalar_type()) + mask_bias;
    at::Tensor h = self_->forward(x, first_ ? made : bias);
    h = cross_->forward(h, enc, cross_bias);
    return {ff_->forward(h), made};
  }

 private:
  bool first_;
  std::shared_ptr<SelfAttentionLayer> self_;
  std::shared_ptr<CrossAttentionLayer> cross_;
  std::shared_ptr<FeedForwardLayer> ff_;
};

}  // namespace t5

namespace {

// 0 where attended, the dtype's lowest value where masked: [B, 1, 1, S] from a 0/1 mask.
at::Tensor PaddingBias(const at::Tensor& attention_mask, at::ScalarType dtype) {
  const double lowest = dtype == at::kHalf       ? -65504.0
                        : dtype == at::kBFloat16 ? -3.3895313892515355e38
                                                 : static_cast<double>(std::numeric_limits<float>::lowest());
  return ((1 - attention_mask.to(dtype)) * lowest).unsqueeze(1).unsqueeze(2);
}

at::Tensor CausalBias(std::int64_t t, at::ScalarType dtype, const at::Device& device) {
  const at::Tensor ones = at::ones({t, t}, at::TensorOptions().dtype(at::kBool).device(device));
  return PaddingBias(at::tril(ones).to(at::kLong), dtype).view({1, 1, t, t});
}

std::mutex& SeedMutex() {
  static std::mutex mu;
  return mu;
}

}  // namespace

T5ForConditionalGeneration::T5ForConditionalGeneration(const T5Config& config, std::uint64_t seed) : config_(config) {
  std::lock_guard<std::mutex> lock(SeedMutex());
  at::manual_seed(seed);
  at::NoGradGuard no_grad;
  const double f = config.initializer_factor;
  shared_ = register_module("shared", std::make_shared<t5::Weight>(config.vocab_size, config.d_model, f));
  auto enc = register_module("encoder", std::make_shared<torch::nn::Module>());
  auto enc_blocks = enc->register_module("block", std::make_shared<torch::nn::Module>());
  for (std::int64_t i = 0; i < config.num_layers; ++i) {
    encoder_blocks_.push_back(
        enc_blocks->register_module(std::to_string(i), MakeUnit(std::make_shared<t5::EncoderBlock>(config, i == 0))));
  }
  encoder_norm_ = enc->register_module("final_layer_norm",
                                       std::make_shared<t5::LayerNorm>(config.d_model, config.layer_norm_epsilon));
  auto dec = register_module("decoder", std::make_shared<torch::nn::Module>());
  auto dec_blocks = dec->register_module("block", std::make_shared<torch::nn::Module>());
  for (std::int64_t i = 0; i < config.num_decoder_layers; ++i) {
    decoder_blocks_.push_back(
        dec_blocks->register_module(std::to_string(i), MakeUnit(std::make_shared<t5::DecoderBlock>(config, i == 0))));
  }
  decoder_norm_ = dec->register_module("final_layer_norm",
                                       std::make_shared<t5::LayerNorm>(config.d_model, config.layer_norm_epsilon));
  if (!config.tie_word_embeddings) {
    lm_head_ = register_module("lm_head", std::make_shared<t5::Weight>(config.vocab_size, config.d_model, f));
  }
}

at::Tensor T5ForConditionalGeneration::ShiftRight(const at::Tensor& labels) const {
  at::Tensor shifted = at::empty_like(labels);
  shifted.select(1, 0).fill_(config_.decoder_start_token_id);
  if (labels.size(1) > 1) shifted.narrow(1, 1, labels.size(1) - 1).copy_(labels.narrow(1, 0, labels.size(1) - 1));
  return shifted.masked_fill(shifted == -100, config_.pad_token_id);
}

at::Tensor T5ForConditionalGeneration::Encode(const at::Tensor& input_ids, const at::Tensor& attention_mask) {
  const bool train = is_training();
  at::Tensor x = at::dropout(at::embedding(shared_->weight, input_ids), config_.dropout_rate, train);
  const at::Tensor mask = attention_mask.defined() ? attention_mask : at::ones_like(input_ids);
  const at::Tensor mask_bias = PaddingBias(mask, x.scalar_type());
  at::Tensor bias;
  for (auto& block : encoder_blocks_) {
    auto [h, made] = block->forward(x, bias, mask_bias);
    x = h;
    if (made.defined()) bias = made;
  }
  return at::dropout(encoder_norm_->forward(x), config_.dropout_rate, train);
}

at::Tensor T5ForConditionalGeneration::Decode(const at::Tensor& decoder_input_ids, const at::Tensor& encoder_out,
                                              const at::Tensor& attention_mask) {
  const bool train = is_training();
  at::Tensor x = at::dropout(at::embedding(shared_->weight, decoder_input_ids), config_.dropout_rate, train);
  const at::Tensor causal = CausalBias(x.size(1), x.scalar_type(), x.device());
  const at::Tensor mask = attention_mask.defined()
                              ? attention_mask
                              : at::ones({encoder_out.size(0), encoder_out.size(1)},
                                         at::TensorOptions().dtype(at::kLong).device(encoder_out.device()));
  const at::Tensor cross = PaddingBias(mask, x.scalar_type());
  at::Tensor bias;
  for (auto& block : decoder_blocks_) {
    auto [h, made] = block->forward(x, bias, causal, encoder_out, cross);
    x = h;
    if (made.defined()) bias = made;
  }
  return Head(at::dropout(decoder_norm_->forward(x), config_.dropout_rate, train));
}

at::Tensor T5ForConditionalGeneration::Head(const at::Tensor& decoder_out) {
  at::Tensor h = decoder_out;
  if (config_.scale_decoder_outputs) h = h * std::pow(static_cast<double>(config_.d_model), -0.5);
  return at::linear(h, lm_head_ ? lm_head_->weight : shared_->weight);
}

at::Tensor T5ForConditionalGeneration::Logits(const Batch& batch) {
  const at::Tensor& ids = batch.at("input_ids");
  const auto mask_it = batch.find("attention_mask");
  const at::Tensor mask = mask_it == batch.end() ? at::Tensor() : mask_it->second;
  const auto dec_it = batch.find("decoder_input_ids");
  const at::Tensor dec = dec_it != batch.end() ? dec_it->second : ShiftRight(batch.at("labels"));
  return Decode(dec, Encode(ids, mask), mask);
}

at::Tensor T5ForConditionalGeneration::Forward(const Batch& batch) {
  const at::Tensor logits = Logits(batch);
  const at::Tensor& labels = batch.at("labels");
  return at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}).to(at::kFloat), labels.reshape({-1}), {},
                                at::Reduction::Mean, /*ignore_index=*/-100);
}

std::string T5ForConditionalGeneration::HfName(const std::string& name) {
  return absl::StrReplaceAll(name, {{".module.", "."}});
}

std::vector<std::pair<std::string, at::Tensor>> T5ForConditionalGeneration::HfStateDict() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : named_parameters()) out.emplace_back(HfName(p.key()), p.value());
  return out;
}

absl::Status T5ForConditionalGeneration::LoadHfCheckpoint(const std::string& path) {
  absl::StatusOr<ckpt::Safetensors> st = ckpt::ReadSafetensors(path);
  if (!st.ok()) return st.status();
  std::set<std::string> used;
  for (const auto& [name, param] : HfStateDict()) {
    const at::Tensor* src = st->Find(name);
    // Older exports keep the shared embedding only under the stacks' names.
    if (src == nullptr && name == "shared.weight") src = st->Find("encoder.embed_tokens.weight");
    if (src == nullptr) {
      return absl::NotFoundError(absl::StrCat(path, ": no tensor \"", name, "\", which this T5 configuration needs"));
    }
    if (src->sizes() != param.sizes()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor \"", name, "\" has shape [",
                                                     absl::StrJoin(src->sizes(), ", "), "], the model needs [",
                                                     absl::StrJoin(param.sizes(), ", "), "] (check config.json)"));
    }
    used.insert(name);
    absl::Status s = CallTorch(absl::StrCat("loading ", name, " from ", path), [&] {
      at::NoGradGuard no_grad;
      param.copy_(*src);
    });
    if (!s.ok()) return s;
  }
  std::vector<std::string> unused;
  for (const auto& [name, t] : st->tensors) {
    if (used.count(name) == 0 && name != "encoder.embed_tokens.weight" && name != "decoder.embed_tokens.weight" &&
        !(name == "lm_head.weight" && config_.tie_word_embeddings)) {
      unused.push_back(name);
    }
  }
  if (!unused.empty()) {
    ZT_LOG(WARNING) << path << ": " << unused.size()
                    << " tensor(s) not used by the model: " << absl::StrJoin(unused, ", ");
  }
  return absl::OkStatus();
}

absl::Status T5ForConditionalGeneration::SaveHfCheckpoint(const std::string& dir) const {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return absl::Status(absl::ErrnoToStatusCode(errno),
                        absl::StrCat("cannot create ", dir, ": ", std::strerror(errno)));
  }
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  absl::Status s = CallTorch("copying parameters to the host", [&] {
    for (auto& [name, t] : HfStateDict()) tensors.emplace_back(name, t.detach().cpu());
  });
  if (!s.ok()) return s;
  if (s = ckpt::WriteSafetensors(dir + "/model.safetensors", tensors, {{"format", "pt"}}); !s.ok()) return s;
  const std::string config_path = dir + "/config.json";
  std::ofstream out(config_path);
  out << config_.ToJson();
  out.close();
  if (!out) return absl::DataLossError(absl::StrCat("cannot write ", config_path));
  return absl::OkStatus();
}

}  // namespace zt::nlp
