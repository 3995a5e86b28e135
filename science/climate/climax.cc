#include "science/climate/climax.h"

#include <ATen/ATen.h>

#include <cmath>
#include <mutex>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "core/profiler/module_scope.h"
#include "core/util/json_field.h"
#include "nlohmann/json.hpp"

namespace zt::science::climate {
namespace internal {
namespace {

at::Tensor Normal(at::IntArrayRef sizes) { return at::empty(sizes).normal_(0.0, 0.02); }

// [B, N, D] -> [B, heads, N, D / heads]
at::Tensor Heads(const at::Tensor& t, std::int64_t heads) {
  return t.view({t.size(0), t.size(1), heads, t.size(2) / heads}).transpose(1, 2);
}

}  // namespace

// Per-variable patch embedding, variable embedding, cross-attention over the variables of each
// patch, then position and lead-time embeddings: [B, V, Hp, Wp] -> [B, L, D].
class Aggregate : public torch::nn::Module {
 public:
  Aggregate(const ClimaxConfig& c, std::int64_t tokens) : c_(c) {
    const std::int64_t D = c.embed, K = static_cast<std::int64_t>(c.patch) * c.patch;
    patch_weight = register_parameter("patch_weight", Normal({c.variables, D, K}));
    patch_bias = register_parameter("patch_bias", at::zeros({c.variables, D}));
    variable_embedding = register_parameter("variable_embedding", Normal({c.variables, D}));
    query = register_parameter("query", Normal({1, D}));
    q_weight = register_parameter("q_weight", Normal({D, D}));
    kv_weight = register_parameter("kv_weight", Normal({2 * D, D}));
    out_weight = register_parameter("out_weight", Normal({D, D}));
    out_bias = register_parameter("out_bias", at::zeros({D}));
    position_embedding = register_parameter("position_embedding", Normal({tokens, D}));
    lead_weight = register_parameter("lead_weight", Normal({D, 1}));
    lead_bias = register_parameter("lead_bias", at::zeros({D}));
  }

  at::Tensor forward(const at::Tensor& x, const at::Tensor& lead_hours) {
    ZT_PROFILE_MODULE(this);
    const std::int64_t B = x.size(0), V = c_.variables, p = c_.patch, D = c_.embed, H = c_.heads;
    const std::int64_t gh = x.size(2) / p, gw = x.size(3) / p, L = gh * gw;
    const at::Tensor patches = x.view({B, V, gh, p, gw, p}).permute({0, 1, 2, 4, 3, 5}).reshape({B, V, L, p * p});
    at::Tensor emb = at::matmul(patches, patch_weight.transpose(1, 2).unsqueeze(0));  // [B, V, L, D]
    emb = emb + (patch_bias + variable_embedding).view({1, V, 1, D});
    const at::Tensor tokens = emb.permute({0, 2, 1, 3}).reshape({B * L, V, D});  // the variables of each patch
    const at::Tensor kv = at::linear(tokens, kv_weight);
    const at::Tensor q = Heads(at::linear(query, q_weight).unsqueeze(0).expand({B * L, 1, D}), H);
    const at::Tensor k = Heads(kv.narrow(2, 0, D).contiguous(), H), v = Heads(kv.narrow(2, D, D).contiguous(), H);
    const at::Tensor a = at::scaled_dot_product_attention(q, k, v);  // [B*L, H, 1, D/H]
    at::Tensor out = at::linear(a.transpose(1, 2).reshape({B, L, D}), out_weight, out_bias);
    const at::Tensor lead = (lead_hours.to(out.scalar_type()) / 100.0).view({B, 1});
    return out + position_embedding.unsqueeze(0) + at::linear(lead, lead_weight, lead_bias).unsqueeze(1);
  }

  at::Tensor patch_weight, patch_bias, variable_embedding, query, q_weight, kv_weight, out_weight, out_bias,
      position_embedding, lead_weight, lead_bias;

