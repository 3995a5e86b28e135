#include "ops/cpu_adam.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

namespace zt::ops {

const char* CpuIsaName(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kScalar:
      return "scalar";
    case CpuIsa::kAvx2:
      return "avx2";
    case CpuIsa::kAvx512:
      return "avx512";
  }
  return "?";
}

bool CpuSupports(CpuIsa isa) {
  __builtin_cpu_init();
  switch (isa) {
    case CpuIsa::kScalar:
      return true;
    case CpuIsa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    case CpuIsa::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && CpuSupports(CpuIsa::kAvx2);
  }
  return false;
}

CpuIsa BestCpuIsa() {
  static const CpuIsa best = CpuSupports(CpuIsa::kAvx512) ? CpuIsa::kAvx512
                             : CpuSupports(CpuIsa::kAvx2) ? CpuIsa::kAvx2
                                                          : CpuIsa::kScalar;
  return best;
}

std::uint16_t FloatToBf16(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}

std::uint16_t FloatToFp16(float f) {
  std::uint32_t x;
  std::memcpy(&x, &f, 4);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  std::uint32_t abs = x & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u);   // NaN
  if (abs >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // rounds to inf
  if (abs < 0x38800000u) {                                                    // subnormal or zero
    if (abs < 0x33000000u) return static_cast<std::uint16_t>(sign);           // below half the smallest
    const std::uint32_t e = abs >> 23;
    const std::uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    const std::uint32_t shift = 126 - e;  // 14 + (127 - 15) - e
    std::uint32_t h = mant >> shift;
    const std::uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1u))) ++h;
    return static_cast<std::uint16_t>(sign | h);
  }
  abs += 0xc8000000u;  // rebias exponent from 127 to 15
  abs += 0xfffu + ((abs >> 13) & 1u);
  return static_cast<std::uint16_t>(sign | (abs >> 13));
}

namespace internal {

AdamConstants MakeConstants(const AdamStep& s) {
  AdamConstants c;
  const double lr = s.lr;
  const double bc1 =
      s.bias_correction ? 1.0 - std::pow(static_cast<double>(s.beta1), static_cast<double>(s.step)) : 1.0;
  const double bc2 =
      s.bias_correction ? 1.0 - std::pow(static_cast<double>(s.beta2), static_cast<double>(s.step)) : 1.0;
  c.lr = s.lr;
  c.beta1 = s.beta1;
  c.beta2 = s.beta2;
  c.eps = s.eps;
  c.weight_decay = s.weight_decay;
  c.grad_scale = s.grad_scale;
  c.neg_step_size = static_cast<float>(-(lr / bc1));
  c.bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  c.decay = static_cast<float>(1.0 - lr * static_cast<double>(s.weight_decay));
  c.w = 1.0f - s.beta1;
  c.one_minus_beta2 = 1.0f - s.beta2;
  c.l2 = !s.decoupled && s.weight_decay != 0.0f;
  c.decay_param = s.decoupled && s.weight_decay != 0.0f;
  c.lerp_low = std::fabs(c.w) < 0.5f;
  return c;
}

void AdamRangeScalar(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, std::int64_t begin,
                     std::int64_t end, const AdamConstants& c, Out16 out) {
  auto* out16 = static_cast<std::uint16_t*>(out.data);
  for (std::int64_t i = begin; i < end; ++i) {
    float g = grad[i];
    if (c.grad_scale != 1.0f) g *= c.grad_scale;
    float p = param[i];
    if (c.l2) g = g + c.weight_decay * p;
    if (c.decay_param) p = p * c.decay;
    float m = exp_avg[i];
    m = c.lerp_low ? m + c.w * (g - m) : g - (g - m) * (1.0f - c.w);
    const float v = exp_avg_sq[i] * c.beta2 + c.one_minus_beta2 * g * g;
    const float denom = std::sqrt(v) / c.bc2_sqrt + c.eps;
    p = p + c.neg_step_size * (m / denom);
    param[i] = p;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    if (out.type == Half16::kBf16) out16[i] = FloatToBf16(p);
    if (out.type == Half16::kFp16) out16[i] = FloatToFp16(p);
  }
}

}  // namespace internal

void CpuAdam(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, std::int64_t n, const AdamStep& s,
             Out16 out, CpuAdamOptions options) {
  const internal::AdamConstants c = internal::MakeConstants(s);
  CpuIsa isa = options.isa;
  if (!CpuSupports(isa)) isa = BestCpuIsa();
  auto range = [&](std::int64_t b, std::int64_t e) {
    switch (isa) {
      case CpuIsa::kAvx512:
        internal::AdamRangeAvx512(param, grad, exp_avg, exp_avg_sq, b, e, c, out);
        break;
      case CpuIsa::kAvx2:
        internal::AdamRangeAvx2(param, grad, exp_avg, exp_avg_sq, b, e, c, out);
        break;
      case CpuIsa::kScalar:
        internal::AdamRangeScalar(param, grad, exp_avg, exp_avg_sq, b, e, c, out);
        break;
    }
  };
  const int hw = std::max(1u, std::thread::hardware_concurrency());
  int threads = options.threads > 0 ? options.threads : hw;
  // Below ~64K elements per thread, starting threads costs more than it saves.
  threads = static_cast<int>(std::min<std::int64_t>(threads, std::max<std::int64_t>(1, n / 65536)));
  if (threads <= 1) {
    range(0, n);
    return;
  }
  // Chunks are multiples of 64 elements, so every thread's vector loop starts aligned alike.
  const std::int64_t chunk = ((n + threads - 1) / threads + 63) / 64 * 64;
  std::vector<std::thread> workers;
  workers.reserve(threads - 1);
  for (int t = 1; t < threads; ++t) {
    const std::int64_t b = std::min(n, t * chunk), e = std::min(n, (t + 1) * chunk);
    if (b < e) workers.emplace_back(range, b, e);
  }
  range(0, std::min(n, chunk));
  for (auto& w : workers) w.join();
}

}  // namespace zt::ops
