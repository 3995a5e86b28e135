// The reference pair-bias attention against plain loops, finite differences and its own checks.
#include "ops/pair_bias_attention.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace zt::ops {
namespace {

struct Inputs {
  at::Tensor q, k, v, bias, key_mask;
  double scale;
};

// key_mask: batch 0 has keys 1 and n-2 padded, batch 1 (if any) only its first key real,
// batch 2 (if any) every key padded.
at::Tensor MakeMask(std::int64_t b, std::int64_t n) {
  at::Tensor mask = at::ones({b, n}, at::kBool);
  if (n > 2) {
    mask[0][1] = false;
    mask[0][n - 2] = false;
  }
  if (b > 1) mask[1].narrow(0, 1, n - 1).fill_(false);
  if (b > 2) mask[2].fill_(false);
  return mask;
}

Inputs MakeInputs(std::int64_t b, std::int64_t h, std::int64_t n, std::int64_t d, at::ScalarType dtype,
                  std::uint64_t seed) {
  at::manual_seed(seed);
  const auto opts = at::TensorOptions().dtype(dtype);
  Inputs in;
  in.q = at::randn({b, h, n, d}, opts);
  in.k = at::randn({b, h, n, d}, opts);
  in.v = at::randn({b, h, n, d}, opts);
  in.bias = at::randn({b, h, n, n}, opts);
  in.key_mask = MakeMask(b, n);
  in.scale = 1.0 / std::sqrt(static_cast<double>(d));
  return in;
}

// The definition, one row at a time in double.
at::Tensor NaiveAttention(const Inputs& in) {
  const at::Tensor q = in.q.to(at::kDouble).contiguous(), k = in.k.to(at::kDouble).contiguous(),
                   v = in.v.to(at::kDouble).contiguous(), bias = in.bias.to(at::kDouble).contiguous();
  const std::int64_t nb = q.size(0), nh = q.size(1), n = q.size(2), nd = q.size(3);
  at::Tensor out = at::zeros({nb, nh, n, nd}, at::kDouble);
  auto qa = q.accessor<double, 4>(), ka = k.accessor<double, 4>(), va = v.accessor<double, 4>();
  auto ba = bias.accessor<double, 4>();
  auto oa = out.accessor<double, 4>();
  auto ma = in.key_mask.accessor<bool, 2>();
  for (std::int64_t b = 0; b < nb; ++b) {
    for (std::int64_t h = 0; h < nh; ++h) {
      for (std::int64_t i = 0; i < n; ++i) {
        std::vector<double> s(n, 0.0);
        double m = -INFINITY;
        for (std::int64_t j = 0; j < n; ++j) {
          if (!ma[b][j]) continue;
          double dot = 0;
          for (std::int64_t x = 0; x < nd; ++x) dot += qa[b][h][i][x] * ka[b][h][j][x];
          s[j] = in.scale * dot + ba[b][h][i][j];
          m = std::max(m, s[j]);
        }
        if (m == -INFINITY) continue;  // every key padded: the row stays 0
        double sum = 0;
        for (std::int64_t j = 0; j < n; ++j) {
          s[j] = ma[b][j] ? std::exp(s[j] - m) : 0.0;
          sum += s[j];
        }
        for (std::int64_t j = 0; j < n; ++j) {
          for (std::int64_t x = 0; x < nd; ++x) oa[b][h][i][x] += s[j] / sum * va[b][h][j][x];
        }
      }
    }
  }
  return out;
}

at::Tensor Reference(const Inputs& in) {
  return PairBiasAttentionReference(in.q, in.k, in.v, in.bias, in.key_mask, in.scale);
}

TEST(PairBiasAttentionReference, MatchesNaiveLoops) {
  for (std::int64_t n : {1, 5, 13}) {
    Inputs in = MakeInputs(3, 2, n, 8, at::kFloat, 100 + n);
    at::Tensor out = Reference(in);
    ASSERT_EQ(out.scalar_type(), at::kFloat);
    ASSERT_EQ(out.sizes(), in.q.sizes());
    at::Tensor want = NaiveAttention(in);
    EXPECT_TRUE(at::allclose(out.to(at::kDouble), want, 1e-5, 1e-5))
        << "n " << n << " max diff " << (out.to(at::kDouble) - want).abs().max().item<double>();
  }
}

TEST(PairBiasAttentionReference, NonContiguousInputsMatchNaiveLoops) {
  Inputs in = MakeInputs(2, 3, 6, 4, at::kFloat, 7);
  Inputs t = in;
  // Same values, other strides: [B,N,H,D] storage viewed as [B,H,N,D].
  t.q = in.q.transpose(1, 2).contiguous().transpose(1, 2);
  t.k = in.k.transpose(1, 2).contiguous().transpose(1, 2);
  t.bias = in.bias.transpose(2, 3).contiguous().transpose(2, 3);
  ASSERT_FALSE(t.q.is_contiguous());
  EXPECT_TRUE(at::allclose(Reference(t).to(at::kDouble), NaiveAttention(in), 1e-5, 1e-5));
}

TEST(PairBiasAttentionReference, PaddedKeysGetNoWeight) {
  Inputs in = MakeInputs(2, 2, 9, 4, at::kFloat, 3);
  at::Tensor out = Reference(in);
  Inputs changed = in;
  const at::Tensor padded = in.key_mask.logical_not().view({2, 1, 9, 1});
  changed.k = in.k.masked_fill(padded, 1e4);
  changed.v = in.v.masked_fill(padded, -1e4);
  changed.bias = in.bias.masked_fill(in.key_mask.logical_not().view({2, 1, 1, 9}), 1e4);
  EXPECT_TRUE(at::equal(Reference(changed), out));
}

TEST(PairBiasAttentionReference, AllMaskedRowGivesZerosAndZeroGradients) {
  Inputs in = MakeInputs(3, 2, 6, 4, at::kFloat, 11);  // batch 2: every key padded
  for (at::Tensor* t : {&in.q, &in.k, &in.v, &in.bias}) t->requires_grad_(true);
  at::Tensor out = Reference(in);
  EXPECT_FALSE(out.isnan().any().item<bool>());
  EXPECT_TRUE(at::equal(out[2], at::zeros_like(out[2])));
  EXPECT_GT(out[0].abs().sum().item<double>(), 0.0);
  out.backward(at::randn_like(out));
  for (const at::Tensor* t : {&in.q, &in.k, &in.v, &in.bias}) {
    ASSERT_TRUE(t->grad().defined());
    EXPECT_TRUE(t->grad().isfinite().all().item<bool>());
    EXPECT_TRUE(at::equal(t->grad()[2], at::zeros_like(t->grad()[2])));
  }
  // Padded keys get no gradient either.
  const at::Tensor padded = in.key_mask.logical_not();
  EXPECT_EQ(in.k.grad()[0].index({at::indexing::Slice(), padded[0]}).abs().sum().item<double>(), 0.0);
  EXPECT_EQ(in.v.grad()[0].index({at::indexing::Slice(), padded[0]}).abs().sum().item<double>(), 0.0);
}

// Central differences in double against autograd, for q, k, v and bias.
TEST(PairBiasAttentionReference, GradientsMatchFiniteDifferences) {
  Inputs in = MakeInputs(3, 2, 5, 3, at::kDouble, 21);
  const at::Tensor w = at::randn({3, 2, 5, 3}, at::kDouble);
  std::vector<at::Tensor*> leaves = {&in.q, &in.k, &in.v, &in.bias};
  for (at::Tensor* t : leaves) t->requires_grad_(true);
  (Reference(in) * w).sum().backward();

  const double eps = 1e-6;
  for (std::size_t which = 0; which < leaves.size(); ++which) {
    const char* name = std::vector<const char*>{"q", "k", "v", "bias"}[which];
    const at::Tensor analytic = leaves[which]->grad();
    ASSERT_TRUE(analytic.defined()) << name;
    EXPECT_TRUE(analytic.isfinite().all().item<bool>()) << name;
    c10::NoGradGuard no_grad;
    Inputs probe = in;
    for (at::Tensor* t : {&probe.q, &probe.k, &probe.v, &probe.bias}) *t = t->detach().clone();
    at::Tensor* x = std::vector<at::Tensor*>{&probe.q, &probe.k, &probe.v, &probe.bias}[which];
    double* data = x->data_ptr<double>();
    const at::Tensor flat_grad = analytic.contiguous().view(-1);
    for (std::int64_t e = 0; e < x->numel(); ++e) {
      const double saved = data[e];
      data[e] = saved + eps;
      const double plus = (Reference(probe) * w).sum().item<double>();
      data[e] = saved - eps;
      const double minus = (Reference(probe) * w).sum().item<double>();
      data[e] = saved;
      const double numeric = (plus - minus) / (2 * eps);
      const double got = flat_grad[e].item<double>();
      EXPECT_NEAR(got, numeric, 1e-6 + 1e-5 * std::abs(numeric)) << name << " element " << e;
    }
  }
}

TEST(PairBiasAttentionReference, HalfPrecisionCloseToFloat) {
  for (at::ScalarType dtype : {at::kBFloat16, at::kHalf}) {
    Inputs in = MakeInputs(3, 2, 17, 16, at::kFloat, 5);
    Inputs low = in;
    for (at::Tensor* t : {&low.q, &low.k, &low.v, &low.bias}) *t = t->to(dtype);
    at::Tensor out = Reference(low);
    ASSERT_EQ(out.scalar_type(), dtype);
    EXPECT_FALSE(out.isnan().any().item<bool>());
    // Same (rounded) inputs in float32: only the output's rounding differs.
    Inputs rounded = low;
    for (at::Tensor* t : {&rounded.q, &rounded.k, &rounded.v, &rounded.bias}) *t = t->to(at::kFloat);
    const double tol = dtype == at::kBFloat16 ? 8e-3 : 1e-3;
    EXPECT_TRUE(at::allclose(out.to(at::kFloat), Reference(rounded), tol, tol)) << dtype;
    // Against the unrounded inputs.
    EXPECT_TRUE(at::allclose(out.to(at::kFloat), Reference(in), 5e-2, 5e-2)) << dtype;
    // Gradients flow to bf16/fp16 leaves.
    for (at::Tensor* t : {&low.q, &low.k, &low.v, &low.bias}) t->requires_grad_(true);
    Reference(low).sum().backward();
    EXPECT_EQ(low.bias.grad().scalar_type(), dtype);
    EXPECT_TRUE(low.bias.grad().isfinite().all().item<bool>());
  }
}

TEST(PairBiasAttention, OnTheCpuIsTheReference) {
  Inputs in = MakeInputs(2, 2, 7, 8, at::kFloat, 9);
  EXPECT_TRUE(at::equal(PairBiasAttention(in.q, in.k, in.v, in.bias, in.key_mask, in.scale), Reference(in)));
}

void ExpectThrowMentioning(const std::function<void()>& f, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning " << needles[0];
  } catch (const c10::Error& e) {
    const std::string message = e.what_without_backtrace();
    for (const std::string& needle : needles) {
      EXPECT_NE(message.find(needle), std::string::npos) << "'" << needle << "' not in: " << message;
    }
  }
}

