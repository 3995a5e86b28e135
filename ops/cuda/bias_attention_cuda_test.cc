// The tensor-core T5 attention (ops/cuda/bias_attention_autograd.h) against a float64 reference
// on fresh random inputs: the output and the gradients of q, k, v and the position bias, with
// a padding mask, a causal mask, lengths that are not whole tiles, strided views, and dropout
// replayed from the kernels' own pattern; and the gradients' layout for a fused projection.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "ops/cuda/bias_attention_autograd.h"

namespace zt::ops::cuda {
namespace {

double Lowest(at::ScalarType t) { return t == at::kHalf ? -65504.0 : -3.3895313892515355e38; }

struct Case {
  std::string name;
  at::ScalarType dtype;
  std::int64_t b, h, lq, lk, d;
  bool causal;  // else a padding mask over the keys
  double dropout;
};

struct Grads {
  at::Tensor out, dq, dk, dv, dpos;
};

// max |a - b| over max |b|.
double RelErr(const at::Tensor& a, const at::Tensor& b) {
  const double scale = b.abs().max().item<double>();
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>() / (scale > 0 ? scale : 1.0);
}

class BiasAttentionCudaTest : public ::testing::TestWithParam<Case> {};

TEST_P(BiasAttentionCudaTest, MatchesFloat64Reference) {
  const Case& c = GetParam();
  at::manual_seed(1234);
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(at::kCUDA);
  // q, k and v are slices of one fused [B, L, 3, H, D] projection: strided views, no copies.
  const at::Tensor qkv_q = at::randn({c.b, c.lq, 3, c.h, c.d}, f32).to(c.dtype);
  const at::Tensor qkv_k = at::randn({c.b, c.lk, 3, c.h, c.d}, f32).to(c.dtype);
  const at::Tensor pos0 = at::randn({1, c.h, c.lq, c.lk}, f32).to(c.dtype);
  at::Tensor mask;
  if (c.causal) {
    mask = (1 - at::ones({c.lq, c.lk}, f32).tril()).mul(Lowest(c.dtype)).to(c.dtype).view({1, 1, c.lq, c.lk});
  } else {  // every 7th key padded, and the last one
    at::Tensor pad = at::zeros({c.b, c.lk}, f32);
    pad.slice(1, 0, c.lk, 7).fill_(Lowest(c.dtype));
    pad.select(1, c.lk - 1).fill_(Lowest(c.dtype));
    mask = pad.to(c.dtype).view({c.b, 1, 1, c.lk});
  }
  const at::Tensor dout = at::randn({c.b, c.lq, c.h * c.d}, f32).to(c.dtype);
  const std::uint64_t seed = 987654321;

  // Ours.
  at::Tensor q = qkv_q.select(2, 0).detach().requires_grad_(true);
  at::Tensor k = qkv_k.select(2, 1).detach().requires_grad_(true);
  at::Tensor v = qkv_k.select(2, 2).detach().requires_grad_(true);
  at::Tensor pos = pos0.clone().requires_grad_(true);
  SetBiasAttentionSeedForTesting(seed);
  const at::Tensor out = BiasAttentionCuda(q, k, v, pos, mask, 1.0, c.dropout, /*training=*/true);
  ASSERT_TRUE(out.defined()) << "the kernels refused " << c.name;
  ASSERT_EQ(out.sizes(), (std::vector<std::int64_t>{c.b, c.lq, c.h * c.d}));
  out.backward(dout);

  // Reference in float64 with the same dropout pattern.
  auto leaf = [](const at::Tensor& t) { return t.detach().to(at::kDouble).requires_grad_(true); };
  at::Tensor rq = leaf(q), rk = leaf(k), rv = leaf(v), rpos = leaf(pos0);
  at::Tensor s = at::matmul(rq.permute({0, 2, 1, 3}), rk.permute({0, 2, 3, 1})) + rpos + mask.to(at::kDouble);
  at::Tensor p = at::softmax(s, -1);
  if (c.dropout > 0) {
    const at::Tensor keep = BiasAttentionKeepMask(c.b, c.h, c.lq, c.lk, c.dropout, seed, at::kCUDA);
    p = p * keep.to(at::kDouble) / (1 - c.dropout);
  }
  const at::Tensor ref = at::matmul(p, rv.permute({0, 2, 1, 3})).permute({0, 2, 1, 3}).reshape({c.b, c.lq, -1});
  ref.backward(dout.to(at::kDouble));

  const double tol = c.dtype == at::kHalf ? 1e-2 : 2e-2;
  EXPECT_LT(RelErr(out, ref), tol) << c.name << ": out";
  EXPECT_LT(RelErr(q.grad(), rq.grad()), tol) << c.name << ": dq";
  EXPECT_LT(RelErr(k.grad(), rk.grad()), tol) << c.name << ": dk";
  EXPECT_LT(RelErr(v.grad(), rv.grad()), tol) << c.name << ": dv";
  ASSERT_TRUE(pos.grad().defined()) << c.name;
  EXPECT_EQ(pos.grad().scalar_type(), c.dtype);
  EXPECT_LT(RelErr(pos.grad(), rpos.grad()), tol) << c.name << ": dpos";
  EXPECT_FALSE(out.isnan().any().item<bool>()) << c.name;
}

INSTANTIATE_TEST_SUITE_P(Shapes, BiasAttentionCudaTest,
                         ::testing::Values(Case{"bf16_d64_padding", at::kBFloat16, 3, 4, 77, 100, 64, false, 0.0},
                                           Case{"bf16_d64_causal", at::kBFloat16, 2, 3, 130, 130, 64, true, 0.0},
                                           Case{"bf16_d64_dropout", at::kBFloat16, 2, 4, 64, 128, 64, false, 0.25},
                                           Case{"bf16_d128_padding_dropout", at::kBFloat16, 2, 2, 50, 70, 128, false,
                                                0.1},
                                           Case{"fp16_d64_causal_dropout", at::kHalf, 2, 2, 96, 96, 64, true, 0.1},
                                           Case{"fp16_d128_padding", at::kHalf, 2, 3, 33, 190, 128, false, 0.0}),
                         [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

TEST(BiasAttentionCuda, DropoutKeepsTheExpectedShareAndChangesWithTheSeed) {
  const at::Tensor a = BiasAttentionKeepMask(4, 8, 256, 256, 0.1, 1, at::kCUDA);
  const at::Tensor b = BiasAttentionKeepMask(4, 8, 256, 256, 0.1, 2, at::kCUDA);
  const double kept = a.to(at::kDouble).mean().item<double>();
  EXPECT_NEAR(kept, 0.9, 0.002);
  EXPECT_TRUE(at::equal(a, BiasAttentionKeepMask(4, 8, 256, 256, 0.1, 1, at::kCUDA)));
  const double same = (a == b).to(at::kDouble).mean().item<double>();
  EXPECT_NEAR(same, 0.9 * 0.9 + 0.1 * 0.1, 0.005);  // independent draws
}

// q, k, v as the column blocks of one [B, L, 3 * H * D] projection (ops::Linears' output): the
// gradients are the same blocks of one new tensor, equal to those of separate inputs.
TEST(BiasAttentionCuda, GradientsOfOneProjectionComeBackAsOneMatrix) {
  at::manual_seed(7);
  const std::int64_t b = 2, l = 96, h = 4, d = 64, hd = h * d;
  const auto opts = at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA);
  const at::Tensor qkv = at::randn({b, l, 3 * hd}, opts).requires_grad_(true);
  auto block = [&](const at::Tensor& t, int i) { return t.narrow(2, i * hd, hd).view({b, l, h, d}); };
  const at::Tensor q = block(qkv, 0), k = block(qkv, 1), v = block(qkv, 2);
  const at::Tensor pos = at::randn({1, h, l, l}, opts);
  const at::Tensor dout = at::randn({b, l, hd}, opts);
  SetBiasAttentionSeedForTesting(5);
  const at::Tensor out = BiasAttentionCuda(q, k, v, pos, {}, 1.0, 0.1, /*training=*/true);
  ASSERT_TRUE(out.defined());
  const std::vector<at::Tensor> g = torch::autograd::grad({out}, {q, k, v}, {dout});
  EXPECT_TRUE(g[0].storage().is_alias_of(g[2].storage()));
  EXPECT_EQ(g[0].stride(1), 3 * hd);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(static_cast<const char*>(g[i].data_ptr()), static_cast<const char*>(g[0].data_ptr()) + i * hd * 2);
  }

  const at::Tensor qs = q.detach().contiguous().requires_grad_(true), ks = k.detach().contiguous().requires_grad_(true),
                   vs = v.detach().contiguous().requires_grad_(true);
  SetBiasAttentionSeedForTesting(5);
  const at::Tensor out_s = BiasAttentionCuda(qs, ks, vs, pos, {}, 1.0, 0.1, /*training=*/true);
  out_s.backward(dout);
  EXPECT_TRUE(at::equal(out, out_s));
  EXPECT_TRUE(at::equal(g[0], qs.grad()));
  EXPECT_TRUE(at::equal(g[1], ks.grad()));
  EXPECT_TRUE(at::equal(g[2], vs.grad()));
  EXPECT_FALSE(qs.grad().storage().is_alias_of(ks.grad().storage())) << "separate inputs, separate gradients";
}

TEST(BiasAttentionCuda, InputsTheKernelsDoNotTakeAreRefused) {
  const auto opts = at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA);
  const at::Tensor d32 = at::randn({2, 8, 4, 32}, opts);
  EXPECT_FALSE(BiasAttentionCuda(d32, d32, d32, {}, {}, 1.0, 0.0, false).defined()) << "head size 32";
  const at::Tensor f32 = at::randn({2, 8, 4, 64}, opts.dtype(at::kFloat));
  EXPECT_FALSE(BiasAttentionCuda(f32, f32, f32, {}, {}, 1.0, 0.0, false).defined()) << "float32";
  const at::Tensor ok = at::randn({2, 8, 4, 64}, opts);
  const at::Tensor wrong_pos = at::randn({2, 4, 8, 8}, opts);
  EXPECT_FALSE(BiasAttentionCuda(ok, ok, ok, wrong_pos, {}, 1.0, 0.0, false).defined()) << "per-sample pos";
  EXPECT_TRUE(BiasAttentionCuda(ok, ok, ok, {}, {}, 1.0, 0.0, false).defined());
}

}  // namespace
}  // namespace zt::ops::cuda