 private:
  const ClimaxConfig c_;
};

// Pre-norm ViT block.
class Block : public torch::nn::Module {
 public:
  explicit Block(const ClimaxConfig& c) : c_(c) {
    const std::int64_t D = c.embed, F = static_cast<std::int64_t>(c.mlp_ratio) * c.embed;
    norm1_weight = register_parameter("norm1_weight", at::ones({D}));
    norm1_bias = register_parameter("norm1_bias", at::zeros({D}));
    qkv_weight = register_parameter("qkv_weight", Normal({3 * D, D}));
    qkv_bias = register_parameter("qkv_bias", at::zeros({3 * D}));
    proj_weight = register_parameter("proj_weight", Normal({D, D}));
    proj_bias = register_parameter("proj_bias", at::zeros({D}));
    norm2_weight = register_parameter("norm2_weight", at::ones({D}));
    norm2_bias = register_parameter("norm2_bias", at::zeros({D}));
    fc1_weight = register_parameter("fc1_weight", Normal({F, D}));
    fc1_bias = register_parameter("fc1_bias", at::zeros({F}));
    fc2_weight = register_parameter("fc2_weight", Normal({D, F}));
    fc2_bias = register_parameter("fc2_bias", at::zeros({D}));
  }

  at::Tensor forward(const at::Tensor& x) {
    ZT_PROFILE_MODULE(this);
    const std::int64_t B = x.size(0), L = x.size(1), D = c_.embed, H = c_.heads;
    const bool train = is_training();
    const at::Tensor n1 = at::layer_norm(x, {D}, norm1_weight, norm1_bias);
    const at::Tensor qkv = at::linear(n1, qkv_weight, qkv_bias).view({B, L, 3, H, D / H}).permute({2, 0, 3, 1, 4});
    const at::Tensor a = at::scaled_dot_product_attention(qkv[0], qkv[1], qkv[2]).transpose(1, 2).reshape({B, L, D});
    at::Tensor y = x + at::dropout(at::linear(a, proj_weight, proj_bias), c_.dropout, train);
    const at::Tensor n2 = at::layer_norm(y, {D}, norm2_weight, norm2_bias);
    const at::Tensor h = at::dropout(at::gelu(at::linear(n2, fc1_weight, fc1_bias)), c_.dropout, train);
    return y + at::dropout(at::linear(h, fc2_weight, fc2_bias), c_.dropout, train);
  }

  at::Tensor norm1_weight, norm1_bias, qkv_weight, qkv_bias, proj_weight, proj_bias, norm2_weight, norm2_bias,
      fc1_weight, fc1_bias, fc2_weight, fc2_bias;

 private:
  const ClimaxConfig c_;
};

// Final norm and a two-layer MLP from each token to its patch of every variable:
// [B, L, D] -> [B, V, Hp, Wp].
class Head : public torch::nn::Module {
 public:
  explicit Head(const ClimaxConfig& c) : c_(c) {
    const std::int64_t D = c.embed, out = static_cast<std::int64_t>(c.variables) * c.patch * c.patch;
    norm_weight = register_parameter("norm_weight", at::ones({D}));
    norm_bias = register_parameter("norm_bias", at::zeros({D}));
    fc_weight = register_parameter("fc_weight", Normal({D, D}));
    fc_bias = register_parameter("fc_bias", at::zeros({D}));
    out_weight = register_parameter("out_weight", Normal({out, D}));
    out_bias = register_parameter("out_bias", at::zeros({out}));
  }

  at::Tensor forward(const at::Tensor& x, std::int64_t gh, std::int64_t gw) {
    ZT_PROFILE_MODULE(this);
    const std::int64_t B = x.size(0), V = c_.variables, p = c_.patch;
    const at::Tensor n = at::layer_norm(x, {c_.embed}, norm_weight, norm_bias);
    const at::Tensor y = at::linear(at::gelu(at::linear(n, fc_weight, fc_bias)), out_weight, out_bias);
    return y.view({B, gh, gw, V, p, p}).permute({0, 3, 1, 4, 2, 5}).reshape({B, V, gh * p, gw * p});
  }

  at::Tensor norm_weight, norm_bias, fc_weight, fc_bias, out_weight, out_bias;