TEST(PairBiasAttention, BadArgumentsThrowNamingTheArgument) {
  const Inputs in = MakeInputs(2, 3, 5, 4, at::kFloat, 1);
  auto call = [](const Inputs& x) { return [x] { PairBiasAttention(x.q, x.k, x.v, x.bias, x.key_mask, x.scale); }; };
  Inputs bad = in;
  bad.q = in.q[0];
  ExpectThrowMentioning(call(bad), {"q must be [B, H, N, D]", "[3, 5, 4]"});
  bad = in;
  bad.k = at::randn({2, 3, 6, 4});
  ExpectThrowMentioning(call(bad), {"k must have q's shape", "[2, 3, 6, 4]"});
  bad = in;
  bad.v = at::randn({2, 3, 5, 8});
  ExpectThrowMentioning(call(bad), {"v must have q's shape", "[2, 3, 5, 8]"});
  bad = in;
  bad.bias = at::randn({2, 1, 5, 5});
  ExpectThrowMentioning(call(bad), {"bias must be [B, H, N, N] = [2, 3, 5, 5]", "[2, 1, 5, 5]"});
  bad = in;
  bad.key_mask = at::ones({2, 4}, at::kBool);
  ExpectThrowMentioning(call(bad), {"key_mask must be [B, N] = [2, 5]", "[2, 4]"});
  bad = in;
  bad.key_mask = at::ones({2, 5});
  ExpectThrowMentioning(call(bad), {"key_mask must be bool", "Float"});
  bad = in;
  bad.bias = in.bias.to(at::kBFloat16);
  ExpectThrowMentioning(call(bad), {"bias must have q's dtype", "BFloat16"});
  bad = in;
  bad.q = in.q.to(at::kInt);
  bad.k = in.k.to(at::kInt);
  ExpectThrowMentioning(call(bad), {"q must be float32, bfloat16 or float16", "Int"});
  ExpectThrowMentioning([in] { PairBiasAttentionReference(in.q, in.k, in.v, in.bias, in.key_mask, NAN); },
                        {"PairBiasAttentionReference", "scale must be finite"});
}

}  // namespace
}  // namespace zt::ops
