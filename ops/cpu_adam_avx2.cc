// The AVX2 + FMA + F16C path of CpuAdam (cpu_adam.h).  This file alone is compiled with those
// instruction sets; CpuAdam calls it only on CPUs that have them.
#include <immintrin.h>

#include "ops/cpu_adam.h"

namespace zt::ops::internal {
namespace {

// 8 floats -> 8 bf16 (round to nearest even; NaN kept NaN), as FloatToBf16.
inline __m128i ToBf16(__m256 x) {
  const __m256i u = _mm256_castps_si256(x);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb));
  r = _mm256_srli_epi32(r, 16);
  const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
  r = _mm256_blendv_epi8(r, quiet, nan);
  // pack the low 16 bits of each 32-bit lane
  const __m256i packed = _mm256_packus_epi32(r, r);  // values < 65536: no saturation
  return _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0xd8));
}

}  // namespace

void AdamRangeAvx2(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, std::int64_t begin,
                   std::int64_t end, const AdamConstants& c, Out16 out) {
  const __m256 grad_scale = _mm256_set1_ps(c.grad_scale), wd = _mm256_set1_ps(c.weight_decay);
  const __m256 decay = _mm256_set1_ps(c.decay), w = _mm256_set1_ps(c.w), one_minus_w = _mm256_set1_ps(1.0f - c.w);
  const __m256 beta2 = _mm256_set1_ps(c.beta2), omb2 = _mm256_set1_ps(c.one_minus_beta2);
  const __m256 inv_bc2 = _mm256_set1_ps(1.0f / c.bc2_sqrt), eps = _mm256_set1_ps(c.eps);
  const __m256 step = _mm256_set1_ps(c.neg_step_size);
  auto* out16 = static_cast<std::uint16_t*>(out.data);
  // Flags as locals: read through `c` they could alias the float stores and be reloaded each time.
  const bool scale = c.grad_scale != 1.0f, l2 = c.l2, decay_param = c.decay_param, lerp_low = c.lerp_low;
  const bool bf16 = out.type == Half16::kBf16, fp16 = out.type == Half16::kFp16;
  auto one = [&](std::int64_t i) {
    __m256 g = _mm256_loadu_ps(grad + i);
    if (scale) g = _mm256_mul_ps(g, grad_scale);
    __m256 p = _mm256_loadu_ps(param + i);
    if (l2) g = _mm256_fmadd_ps(wd, p, g);
    if (decay_param) p = _mm256_mul_ps(p, decay);
    __m256 m = _mm256_loadu_ps(exp_avg + i);
    m = lerp_low ? _mm256_fmadd_ps(w, _mm256_sub_ps(g, m), m) : _mm256_fnmadd_ps(_mm256_sub_ps(g, m), one_minus_w, g);
    __m256 v = _mm256_loadu_ps(exp_avg_sq + i);
    v = _mm256_fmadd_ps(_mm256_mul_ps(omb2, g), g, _mm256_mul_ps(v, beta2));
    const __m256 denom = _mm256_fmadd_ps(_mm256_sqrt_ps(v), inv_bc2, eps);
    p = _mm256_fmadd_ps(step, _mm256_div_ps(m, denom), p);
    _mm256_storeu_ps(param + i, p);
    _mm256_storeu_ps(exp_avg + i, m);
    _mm256_storeu_ps(exp_avg_sq + i, v);
    if (bf16) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out16 + i), ToBf16(p));
    } else if (fp16) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out16 + i), _mm256_cvtps_ph(p, _MM_FROUND_TO_NEAREST_INT));
    }
  };
  std::int64_t i = begin;
  for (; i + 8 <= end; i += 8) one(i);
  AdamRangeScalar(param, grad, exp_avg, exp_avg_sq, i, end, c, out);  // the tail
}

}  // namespace zt::ops::internal
