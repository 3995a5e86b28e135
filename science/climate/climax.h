// A ClimaX-style forecaster (Nguyen et al., 2023): every variable's field is cut into p x p
// patches and embedded by its own linear map, a learned variable embedding is added, the
// variables of each patch are aggregated into one token by cross-attention from a learned query,
// position and lead-time embeddings are added, transformer blocks mix the patches, and a head
// maps each token back to p x p values per output variable.
//
//   ClimaxConfig c;  c.variables = 3;  c.height = 32;  c.width = 64;
//   auto model = std::make_shared<Climax>(c, /*seed=*/0);
//   at::Tensor loss = model->Forward(batch);   // lat-weighted MSE on normalised fields
//
// Batch: "input" [B, V, H, W] (normalised, NaN replaced by 0), "target" [B, V, H, W],
// "target_mask" [B, V, H, W] bool (false where the truth is missing), "lead_hours" [B],
// "lat_weights" [H].  Grids whose sides are not multiples of the patch are padded inside the
// model and cropped back.  With `residual` the model predicts the change from the input.
// The aggregation and every block are stage-3 units.
#ifndef ZEROTRAIN_SCIENCE_CLIMATE_CLIMAX_H_
#define ZEROTRAIN_SCIENCE_CLIMATE_CLIMAX_H_

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/engine/model.h"
#include "core/zero/unit.h"

namespace zt::science::climate {

struct ClimaxConfig {
  int variables = 1;
  int height = 32, width = 64;
  int patch = 4;
  int embed = 128;
  int depth = 4;
  int heads = 4;
  int mlp_ratio = 4;
  double dropout = 0.0;
  bool residual = true;

  std::string ToJson() const;
  static absl::StatusOr<ClimaxConfig> FromJson(const std::string& text, const std::string& source);
};

namespace internal {
class Aggregate;
class Block;
class Head;
}  // namespace internal

class Climax : public zt::Model {
 public:
  Climax(const ClimaxConfig& config, std::uint64_t seed);
  ~Climax() override;

  // Latitude-weighted MSE over the present target values.
  at::Tensor Forward(const Batch& batch) override;
  // Samples, patch tokens (B x the padded grid's patches), and the training FLOPs of the ViT
  // blocks: per block 2 x (4 e^2 + 2 e^2 mlp_ratio) per token and 4 L^2 e per sample for scores
  // and context, x 3 for forward and backward (patch embedding, variable aggregation and the
  // head are not counted).
  BatchWork Work(const Batch& batch) const override {
    const at::Tensor& input = BatchTensor(batch, "input");
    const double b = static_cast<double>(input.size(0));
    const double l = static_cast<double>((padded_h_ / config_.patch) * (padded_w_ / config_.patch));
    const double e = config_.embed;
    BatchWork w;
    w.samples = input.size(0);
    w.tokens = static_cast<std::int64_t>(b * l);
    w.flops = 3.0 * config_.depth * (2 * b * l * (4 * e * e + 2 * e * e * config_.mlp_ratio) + 4 * b * l * l * e);
    return w;
  }
  // The forecast [B, V, H, W] (normalised), in the input's dtype.
  at::Tensor Predict(const Batch& batch);

  const ClimaxConfig& config() const { return config_; }

 private:
  ClimaxConfig config_;
  std::int64_t padded_h_, padded_w_;
  std::shared_ptr<Unit<internal::Aggregate>> aggregate_;
  std::vector<std::shared_ptr<Unit<internal::Block>>> blocks_;
  std::shared_ptr<Unit<internal::Head>> head_;
};

}  // namespace zt::science::climate

#endif  // ZEROTRAIN_SCIENCE_CLIMATE_CLIMAX_H_
