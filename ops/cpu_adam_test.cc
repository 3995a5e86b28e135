// CpuAdam's SIMD paths against the scalar reference (ops/adam.h) on fresh random inputs.
#include "ops/cpu_adam.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace zt::ops {
namespace {

struct Buffers {
  std::vector<float> p, g, m, v;
};

Buffers Random(std::int64_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Buffers b;
  for (std::int64_t i = 0; i < n; ++i) {
    b.p.push_back(normal(rng));
    b.g.push_back(normal(rng) * 0.1f);
    b.m.push_back(normal(rng) * 0.01f);
    b.v.push_back(std::fabs(normal(rng)) * 0.001f);
  }
  return b;
}

std::vector<CpuIsa> Isas() {
  std::vector<CpuIsa> out = {CpuIsa::kScalar};
  for (CpuIsa i : {CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    if (CpuSupports(i)) out.push_back(i);
  }
  return out;
}

struct Mode {
  const char* name;
  AdamStep step;
};

std::vector<Mode> Modes() {
  AdamStep adamw;
  adamw.lr = 1e-2f;
  adamw.weight_decay = 0.05f;
  AdamStep l2 = adamw;
  l2.decoupled = false;
  AdamStep scaled = adamw;
  scaled.grad_scale = 1.0f / 1024;
  AdamStep no_bc = adamw;
  no_bc.bias_correction = false;
  AdamStep low_beta1 = adamw;  // 1 - beta1 >= 0.5: the other branch of PyTorch's lerp
  low_beta1.beta1 = 0.3f;
  return {{"adamw", adamw},
          {"adam_l2", l2},
          {"grad_scale", scaled},
          {"no_bias_correction", no_bc},
          {"low_beta1", low_beta1}};
}

// SIMD paths fuse multiply-adds, so they differ from the reference by a few float roundings:
// after 3 steps every element is within 2e-6 x (1 + |value|).
TEST(CpuAdam, EveryPathMatchesTheReference) {
  for (CpuIsa isa : Isas()) {
    for (const Mode& mode : Modes()) {
      for (std::int64_t n : {1, 7, 15, 16, 17, 1000, 100003}) {
        Buffers want = Random(n, static_cast<std::uint32_t>(n));
        Buffers got = want;
        for (int t = 1; t <= 3; ++t) {
          AdamStep s = mode.step;
          s.step = t;
          AdamReference(want.p.data(), want.g.data(), want.m.data(), want.v.data(), n, s);
          CpuAdam(got.p.data(), got.g.data(), got.m.data(), got.v.data(), n, s, {}, {isa, 2});
        }
        for (std::int64_t i = 0; i < n; ++i) {
          ASSERT_NEAR(got.p[i], want.p[i], 2e-6 * (1 + std::fabs(want.p[i])))
              << CpuIsaName(isa) << " " << mode.name << " n=" << n << " i=" << i;
          ASSERT_NEAR(got.m[i], want.m[i], 2e-6 * (1 + std::fabs(want.m[i])));
          ASSERT_NEAR(got.v[i], want.v[i], 2e-6 * (1 + std::fabs(want.v[i])));
        }
      }
    }
  }
}

TEST(CpuAdam, FusedSixteenBitOutputIsTheUpdatedParameterEveryElement) {
  for (CpuIsa isa : Isas()) {
    for (Half16 type : {Half16::kBf16, Half16::kFp16}) {
      const std::int64_t n = 1000003;
      Buffers b = Random(n, 9);
      std::vector<std::uint16_t> out(n, 0xdead);
      AdamStep s;
      s.lr = 0.1f;
      CpuAdam(b.p.data(), b.g.data(), b.m.data(), b.v.data(), n, s, {type, out.data()}, {isa, 3});
      for (std::int64_t i = 0; i < n; ++i) {
        const std::uint16_t want = type == Half16::kBf16 ? FloatToBf16(b.p[i]) : FloatToFp16(b.p[i]);
        ASSERT_EQ(out[i], want) << CpuIsaName(isa) << " i=" << i;
      }
    }
  }
}

TEST(CpuAdam, ThreadCountDoesNotChangeTheResult) {
  const std::int64_t n = 500001;
  Buffers one = Random(n, 3), many = one;
  AdamStep s;
  CpuAdam(one.p.data(), one.g.data(), one.m.data(), one.v.data(), n, s, {}, {BestCpuIsa(), 1});
  CpuAdam(many.p.data(), many.g.data(), many.m.data(), many.v.data(), n, s, {}, {BestCpuIsa(), 7});
  EXPECT_EQ(std::memcmp(one.p.data(), many.p.data(), n * 4), 0);
  EXPECT_EQ(std::memcmp(one.v.data(), many.v.data(), n * 4), 0);
}

// The conversions agree bit for bit with LibTorch's (round to nearest even), specials included.
TEST(HalfConversions, MatchLibTorch) {
  std::vector<float> values = {0.0f,
                               -0.0f,
                               1.0f,
                               -2.5f,
                               65504.0f,
                               65519.0f,
                               65520.0f,
                               1e-8f,
                               5.96e-8f,
                               2.98e-8f,
                               6.1e-5f,
                               1e38f,
                               -1e-40f,
                               std::numeric_limits<float>::infinity(),
                               -std::numeric_limits<float>::infinity(),
                               std::numeric_limits<float>::quiet_NaN()};
  std::mt19937 rng(1);
  std::uniform_int_distribution<std::uint32_t> bits;
  for (int i = 0; i < 200000; ++i) {
    std::uint32_t u = bits(rng);
    float f;
    std::memcpy(&f, &u, 4);
    values.push_back(f);
  }
  at::Tensor t = at::from_blob(values.data(), {static_cast<std::int64_t>(values.size())}, at::kFloat);
  at::Tensor bf = t.to(at::kBFloat16), hf = t.to(at::kHalf);
  const auto* bf_bits = reinterpret_cast<const std::uint16_t*>(bf.data_ptr());
  const auto* hf_bits = reinterpret_cast<const std::uint16_t*>(hf.data_ptr());
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (std::isnan(values[i])) {
      EXPECT_TRUE(std::isnan(static_cast<float>(bf[i].item<float>())));
      EXPECT_EQ(FloatToFp16(values[i]) & 0x7c00u, 0x7c00u);
      EXPECT_NE(FloatToFp16(values[i]) & 0x3ffu, 0u);
      continue;
    }
    ASSERT_EQ(FloatToBf16(values[i]), bf_bits[i]) << values[i];
    ASSERT_EQ(FloatToFp16(values[i]), hf_bits[i]) << values[i];
  }
}

TEST(CpuAdam, ReportsWhatItRuns) {
  EXPECT_TRUE(CpuSupports(CpuIsa::kScalar));
  EXPECT_TRUE(CpuSupports(BestCpuIsa()));
  std::printf("best path on this CPU: %s (avx512 %s)\n", CpuIsaName(BestCpuIsa()),
              CpuSupports(CpuIsa::kAvx512) ? "available: tested above"
                                           : "not on this CPU: tested where it is, e.g. the GPU machine");
}

}  // namespace
}  // namespace zt::ops
