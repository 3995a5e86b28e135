// A graph transformer for molecular property prediction (Graphormer / Uni-Mol style): atoms are
// tokens, and every attention layer adds a learned pair bias to its logits, made once per batch
// from the shortest-path distance, the bond between the two atoms and, with conformers, their 3D
// distance in a Gaussian basis.  Pre-norm layers, masked mean readout, one output per target.
//
//   MoleculeModelConfig c;  c.targets = 1;
//   auto model = std::make_shared<MoleculeModel>(c, /*seed=*/0);
//   at::Tensor loss = model->Forward(MakeBatch(graphs));      // standardised MSE / BCE
//   at::Tensor y = model->Predict(batch);                       // [B, targets], fp32
//
// The pair encoder, each layer and the head are stage-3 units.  The attention is
// ops/pair_bias_attention.h's (the fused CUDA kernel on a GPU).
#ifndef ZEROTRAIN_SCIENCE_MOLECULE_MODEL_H_
#define ZEROTRAIN_SCIENCE_MOLECULE_MODEL_H_

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/engine/model.h"
#include "core/zero/unit.h"

namespace zt::science::molecule {

struct MoleculeModelConfig {
  int layers = 6;
  int hidden = 256;
  int heads = 8;
  int ffn = 1024;
  double dropout = 0.1;
  int targets = 1;
  bool classification = false;  // BCE with logits per target, else MSE on standardised targets
  int gaussians = 0;            // 3D distance basis size; 0: no 3D input
  double max_distance = 12.0;   // Å: the Gaussians' centres span [0, max_distance]

  std::string ToJson() const;
  static absl::StatusOr<MoleculeModelConfig> FromJson(const std::string& text, const std::string& source);
};

namespace internal {
class PairEncoder;
class Layer;
class Head;
}  // namespace internal

class MoleculeModel : public zt::Model {
 public:
  MoleculeModel(const MoleculeModelConfig& config, std::uint64_t seed);
  ~MoleculeModel() override;

  // Mean loss over the present targets of the batch (data.h's MakeBatch layout).
  at::Tensor Forward(const Batch& batch) override;
  // Molecules, atom positions (padded), and the training FLOPs of the transformer layers: per
  // layer 2 x (4 h^2 + 2 h ffn) per atom and 4 n^2 h per molecule for scores and context, x 3
  // for forward and backward (the pair encoder and the head, a few percent, are not counted).
  BatchWork Work(const Batch& batch) const override {
    const at::Tensor& atoms = BatchTensor(batch, "atoms");
    const double b = static_cast<double>(atoms.size(0)), n = static_cast<double>(atoms.size(1));
    const double h = config_.hidden, f = config_.ffn;
    BatchWork w;
    w.samples = atoms.size(0);
    w.tokens = atoms.numel();
    w.flops = 3.0 * config_.layers * (2 * b * n * (4 * h * h + 2 * h * f) + 4 * b * n * n * h);
    return w;
  }
  // [B, targets] in fp32: standardised values (regression) or logits (classification).
  at::Tensor Predict(const Batch& batch);

  const MoleculeModelConfig& config() const { return config_; }

 private:
  at::Tensor Run(const Batch& batch);

  MoleculeModelConfig config_;
  torch::Tensor atom_embedding_;  // [kAtomVocab, hidden]
  std::shared_ptr<Unit<internal::PairEncoder>> pair_;
  std::vector<std::shared_ptr<Unit<internal::Layer>>> layers_;
  std::shared_ptr<Unit<internal::Head>> head_;
};

}  // namespace zt::science::molecule

#endif  // ZEROTRAIN_SCIENCE_MOLECULE_MODEL_H_
