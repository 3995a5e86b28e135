// The AVX-512 (F, BW, VL) path of CpuAdam (cpu_adam.h).  This file alone is compiled with those
// instruction sets; CpuAdam calls it only on CPUs that have them.
#include <immintrin.h>

#include "ops/cpu_adam.h"

namespace zt::ops::internal {
namespace {

// 16 floats -> 16 bf16 (round to nearest even; NaN kept NaN), as FloatToBf16.
inline __m256i ToBf16(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb)), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
  return _mm512_cvtepi32_epi16(r);
}

}  // namespace

void AdamRangeAvx512(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, std::int64_t begin,
                     std::int64_t end, const AdamConstants& c, Out16 out) {
  const __m512 grad_scale = _mm512_set1_ps(c.grad_scale), wd = _mm512_set1_ps(c.weight_decay);
  const __m512 decay = _mm512_set1_ps(c.decay), w = _mm512_set1_ps(c.w), one_minus_w = _mm512_set1_ps(1.0f - c.w);
  const __m512 beta2 = _mm512_set1_ps(c.beta2), omb2 = _mm512_set1_ps(c.one_minus_beta2);
  const __m512 inv_bc2 = _mm512_set1_ps(1.0f / c.bc2_sqrt), eps = _mm512_set1_ps(c.eps);
  const __m512 step = _mm512_set1_ps(c.neg_step_size);
  auto* out16 = static_cast<std::uint16_t*>(out.data);
  // Flags as locals: read through `c` they could alias the float stores and be reloaded each time.
  const bool scale = c.grad_scale != 1.0f, l2 = c.l2, decay_param = c.decay_param, lerp_low = c.lerp_low;
  const bool bf16 = out.type == Half16::kBf16, fp16 = out.type == Half16::kFp16;
  std::int64_t i = begin;
  for (; i + 16 <= end; i += 16) {
    __m512 g = _mm512_loadu_ps(grad + i);
    if (scale) g = _mm512_mul_ps(g, grad_scale);
    __m512 p = _mm512_loadu_ps(param + i);
    if (l2) g = _mm512_fmadd_ps(wd, p, g);
    if (decay_param) p = _mm512_mul_ps(p, decay);
    __m512 m = _mm512_loadu_ps(exp_avg + i);
    m = lerp_low ? _mm512_fmadd_ps(w, _mm512_sub_ps(g, m), m) : _mm512_fnmadd_ps(_mm512_sub_ps(g, m), one_minus_w, g);
    __m512 v = _mm512_loadu_ps(exp_avg_sq + i);
    v = _mm512_fmadd_ps(_mm512_mul_ps(omb2, g), g, _mm512_mul_ps(v, beta2));
    const __m512 denom = _mm512_fmadd_ps(_mm512_sqrt_ps(v), inv_bc2, eps);
    p = _mm512_fmadd_ps(step, _mm512_div_ps(m, denom), p);
    _mm512_storeu_ps(param + i, p);
    _mm512_storeu_ps(exp_avg + i, m);
    _mm512_storeu_ps(exp_avg_sq + i, v);
    if (bf16) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out16 + i), ToBf16(p));
    } else if (fp16) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out16 + i), _mm512_cvtps_ph(p, _MM_FROUND_TO_NEAREST_INT));
    }
  }
  AdamRangeScalar(param, grad, exp_avg, exp_avg_sq, i, end, c, out);  // the tail
}

}  // namespace zt::ops::internal
