#include "core/engine/test_models.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <cmath>
#include <mutex>
#include <string>
#include <vector>

namespace zt::testing {
namespace {

// LibTorch's default generator is global: construct models one at a time from a fixed seed.
std::mutex& SeedMutex() {
  static std::mutex m;
  return m;
}

at::Tensor Mse(const at::Tensor& out, const at::Tensor& y) { return (out - y.to(out.scalar_type())).pow(2).mean(); }

class Mlp : public Model {
 public:
  Mlp(std::int64_t in, std::int64_t hidden, std::int64_t out)
      : fc1_(register_module("fc1", torch::nn::Linear(in, hidden))),
        fc2_(register_module("fc2", torch::nn::Linear(hidden, out))) {}
  at::Tensor Forward(const Batch& b) override {
    at::Tensor x = b.at("x").to(fc1_->weight.scalar_type());
    return Mse(fc2_->forward(at::gelu(fc1_->forward(x))), b.at("y"));
  }

 private:
  torch::nn::Linear fc1_, fc2_;
};

class Block : public Model {
 public:
  Block(std::int64_t dim, std::int64_t heads, std::int64_t mlp_hidden)
      : heads_(heads),
        ln1_(register_module("ln1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})))),
        qkv_(register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(dim, 3 * dim).bias(false)))),
        proj_(register_module("proj", torch::nn::Linear(dim, dim))),
        ln2_(register_module("ln2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})))),
        up_(register_module("up", torch::nn::Linear(dim, mlp_hidden))),
        down_(register_module("down", torch::nn::Linear(mlp_hidden, dim))) {}

  at::Tensor Forward(const Batch& b) override {
    return Mse(Apply(b.at("x").to(qkv_->weight.scalar_type())), b.at("y"));
  }

  at::Tensor Apply(at::Tensor x) {
    const std::int64_t n = x.size(0), s = x.size(1), d = x.size(2), hd = d / heads_;
    auto split = qkv_->forward(ln1_->forward(x)).view({n, s, 3, heads_, hd}).permute({2, 0, 3, 1, 4});
    at::Tensor q = split[0], k = split[1], v = split[2];  // [n, heads, s, hd]
    at::Tensor att = at::softmax(at::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(hd)), -1);
    at::Tensor ctx = at::matmul(att, v).transpose(1, 2).reshape({n, s, d});
    x = x + proj_->forward(ctx);
    return x + down_->forward(at::gelu(up_->forward(ln2_->forward(x))));
  }

 private:
  std::int64_t heads_;
  torch::nn::LayerNorm ln1_;
  torch::nn::Linear qkv_, proj_;
  torch::nn::LayerNorm ln2_;
  torch::nn::Linear up_, down_;
};

class Stack : public Model {
 public:
  Stack(std::int64_t layers, std::int64_t dim, std::int64_t heads, std::int64_t mlp_hidden) {
    for (std::int64_t i = 0; i < layers; ++i) {
      blocks_.push_back(register_module("block" + std::to_string(i), std::make_shared<Block>(dim, heads, mlp_hidden)));
    }
  }
  at::Tensor Forward(const Batch& b) override {
    at::Tensor x = b.at("x").to(blocks_[0]->parameters()[0].scalar_type());
    for (auto& blk : blocks_) x = blk->Apply(x);
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
  std::lock_guard<std::mutex> lock(SeedMutex());
  at::manual_seed(seed);
  return std::make_shared<Block>(dim, heads, mlp_hidden);
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
