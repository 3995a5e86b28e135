#include "nlp/t5/t5_model.h"

#include <ATen/ATen.h>
#include <sys/stat.h>

#include <array>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "core/ckpt/safetensors.h"
#include "core/profiler/module_scope.h"
#include "core/util/file_util.h"
#include "core/util/logging.h"
#include "core/util/torch_status.h"
#include "nlp/t5/t5_attention.h"
#include "ops/dropout.h"
#include "ops/linear_cross_entropy.h"
#include "ops/rms_norm.h"

namespace zt::nlp {
namespace t5 {

class LayerNorm : public torch::nn::Module {
 public:
  LayerNorm(std::int64_t d, double eps) : eps_(eps) { weight = register_parameter("weight", at::ones({d})); }
  // HF's T5LayerNorm (ops/rms_norm.h): the fused kernel on CUDA.
  at::Tensor forward(const at::Tensor& x) const {
    ZT_PROFILE_MODULE(this);
    return ops::RmsNorm(x, weight, eps_);
  }
  // {forward(x), x} for a pre-norm residual block, which takes x from here so that the norm's
  // backward adds the residual's gradient in (ops/rms_norm.h).
  std::array<at::Tensor, 2> ForwardResidual(const at::Tensor& x) const {
    ZT_PROFILE_MODULE(this);
    return ops::RmsNormResidual(x, weight, eps_);
  }
  at::Tensor weight;

