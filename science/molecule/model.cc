#include "science/molecule/model.h"

#include <ATen/ATen.h>

#include <cmath>
#include <mutex>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "core/profiler/module_scope.h"
#include "core/util/json_field.h"
#include "nlohmann/json.hpp"
#include "ops/pair_bias_attention.h"
#include "science/molecule/data.h"

namespace zt::science::molecule {
namespace internal {
namespace {

at::Tensor Normal(std::int64_t rows, std::int64_t cols) { return at::empty({rows, cols}).normal_(0.0, 0.02); }

}  // namespace

// The attention bias [B, heads, N, N] every layer adds: path-length and bond embeddings and,
// with conformers, an MLP of the 3D distance in a Gaussian basis.
class PairEncoder : public torch::nn::Module {
 public:
  explicit PairEncoder(const MoleculeModelConfig& c) : c_(c) {
    path_embedding = register_parameter("path_embedding", Normal(kMaxPathDistance + 2, c.heads));
    bond_embedding = register_parameter("bond_embedding", Normal(kBondVocab, c.heads));
    if (c.gaussians > 0) {
      gaussian_proj = register_parameter("gaussian_proj_weight", Normal(c.gaussians, c.gaussians));
      gaussian_proj_bias = register_parameter("gaussian_proj_bias", at::zeros({c.gaussians}));
      gaussian_out = register_parameter("gaussian_out_weight", Normal(c.heads, c.gaussians));
    }
  }

  at::Tensor forward(const at::Tensor& path, const at::Tensor& bonds, const at::Tensor& distance) {
    ZT_PROFILE_MODULE(this);
    at::Tensor b = at::embedding(path_embedding, path) + at::embedding(bond_embedding, bonds).sum(3);  // [B,N,N,H]
    if (c_.gaussians > 0) {
      if (!distance.defined()) {
        throw std::invalid_argument("the model was built for 3D distances (gaussians > 0) but the batch has none");
      }
      const double width = c_.max_distance / c_.gaussians;
      const at::Tensor centres =
          at::linspace(0.0, c_.max_distance, c_.gaussians, at::TensorOptions().device(distance.device()));
      const at::Tensor g = at::exp(-((distance.to(at::kFloat).unsqueeze(-1) - centres) / width).pow(2));
      const at::Tensor h = at::gelu(at::linear(g.to(gaussian_proj.scalar_type()), gaussian_proj, gaussian_proj_bias));
      b = b + at::linear(h, gaussian_out);
    }
    return b.permute({0, 3, 1, 2}).contiguous();
  }

  at::Tensor path_embedding, bond_embedding, gaussian_proj, gaussian_proj_bias, gaussian_out;

 private:
  const MoleculeModelConfig c_;
};

// Pre-norm transformer layer with pair-bias self-attention over the atoms.
class Layer : public torch::nn::Module {
 public:
  explicit Layer(const MoleculeModelConfig& c) : c_(c) {
    const int h = c.hidden;
    ln1_w = register_parameter("attention_norm_weight", at::ones({h}));
    ln1_b = register_parameter("attention_norm_bias", at::zeros({h}));
    qkv_w = register_parameter("qkv_weight", Normal(3 * h, h));
    qkv_b = register_parameter("qkv_bias", at::zeros({3 * h}));
    out_w = register_parameter("out_weight", Normal(h, h));
    out_b = register_parameter("out_bias", at::zeros({h}));
    ln2_w = register_parameter("ffn_norm_weight", at::ones({h}));
    ln2_b = register_parameter("ffn_norm_bias", at::zeros({h}));
    fc1_w = register_parameter("fc1_weight", Normal(c.ffn, h));
    fc1_b = register_parameter("fc1_bias", at::zeros({c.ffn}));
    fc2_w = register_parameter("fc2_weight", Normal(h, c.ffn));
    fc2_b = register_parameter("fc2_bias", at::zeros({h}));
  }

  // x [B, N, hidden]; bias [B, heads, N, N]; mask [B, N] bool (true: an atom).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& bias, const at::Tensor& mask) {
    ZT_PROFILE_MODULE(this);
    const std::int64_t B = x.size(0), N = x.size(1), H = c_.heads, d = c_.hidden / c_.heads;
    const bool train = is_training();
    const at::Tensor n1 = at::layer_norm(x, {c_.hidden}, ln1_w, ln1_b);
    const at::Tensor qkv = at::linear(n1, qkv_w, qkv_b).view({B, N, 3, H, d}).permute({2, 0, 3, 1, 4});
    const at::Tensor a = ops::PairBiasAttention(qkv[0].contiguous(), qkv[1].contiguous(), qkv[2].contiguous(), bias,
                                                mask, 1.0 / std::sqrt(static_cast<double>(d)));
    const at::Tensor attended = at::linear(a.transpose(1, 2).reshape({B, N, c_.hidden}), out_w, out_b);
    at::Tensor y = x + at::dropout(attended, c_.dropout, train);
    const at::Tensor n2 = at::layer_norm(y, {c_.hidden}, ln2_w, ln2_b);
    const at::Tensor f =
        at::linear(at::dropout(at::gelu(at::linear(n2, fc1_w, fc1_b)), c_.dropout, train), fc2_w, fc2_b);
    return y + at::dropout(f, c_.dropout, train);
  }

  at::Tensor ln1_w, ln1_b, qkv_w, qkv_b, out_w, out_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;

