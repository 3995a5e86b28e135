#include "core/engine/test_models.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <cmath>
#include <mutex>
#include <string>
#include <vector>

#include "core/zero/unit.h"

namespace zt::testing {
namespace {

// LibTorch's default generator is global: construct models one at a time from a fixed seed.
std::mutex& SeedMutex() {
  static std::mutex m;
  return m;
}

at::Tensor Mse(const at::Tensor& out, const at::Tensor& y) { return (out - y.to(out.scalar_type())).pow(2).mean(); }

using LinearUnit = std::shared_ptr<Unit<torch::nn::LinearImpl>>;

LinearUnit Linear(std::int64_t in, std::int64_t out) {
  return MakeUnit(std::make_shared<torch::nn::LinearImpl>(in, out));
}

class Mlp : public Model {
 public:
  Mlp(std::int64_t in, std::int64_t hidden, std::int64_t out)
      : fc1_(register_module("fc1", Linear(in, hidden))), fc2_(register_module("fc2", Linear(hidden, out))) {}
  at::Tensor Forward(const Batch& b) override {
    at::Tensor x = b.at("x").to(fc1_->module().weight.scalar_type());
    return Mse(fc2_->forward(at::gelu(fc1_->forward(x))), b.at("y"));
  }

 private:
  LinearUnit fc1_, fc2_;
};

// x + attention(LayerNorm(x)).  The qkv projection has no bias (see test_models.h).
class Attention : public torch::nn::Module {
 public:
  Attention(std::int64_t dim, std::int64_t heads)
      : heads_(heads),
        ln_(register_module("ln", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})))),
        qkv_(register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(dim, 3 * dim).bias(false)))),
        proj_(register_module("proj", torch::nn::Linear(dim, dim))) {}
  at::Tensor forward(const at::Tensor& x) {
    const std::int64_t n = x.size(0), s = x.size(1), d = x.size(2), hd = d / heads_;
    auto split = qkv_->forward(ln_->forward(x)).view({n, s, 3, heads_, hd}).permute({2, 0, 3, 1, 4});
    at::Tensor q = split[0], k = split[1], v = split[2];  // [n, heads, s, hd]
    at::Tensor att = at::softmax(at::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(hd)), -1);
    return x + proj_->forward(at::matmul(att, v).transpose(1, 2).reshape({n, s, d}));
  }

 private:
  std::int64_t heads_;
  torch::nn::LayerNorm ln_;
  torch::nn::Linear qkv_, proj_;
};

// x + MLP(LayerNorm(x)).
class Feedforward : public torch::nn::Module {
 public:
  Feedforward(std::int64_t dim, std::int64_t hidden)
      : ln_(register_module("ln", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})))),
        up_(register_module("up", torch::nn::Linear(dim, hidden))),
        down_(register_module("down", torch::nn::Linear(hidden, dim))) {}
  at::Tensor forward(const at::Tensor& x) { return x + down_->forward(at::gelu(up_->forward(ln_->forward(x)))); }

 private:
  torch::nn::LayerNorm ln_;
  torch::nn::Linear up_, down_;
};

// A transformer block as two stage-3 units.
class Block : public torch::nn::Module {
 public:
  Block(std::int64_t dim, std::int64_t heads, std::int64_t mlp_hidden)
      : attention_(register_module("attention", MakeUnit(std::make_shared<Attention>(dim, heads)))),
        feedforward_(register_module("feedforward", MakeUnit(std::make_shared<Feedforward>(dim, mlp_hidden)))) {}
  at::Tensor forward(const at::Tensor& x) { return feedforward_->forward(attention_->forward(x)); }
  at::ScalarType dtype() { return feedforward_->module().parameters()[0].scalar_type(); }

 private:
  std::shared_ptr<Unit<Attention>> attention_;
  std::shared_ptr<Unit<Feedforward>> feedforward_;
};

class Stack : public Model {
 public:
  Stack(std::int64_t layers, std::int64_t dim, std::int64_t heads, std::int64_t mlp_hidden) {
    for (std::int64_t i = 0; i < layers; ++i) {
      blocks_.push_back(register_module("block" + std::to_string(i), std::make_shared<Block>(dim, heads, mlp_hidden)));
    }
  }
  at::Tensor Forward(const Batch& b) override {
    at::Tensor x = b.at("x").to(blocks_[0]->dtype());
    for (auto& blk : blocks_) x = blk->forward(x);
    return Mse(x, b.at("y"));
  }

 private:
  std::vector<std::shared_ptr<Block>> blocks_;
};

}  // namespace

std::shared_ptr<Model> MakeMlp(std::uint64_t seed, std::int64_t in, std::int64_t hidden, std::int64_t out) {
  std::lock_guard<std::mutex> lock(SeedMutex());
  at::manual_seed(seed);
  return std::make_shared<Mlp>(in, hidden, out);
}

Batch MlpBatch(std::uint64_t seed, std::int64_t samples, std::int64_t in, std::int64_t out) {
  std::lock_guard<std::mutex> lock(SeedMutex());
  at::manual_seed(seed);
  at::Tensor x = at::randn({samples, in});
  return {{"x", x}, {"y", at::randn({samples, out})}};
}

std::shared_ptr<Model> MakeTransformerBlock(std::uint64_t seed, std::int64_t dim, std::int64_t heads,
                                            std::int64_t mlp_hidden) {
  return MakeTransformerStack(seed, 1, dim, heads, mlp_hidden);
}

std::shared_ptr<Model> MakeTransformerStack(std::uint64_t seed, std::int64_t layers, std::int64_t dim,
                                            std::int64_t heads, std::int64_t mlp_hidden) {
  std::lock_guard<std::mutex> lock(SeedMutex());
  at::manual_seed(seed);
  return std::make_shared<Stack>(layers, dim, heads, mlp_hidden);
}

Batch TransformerBatch(std::uint64_t seed, std::int64_t samples, std::int64_t seq, std::int64_t dim) {
  std::lock_guard<std::mutex> lock(SeedMutex());
  at::manual_seed(seed);
  at::Tensor x = at::randn({samples, seq, dim});
  return {{"x", x}, {"y", at::randn({samples, seq, dim})}};
}

Batch Slice(const Batch& b, std::int64_t begin, std::int64_t count) {
  Batch out;
  for (const auto& [k, v] : b) out.emplace(k, v.narrow(0, begin, count));
  return out;
}

}  // namespace zt::testing
