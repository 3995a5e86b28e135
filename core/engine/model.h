// What the engine trains: a LibTorch module that turns a batch into a scalar loss.
//
//   class Regressor : public zt::Model {
//    public:
//     Regressor() : fc(register_module("fc", torch::nn::Linear(16, 1))) {}
//     at::Tensor Forward(const zt::Batch& b) override {
//       return (fc->forward(b.at("x")) - b.at("y")).pow(2).mean();
//     }
//     torch::nn::Linear fc;
//   };
//
// The loss is the mean over the micro-batch (as HF models return it), so averaging it over
// ranks and accumulation steps gives the mean over the global batch.
#ifndef ZEROTRAIN_CORE_ENGINE_MODEL_H_
#define ZEROTRAIN_CORE_ENGINE_MODEL_H_

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>

namespace zt {

// Named inputs of one micro-batch ("input_ids", "labels", ...), like HF's batch dicts.
using Batch = std::map<std::string, at::Tensor>;

// What one micro-batch is worth, for the engine's throughput and MFU figures.
struct BatchWork {
  std::int64_t samples = 0;
  std::int64_t tokens = -1;  // positions the model processes; -1: the model counts none
  double flops = -1;         // model FLOPs of forward + backward on it; -1: unknown (no MFU)
};

class Model : public torch::nn::Module {
 public:
  using torch::nn::Module::Module;
  // The scalar training loss of this micro-batch.
  virtual at::Tensor Forward(const Batch& batch) = 0;
  // The micro-batch's samples, tokens and training FLOPs (models state their own; the
  // default counts samples only: the first dimension of the batch's first tensor).
  virtual BatchWork Work(const Batch& batch) const {
    BatchWork w;
    if (!batch.empty() && batch.begin()->second.dim() > 0) w.samples = batch.begin()->second.size(0);
    return w;
  }
};

// batch[key], or std::invalid_argument naming the key (the engine turns it into a Status).
inline const at::Tensor& BatchTensor(const Batch& batch, const std::string& key) {
  auto it = batch.find(key);
  if (it == batch.end()) throw std::invalid_argument("the batch has no \"" + key + "\"");
  return it->second;
}

// Held while a model seeds the global generator and initialises its parameters, so models
// built on several threads (ranks in one process) each get their seed's values.
inline std::mutex& ModelInitMutex() {
  static std::mutex mu;
  return mu;
}

}  // namespace zt

#endif  // ZEROTRAIN_CORE_ENGINE_MODEL_H_