 private:
  const ClimaxConfig c_;
};

}  // namespace internal

namespace {

std::int64_t RoundUp(std::int64_t v, std::int64_t m) { return (v + m - 1) / m * m; }

}  // namespace

Climax::Climax(const ClimaxConfig& config, std::uint64_t seed)
    : config_(config), padded_h_(RoundUp(config.height, config.patch)), padded_w_(RoundUp(config.width, config.patch)) {
  std::lock_guard<std::mutex> lock(ModelInitMutex());
  at::manual_seed(seed);
  at::NoGradGuard no_grad;
  const std::int64_t tokens = (padded_h_ / config.patch) * (padded_w_ / config.patch);
  aggregate_ = register_module("aggregate", MakeUnit(std::make_shared<internal::Aggregate>(config, tokens)));
  auto blocks = register_module("blocks", std::make_shared<torch::nn::Module>());
  for (int i = 0; i < config.depth; ++i) {
    blocks_.push_back(blocks->register_module(std::to_string(i), MakeUnit(std::make_shared<internal::Block>(config))));
  }
  head_ = register_module("head", MakeUnit(std::make_shared<internal::Head>(config)));
}

Climax::~Climax() = default;

at::Tensor Climax::Predict(const Batch& batch) {
  const at::Tensor& input = BatchTensor(batch, "input");
  if (input.dim() != 4 || input.size(1) != config_.variables || input.size(2) != config_.height ||
      input.size(3) != config_.width) {
    throw std::invalid_argument(absl::StrCat("input of shape ", c10::str(input.sizes()), ", the model is for [B, ",
                                             config_.variables, ", ", config_.height, ", ", config_.width, "]"));
  }
  const at::Tensor x = input.to(aggregate_->module().patch_weight.scalar_type());
  const at::Tensor padded = at::constant_pad_nd(x, {0, padded_w_ - config_.width, 0, padded_h_ - config_.height});
  at::Tensor h = aggregate_->forward(padded, BatchTensor(batch, "lead_hours"));
  for (auto& block : blocks_) h = block->forward(h);
  at::Tensor out = head_->forward(h, padded_h_ / config_.patch, padded_w_ / config_.patch);
  out = out.narrow(2, 0, config_.height).narrow(3, 0, config_.width);
  return config_.residual ? x + out : out;
}

at::Tensor Climax::Forward(const Batch& batch) {
  const at::Tensor pred = Predict(batch).to(at::kFloat);
  const at::Tensor target = BatchTensor(batch, "target").to(at::kFloat);
  const at::Tensor m = BatchTensor(batch, "target_mask").to(at::kFloat);
  const at::Tensor w = BatchTensor(batch, "lat_weights").to(at::kFloat).view({1, 1, -1, 1});
  const at::Tensor err = at::where(m > 0, pred - target, at::zeros_like(pred));
  return (err.pow(2) * w * m).sum() / m.sum().clamp_min(1);
}

std::string ClimaxConfig::ToJson() const {
  nlohmann::json j = {{"model_type", "zerotrain_climax"},
                      {"variables", variables},
                      {"height", height},
                      {"width", width},
                      {"patch", patch},
                      {"embed", embed},
                      {"depth", depth},
                      {"heads", heads},
                      {"mlp_ratio", mlp_ratio},
                      {"dropout", dropout},
                      {"residual", residual}};
  return j.dump(2) + "\n";
}

absl::StatusOr<ClimaxConfig> ClimaxConfig::FromJson(const std::string& text, const std::string& source) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  ClimaxConfig c;
  for (absl::Status s :
       {ReadJsonField(j, "variables", c.variables, source), ReadJsonField(j, "height", c.height, source),
        ReadJsonField(j, "width", c.width, source), ReadJsonField(j, "patch", c.patch, source),
        ReadJsonField(j, "embed", c.embed, source), ReadJsonField(j, "depth", c.depth, source),
        ReadJsonField(j, "heads", c.heads, source), ReadJsonField(j, "mlp_ratio", c.mlp_ratio, source),
        ReadJsonField(j, "dropout", c.dropout, source), ReadJsonField(j, "residual", c.residual, source)}) {
    if (!s.ok()) return s;
  }
  if (c.variables <= 0 || c.height <= 0 || c.width <= 0 || c.patch <= 0 || c.embed <= 0 || c.depth < 0 ||
      c.heads <= 0 || c.embed % c.heads != 0 || c.mlp_ratio <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(source,
                     ": needs variables, height, width, patch, embed, heads, mlp_ratio > 0, depth >= 0 and "
                     "embed divisible by heads (got embed ",
                     c.embed, ", heads ", c.heads, ", patch ", c.patch, ")"));
  }
  return c;
}

}  // namespace zt::science::climate