 private:
  double eps_;
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
  // At fp16 the output projection runs in fp32 (HF keeps wo's weight in fp32 for this,
  // _keep_in_fp32_modules): T5's FFN outputs pass fp16's largest value (HF issue #10830).  The
  // fp32 output then carries the residual stream in fp32 until the final layer norm, as in HF.
  at::Tensor forward(const at::Tensor& x, bool training) const {
    ZT_PROFILE_MODULE(this);
    at::Tensor h;
    if (c_.gated) {
      h = at::dropout(Act(wi_0->Linear(x)) * wi_1->Linear(x), c_.dropout_rate, training);
    } else if (c_.activation == "relu") {
      h = ops::ReluDropout(wi->Linear(x), c_.dropout_rate, training);
    } else {
      h = at::dropout(Act(wi->Linear(x)), c_.dropout_rate, training);
    }
    if (wo->weight.scalar_type() == at::kHalf) return at::linear(h.to(at::kFloat), wo->weight.to(at::kFloat));
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

// One sublayer: pre-norm, the inner computation, dropout and the residual add in one op
// (ops/dropout.h).
struct SelfAttentionLayer : torch::nn::Module {
  SelfAttentionLayer(const T5Config& c, bool relative_bias, bool bidirectional) : rate(c.dropout_rate) {
    SelfAttention = register_module("SelfAttention", std::make_shared<Attention>(c, relative_bias, bidirectional));
    layer_norm = register_module("layer_norm", std::make_shared<LayerNorm>(c.d_model, c.layer_norm_epsilon));
  }
  at::Tensor forward(const at::Tensor& x, const AttnBias& bias) {
    ZT_PROFILE_MODULE(this);
    const auto [n, residual] = layer_norm->ForwardResidual(x);
    return ClampHalf(ops::DropoutAdd(residual, SelfAttention->forward(n, n, bias, is_training()), rate, is_training()));
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
  at::Tensor forward(const at::Tensor& x, const at::Tensor& enc, const AttnBias& bias) {
    ZT_PROFILE_MODULE(this);
    const auto [n, residual] = layer_norm->ForwardResidual(x);
    return ClampHalf(
        ops::DropoutAdd(residual, EncDecAttention->forward(n, enc, bias, is_training()), rate, is_training()));
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
    ZT_PROFILE_MODULE(this);
    const auto [n, residual] = layer_norm->ForwardResidual(x);
    return ClampHalf(ops::DropoutAdd(residual, DenseReluDense->forward(n, is_training()), rate, is_training()));
  }
  double rate;
  std::shared_ptr<DenseActDense> DenseReluDense;
  std::shared_ptr<LayerNorm> layer_norm;
};

// HF's block.N.layer.{0,1,2}: a container whose children are named by index.
class EncoderBlock : public torch::nn::Module {
 public:
  EncoderBlock(const T5Config& c, bool first) : c_(c), first_(first) {
    auto layer = register_module("layer", std::make_shared<torch::nn::Module>());
    self_ = layer->register_module("0", std::make_shared<SelfAttentionLayer>(c, first, /*bidirectional=*/true));
    ff_ = layer->register_module("1", std::make_shared<FeedForwardLayer>(c));
  }
  // x [B, S, D]; bias: the position bias and mask from the first block (unused by the first
  // block itself, which makes it with `mask_bias` [B, 1, 1, S]).  Returns the new x and, from
  // the first block only, the bias the others reuse: its pos and combined tensors (a tuple, so
  // that stage 3 sees every tensor the unit returns).
  std::tuple<at::Tensor, at::Tensor, at::Tensor> forward(const at::Tensor& x, const AttnBias& bias,
                                                         const at::Tensor& mask_bias) {
    ZT_PROFILE_MODULE(this);
    AttnBias made;
    if (first_) {
      made = AttnBias::Make(self_->SelfAttention->PositionBias(x.size(1), x.size(1), x.device()).to(x.scalar_type()),
                            mask_bias, x, c_);
    }
    at::Tensor h = self_->forward(x, first_ ? made : bias);
    return {ff_->forward(h), made.pos, made.combined};
  }

 private:
  const T5Config c_;
  bool first_;
  std::shared_ptr<SelfAttentionLayer> self_;
  std::shared_ptr<FeedForwardLayer> ff_;
};

class DecoderBlock : public torch::nn::Module {
 public:
  DecoderBlock(const T5Config& c, bool first) : c_(c), first_(first) {
    auto layer = register_module("layer", std::make_shared<torch::nn::Module>());
    self_ = layer->register_module("0", std::make_shared<SelfAttentionLayer>(c, first, /*bidirectional=*/false));
    cross_ = layer->register_module("1", std::make_shared<CrossAttentionLayer>(c));
    ff_ = layer->register_module("2", std::make_shared<FeedForwardLayer>(c));
  }
  // As EncoderBlock, with the causal mask as `mask_bias` [1, 1, T, T], the encoder output and
  // its padding mask as the additive `cross_bias` [B, 1, 1, S].
  std::tuple<at::Tensor, at::Tensor, at::Tensor> forward(const at::Tensor& x, const AttnBias& bias,
                                                         const at::Tensor& mask_bias, const at::Tensor& enc,
                                                         const AttnBias& cross_bias) {
    ZT_PROFILE_MODULE(this);
    AttnBias made;
    if (first_) {
      made = AttnBias::Make(self_->SelfAttention->PositionBias(x.size(1), x.size(1), x.device()).to(x.scalar_type()),
                            mask_bias, x, c_);
    }
    at::Tensor h = self_->forward(x, first_ ? made : bias);
    h = cross_->forward(h, enc, cross_bias);
    return {ff_->forward(h), made.pos, made.combined};
  }

  // One generation step (eval mode): x [N, 1, D] at position `pos`, appending its key and value
  // to the self-attention cache k/v [N, H, pos, d_kv]; ck/cv the encoder output's projections
  // (made on the first step).  `bias` as forward's, for this position (the first block makes it).
  std::tuple<at::Tensor, at::Tensor> Step(const at::Tensor& x, const at::Tensor& bias, std::int64_t pos, at::Tensor& k,
                                          at::Tensor& v, at::Tensor& ck, at::Tensor& cv, const at::Tensor& enc,
                                          const at::Tensor& cross_bias) {
    const t5::Attention& sa = *self_->SelfAttention;
    at::Tensor made;
    if (first_) made = sa.PositionBias(1, pos + 1, x.device(), pos).to(x.scalar_type());
    const at::Tensor n = self_->layer_norm->forward(x);
    const at::Tensor kn = sa.Heads(sa.k->Linear(n)), vn = sa.Heads(sa.v->Linear(n));
    k = k.defined() ? at::cat({k, kn}, 2) : kn;
    v = v.defined() ? at::cat({v, vn}, 2) : vn;
    at::Tensor h = ClampHalf(x + sa.Attend(sa.Heads(sa.q->Linear(n)), k, v, first_ ? made : bias, false));
    const t5::Attention& ca = *cross_->EncDecAttention;
    if (!ck.defined()) {
      ck = ca.Heads(ca.k->Linear(enc));
      cv = ca.Heads(ca.v->Linear(enc));
    }
    const at::Tensor n2 = cross_->layer_norm->forward(h);
    h = ClampHalf(h + ca.Attend(ca.Heads(ca.q->Linear(n2)), ck, cv, cross_bias, false));
    return {ff_->forward(h), made};
  }

 private:
  const T5Config c_;
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

}  // namespace

T5ForConditionalGeneration::T5ForConditionalGeneration(const T5Config& config, std::uint64_t seed) : config_(config) {
  std::lock_guard<std::mutex> lock(ModelInitMutex());
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
  t5::AttnBias bias;
  for (auto& block : encoder_blocks_) {
    auto [h, pos, combined] = block->forward(x, bias, mask_bias);
    x = h;
    if (pos.defined()) bias = t5::AttnBias{pos, mask_bias, combined};
  }
  return at::dropout(encoder_norm_->forward(x), config_.dropout_rate, train);
}

at::Tensor T5ForConditionalGeneration::Decode(const at::Tensor& decoder_input_ids, const at::Tensor& encoder_out,
                                              const at::Tensor& attention_mask) {
  return Head(DecoderHidden(decoder_input_ids, encoder_out, attention_mask));
}

at::Tensor T5ForConditionalGeneration::DecoderHidden(const at::Tensor& decoder_input_ids, const at::Tensor& encoder_out,
                                                     const at::Tensor& attention_mask) {
  const bool train = is_training();
  at::Tensor x = at::dropout(at::embedding(shared_->weight, decoder_input_ids), config_.dropout_rate, train);
  const at::Tensor causal = CausalBias(x.size(1), x.scalar_type(), x.device());
  const at::Tensor mask = attention_mask.defined()
                              ? attention_mask
                              : at::ones({encoder_out.size(0), encoder_out.size(1)},
                                         at::TensorOptions().dtype(at::kLong).device(encoder_out.device()));
  const t5::AttnBias cross = t5::AttnBias::Make(at::Tensor(), PaddingBias(mask, x.scalar_type()), x, config_);
  t5::AttnBias bias;
  for (auto& block : decoder_blocks_) {
    auto [h, pos, combined] = block->forward(x, bias, causal, encoder_out, cross);
    x = h;
    if (pos.defined()) bias = t5::AttnBias{pos, causal, combined};
  }
  return at::dropout(decoder_norm_->forward(x), config_.dropout_rate, train);
}

at::Tensor T5ForConditionalGeneration::HeadInput(const at::Tensor& decoder_out) const {
  if (!config_.scale_decoder_outputs) return decoder_out;
  return decoder_out * std::pow(static_cast<double>(config_.d_model), -0.5);
}

at::Tensor T5ForConditionalGeneration::Head(const at::Tensor& decoder_out) {
  return at::linear(HeadInput(decoder_out), lm_head_ ? lm_head_->weight : shared_->weight);
}

at::Tensor T5ForConditionalGeneration::Hidden(const Batch& batch) {
  const at::Tensor& ids = batch.at("input_ids");
  const auto mask_it = batch.find("attention_mask");
  const at::Tensor mask = mask_it == batch.end() ? at::Tensor() : mask_it->second;
  const auto dec_it = batch.find("decoder_input_ids");
  const at::Tensor dec = dec_it != batch.end() ? dec_it->second : ShiftRight(batch.at("labels"));
  return DecoderHidden(dec, Encode(ids, mask), mask);
}

at::Tensor T5ForConditionalGeneration::Logits(const Batch& batch) { return Head(Hidden(batch)); }

// The head and the loss in one op (ops/linear_cross_entropy.h): on CUDA in chunks of rows,
// without the batch's float32 logits.
at::Tensor T5ForConditionalGeneration::Forward(const Batch& batch) {
  const at::Tensor h = HeadInput(Hidden(batch));
  const at::Tensor& labels = batch.at("labels");
  return ops::LinearCrossEntropy(h.reshape({-1, h.size(-1)}), lm_head_ ? lm_head_->weight : shared_->weight,
                                 labels.reshape({-1}), /*ignore_index=*/-100);
}

// ---- generation ----

struct T5ForConditionalGeneration::DecodeState {
  at::Tensor enc;                        // encoder output [N, S, D]
  at::Tensor cross_bias;                 // its padding as an additive bias [N, 1, 1, S]
  std::vector<at::Tensor> k, v, ck, cv;  // per decoder block
  std::int64_t pos = 0;                  // tokens decoded so far

  // Beam search moved rows around: the self-attention caches follow (the encoder's rows are
  // the same for every beam of a sentence, and beams never change sentence).
  void Reorder(const at::Tensor& rows) {
    for (auto* cache : {&k, &v}) {
      for (at::Tensor& t : *cache) t = t.index_select(0, rows);
    }
  }
};

namespace {

// t[b, idx[b, j], ...] for t [B, K', ...] and idx [B, K] (HF's _gather_beams).
at::Tensor GatherBeams(const at::Tensor& t, const at::Tensor& idx) {
  const std::int64_t b = t.size(0), kk = t.size(1);
  std::vector<std::int64_t> shape = t.sizes().vec();
  const at::Tensor rows =
      (idx.to(at::kLong) + at::arange(b, idx.options().dtype(at::kLong)).unsqueeze(1) * kk).reshape({-1});
  shape[1] = idx.size(1);
  return t.reshape({b * kk, -1}).index_select(0, rows).reshape(shape);
}

}  // namespace

T5ForConditionalGeneration::DecodeState T5ForConditionalGeneration::StartDecoding(const at::Tensor& encoder_out,
                                                                                  const at::Tensor& attention_mask) {
  DecodeState st;
  st.enc = encoder_out;
  st.cross_bias = PaddingBias(attention_mask, encoder_out.scalar_type());
  const std::size_t n = decoder_blocks_.size();
  st.k.resize(n);
  st.v.resize(n);
  st.ck.resize(n);
  st.cv.resize(n);
  return st;
}

at::Tensor T5ForConditionalGeneration::DecodeStep(DecodeState& st, const at::Tensor& tokens) {
  at::Tensor x = at::embedding(shared_->weight, tokens.unsqueeze(1));
  at::Tensor bias;
  for (std::size_t l = 0; l < decoder_blocks_.size(); ++l) {
    auto [h, made] =
        decoder_blocks_[l]->module().Step(x, bias, st.pos, st.k[l], st.v[l], st.ck[l], st.cv[l], st.enc, st.cross_bias);
    x = h;
    if (made.defined()) bias = made;
  }
  ++st.pos;
  return Head(decoder_norm_->forward(x)).select(1, 0).to(at::kFloat);
}

at::Tensor T5ForConditionalGeneration::Generate(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                                const GenerateOptions& options) {
  TORCH_CHECK(options.num_beams >= 1, "num_beams must be >= 1, got ", options.num_beams);
  TORCH_CHECK(options.max_length >= 1, "max_length must be >= 1, got ", options.max_length);
  at::NoGradGuard no_grad;
  const bool was_training = is_training();
  eval();
  at::Tensor mask = attention_mask.defined() ? attention_mask : at::ones_like(input_ids);
  at::Tensor enc = Encode(input_ids, mask);
  if (options.num_beams > 1) {
    enc = enc.repeat_interleave(options.num_beams, 0);
    mask = mask.repeat_interleave(options.num_beams, 0);
  }
  DecodeState st = StartDecoding(enc, mask);
  const std::int64_t batch = input_ids.size(0);
  at::Tensor out = options.num_beams == 1 ? Greedy(st, batch, options) : BeamSearch(st, batch, options);
  train(was_training);
  return out;
}

// HF's greedy search: finished sentences are padded with pad_token_id until every sentence has
// </s> or max_length is reached.
at::Tensor T5ForConditionalGeneration::Greedy(DecodeState& st, std::int64_t batch, const GenerateOptions& o) {
  const auto opts = at::TensorOptions().dtype(at::kLong).device(st.enc.device());
  at::Tensor seq = at::full({batch, 1}, config_.decoder_start_token_id, opts);
  at::Tensor unfinished = at::ones({batch}, opts.dtype(at::kBool));
  while (seq.size(1) < o.max_length) {
    const at::Tensor logits = DecodeStep(st, seq.select(1, -1));
    at::Tensor next = at::where(unfinished, logits.argmax(-1), at::full_like(unfinished, config_.pad_token_id, opts));
    seq = at::cat({seq, next.unsqueeze(1)}, 1);
    unfinished = unfinished & (next != config_.eos_token_id);
    if (!unfinished.any().item<bool>()) break;
  }
  return seq;
}

// HF's (transformers 5) vectorised beam search, step for step: 2 x num_beams candidates per
// sentence, candidates ending in </s> among the top num_beams become finished hypotheses scored
// sum(log p) / generated_length^length_penalty, the best num_beams of the others run on.
at::Tensor T5ForConditionalGeneration::BeamSearch(DecodeState& st, std::int64_t batch, const GenerateOptions& o) {
  using ES = GenerateOptions::EarlyStopping;
  const std::int64_t k = o.num_beams, keep = 2 * k, max_len = o.max_length, prompt = 1;
  const auto dev = st.enc.device();
  const auto lopts = at::TensorOptions().dtype(at::kLong).device(dev);
  const auto fopts = at::TensorOptions().dtype(at::kFloat).device(dev);
  const auto bopts = at::TensorOptions().dtype(at::kBool).device(dev);
  // HF fills with `pad_token_id or eos_token_id`: a pad id of 0 falls through to </s>.
  const std::int64_t fill = config_.pad_token_id != 0 ? config_.pad_token_id : config_.eos_token_id;
  const bool early_true = o.early_stopping == ES::kTrue;
  const at::Tensor top_mask = at::cat({at::ones({k}, bopts), at::zeros({keep - k}, bopts)});
  at::Tensor running = at::full({batch, k, max_len}, fill, lopts);
  running.select(2, 0).fill_(config_.decoder_start_token_id);
  at::Tensor sequences = running.clone();
  at::Tensor running_scores = at::zeros({batch, k}, fopts);
  running_scores.narrow(1, 1, k - 1).fill_(-1e9);
  at::Tensor beam_scores = at::full({batch, k}, -1e9, fopts);
  at::Tensor finished = at::zeros({batch, k}, bopts);
  at::Tensor heuristic_open = at::ones({batch, 1}, bopts);
  const std::int64_t steps = std::max<std::int64_t>(max_len - prompt, 1);
  at::Tensor running_idx = at::full({batch, k, steps}, -1, lopts);
  at::Tensor beam_idx = running_idx.clone();
  std::int64_t cur = prompt;
  while (cur < max_len) {
    const at::Tensor logits = DecodeStep(st, running.select(2, cur - 1).reshape({-1}));
    const std::int64_t vocab = logits.size(-1);
    at::Tensor logp = at::log_softmax(logits, -1).view({batch, k, vocab}) + running_scores.unsqueeze(2);
    logp = logp.reshape({batch, -1});
    auto [topk_logp, topk_flat] = at::topk(logp, keep);
    const at::Tensor from_beam = at::div(topk_flat, vocab, "floor");
    at::Tensor topk_running_idx = GatherBeams(running_idx, from_beam);
    at::Tensor topk_seq = GatherBeams(running, from_beam);
    const at::Tensor ids = topk_flat.remainder(vocab);
    topk_seq.select(2, cur).copy_(ids);
    topk_running_idx.select(2, cur - prompt).copy_(from_beam + at::arange(batch, lopts).unsqueeze(1) * k);
    const at::Tensor hits = (ids == config_.eos_token_id) | at::full_like(ids, cur + 1 >= max_len, bopts);
    // Running beams for the next step.
    const at::Tensor topk_running_logp = topk_logp + hits.to(at::kFloat) * -1.0e9;
    const at::Tensor next = std::get<1>(at::topk(topk_running_logp, k));
    running = GatherBeams(topk_seq, next);
    running_scores = GatherBeams(topk_running_logp, next);
    running_idx = GatherBeams(topk_running_idx, next);
    // Finished hypotheses.
    const at::Tensor just_done = hits & top_mask.unsqueeze(0);
    at::Tensor scored = topk_logp / std::pow(static_cast<double>(cur + 1 - prompt), o.length_penalty);
    scored = scored + (at::all(finished, -1, true) & early_true).to(at::kFloat) * -1.0e9;
    scored = scored + (~heuristic_open).to(at::kFloat) * -1.0e9;
    scored = scored + (~just_done).to(at::kFloat) * -1.0e9;
    const at::Tensor merged_scores = at::cat({beam_scores, scored}, 1);
    const at::Tensor best = std::get<1>(at::topk(merged_scores, k));
    sequences = GatherBeams(at::cat({sequences, topk_seq}, 1), best);
    beam_scores = GatherBeams(merged_scores, best);
    beam_idx = GatherBeams(at::cat({beam_idx, topk_running_idx}, 1), best);
    finished = GatherBeams(at::cat({finished, just_done}, 1), best);
    st.Reorder(running_idx.select(2, cur - prompt).reshape({-1}));
    ++cur;
    // Can a running beam still beat the worst finished one?
    const double best_len = o.early_stopping == ES::kNever && o.length_penalty > 0.0
                                ? static_cast<double>(max_len - prompt)
                                : static_cast<double>(cur - prompt);
    const at::Tensor best_possible = running_scores.narrow(1, 0, 1) / std::pow(best_len, o.length_penalty);
    const at::Tensor worst_finished =
        at::where(finished, std::get<0>(at::min(beam_scores, 1, true)), at::full_like(beam_scores, -1.0e9));
    heuristic_open = heuristic_open & at::any(best_possible > worst_finished, -1, true);
    const bool improvement = heuristic_open.any().item<bool>();
    const bool open_beam = !(finished.all().item<bool>() && early_true);
    const bool continuations = !hits.all().item<bool>();
    if (!(improvement && open_beam && continuations)) break;
  }
  const at::Tensor best_idx = beam_idx.select(1, 0);
  const std::int64_t generated = (best_idx + 1).to(at::kBool).sum(1).max().item<std::int64_t>();
  return sequences.select(1, 0).narrow(1, 0, prompt + generated);
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
  return WriteFileAtomically(dir + "/config.json", config_.ToJson());
}

}  // namespace zt::nlp