 private:
  const MoleculeModelConfig c_;
};

// Final norm, mean over the atoms, a two-layer MLP to one output per target.
class Head : public torch::nn::Module {
 public:
  explicit Head(const MoleculeModelConfig& c) : c_(c) {
    norm_w = register_parameter("norm_weight", at::ones({c.hidden}));
    norm_b = register_parameter("norm_bias", at::zeros({c.hidden}));
    fc_w = register_parameter("fc_weight", Normal(c.hidden, c.hidden));
    fc_b = register_parameter("fc_bias", at::zeros({c.hidden}));
    out_w = register_parameter("out_weight", Normal(c.targets, c.hidden));
    out_b = register_parameter("out_bias", at::zeros({c.targets}));
  }

  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask) {
    ZT_PROFILE_MODULE(this);
    const at::Tensor n = at::layer_norm(x, {c_.hidden}, norm_w, norm_b);
    const at::Tensor m = mask.unsqueeze(-1).to(n.scalar_type());
    const at::Tensor pooled = (n * m).sum(1) / m.sum(1).clamp_min(1);
    const at::Tensor h = at::dropout(at::gelu(at::linear(pooled, fc_w, fc_b)), c_.dropout, is_training());
    return at::linear(h, out_w, out_b);
  }

  at::Tensor norm_w, norm_b, fc_w, fc_b, out_w, out_b;

 private:
  const MoleculeModelConfig c_;
};

}  // namespace internal

MoleculeModel::MoleculeModel(const MoleculeModelConfig& config, std::uint64_t seed) : config_(config) {
  std::lock_guard<std::mutex> lock(ModelInitMutex());
  at::manual_seed(seed);
  at::NoGradGuard no_grad;
  atom_embedding_ = register_parameter("atom_embedding", internal::Normal(kAtomVocab, config.hidden));
  pair_ = register_module("pair", MakeUnit(std::make_shared<internal::PairEncoder>(config)));
  auto layers = register_module("layers", std::make_shared<torch::nn::Module>());
  for (int i = 0; i < config.layers; ++i) {
    layers_.push_back(layers->register_module(std::to_string(i), MakeUnit(std::make_shared<internal::Layer>(config))));
  }
  head_ = register_module("head", MakeUnit(std::make_shared<internal::Head>(config)));
}

MoleculeModel::~MoleculeModel() = default;

at::Tensor MoleculeModel::Run(const Batch& batch) {
  const at::Tensor& atoms = BatchTensor(batch, "atoms");
  const at::Tensor mask = BatchTensor(batch, "atom_mask").to(at::kBool);
  auto d = batch.find("distance");
  const at::Tensor distance = d == batch.end() ? at::Tensor() : d->second;
  at::Tensor x = at::dropout(at::embedding(atom_embedding_, atoms).sum(2), config_.dropout, is_training());
  const at::Tensor bias = pair_->forward(BatchTensor(batch, "path"), BatchTensor(batch, "bonds"), distance);
  for (auto& layer : layers_) x = layer->forward(x, bias, mask);
  return head_->forward(x, mask).to(at::kFloat);
}

at::Tensor MoleculeModel::Forward(const Batch& batch) {
  const at::Tensor out = Run(batch);
  const at::Tensor present = BatchTensor(batch, "target_mask").to(at::kBool);
  const at::Tensor y = at::where(present, BatchTensor(batch, "targets").to(at::kFloat), at::zeros_like(out));
  const at::Tensor m = present.to(at::kFloat);
  const at::Tensor per = config_.classification
                             ? at::binary_cross_entropy_with_logits(out, y, {}, {}, at::Reduction::None)
                             : (out - y).pow(2);
  return (per * m).sum() / m.sum().clamp_min(1);
}

at::Tensor MoleculeModel::Predict(const Batch& batch) { return Run(batch); }

std::string MoleculeModelConfig::ToJson() const {
  nlohmann::json j = {{"model_type", "zerotrain_molecule_graph_transformer"},
                      {"layers", layers},
                      {"hidden", hidden},
                      {"heads", heads},
                      {"ffn", ffn},
                      {"dropout", dropout},
                      {"targets", targets},
                      {"classification", classification},
                      {"gaussians", gaussians},
                      {"max_distance", max_distance}};
  return j.dump(2) + "\n";
}

absl::StatusOr<MoleculeModelConfig> MoleculeModelConfig::FromJson(const std::string& text, const std::string& source) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  MoleculeModelConfig c;
  for (absl::Status s :
       {ReadJsonField(j, "layers", c.layers, source), ReadJsonField(j, "hidden", c.hidden, source),
        ReadJsonField(j, "heads", c.heads, source), ReadJsonField(j, "ffn", c.ffn, source),
        ReadJsonField(j, "dropout", c.dropout, source), ReadJsonField(j, "targets", c.targets, source),
        ReadJsonField(j, "classification", c.classification, source),
        ReadJsonField(j, "gaussians", c.gaussians, source), ReadJsonField(j, "max_distance", c.max_distance, source)}) {
    if (!s.ok()) return s;
  }
  if (c.layers < 0 || c.hidden <= 0 || c.heads <= 0 || c.hidden % c.heads != 0 || c.ffn <= 0 || c.targets <= 0 ||
      c.gaussians < 0 || c.max_distance <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": needs layers >= 0, hidden > 0 divisible by heads, ffn > 0, targets > 0, gaussians >= 0 (got layers ",
        c.layers, ", hidden ", c.hidden, ", heads ", c.heads, ", ffn ", c.ffn, ", targets ", c.targets, ", gaussians ",
        c.gaussians, ")"));
  }
  return c;
}

}  // namespace zt::science::molecule
