// Adam / AdamW on the CPU over flat fp32 buffers: SIMD (AVX2+FMA or AVX-512, chosen at run
// time; the binary is built for plain x86-64), several threads, and the updated parameters
// written out in bf16/fp16 in the same pass when the model computes in 16 bits (DeepSpeed's
// "step + copy"), so no second sweep.  This is ZeRO-Offload's optimizer.
//
//   zt::ops::AdamStep s;  s.lr = 1e-3f;  s.step = t;  ...
//   zt::ops::CpuAdam(param, grad, exp_avg, exp_avg_sq, n, s, {zt::ops::Half16::kBf16, out});
//
// Arithmetic: the reference's (ops/adam.h), element by element, except that the SIMD paths
// fuse multiply-adds (one rounding where the reference has two): results agree with
// AdamReference to about 1e-6 relative (cpu_adam_test states the bound).  Every element of
// param, exp_avg, exp_avg_sq and the 16-bit output is written.
#ifndef ZEROTRAIN_OPS_CPU_ADAM_H_
#define ZEROTRAIN_OPS_CPU_ADAM_H_

#include <cstdint>

#include "ops/adam.h"

namespace zt::ops {

enum class CpuIsa { kScalar, kAvx2, kAvx512 };
const char* CpuIsaName(CpuIsa isa);
// The widest path this CPU runs (AVX-512 needs F+BW+VL; AVX2 needs FMA and F16C too).
CpuIsa BestCpuIsa();
bool CpuSupports(CpuIsa isa);

enum class Half16 { kNone, kBf16, kFp16 };

struct Out16 {
  Half16 type = Half16::kNone;
  void* data = nullptr;  // n elements of bf16 / fp16 (uint16 bit patterns)
};

struct CpuAdamOptions {
  CpuIsa isa = BestCpuIsa();
  int threads = 0;  // 0: every hardware thread
};

void CpuAdam(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, std::int64_t n, const AdamStep& s,
             Out16 out = {}, CpuAdamOptions options = {});

// fp32 -> bf16 with round-to-nearest-even (NaN stays NaN), as PyTorch converts.
std::uint16_t FloatToBf16(float f);
// fp32 -> IEEE half with round-to-nearest-even.
std::uint16_t FloatToFp16(float f);

namespace internal {
// The scalar constants of one step, shared by every path.
struct AdamConstants {
  float lr, beta1, beta2, eps, weight_decay, grad_scale;
  float neg_step_size;  // -lr / bias_correction1
  float bc2_sqrt;       // sqrt(bias_correction2)
  float decay;          // 1 - lr * weight_decay (AdamW)
  float w;              // 1 - beta1 (lerp weight)
  float one_minus_beta2;
  bool l2, decay_param, lerp_low;  // lerp_low: |w| < 0.5
};
AdamConstants MakeConstants(const AdamStep& s);
// One contiguous range [begin, end) with the given path.
void AdamRangeScalar(float* p, const float* g, float* m, float* v, std::int64_t begin, std::int64_t end,
                     const AdamConstants& c, Out16 out);
void AdamRangeAvx2(float* p, const float* g, float* m, float* v, std::int64_t begin, std::int64_t end,
                   const AdamConstants& c, Out16 out);
void AdamRangeAvx512(float* p, const float* g, float* m, float* v, std::int64_t begin, std::int64_t end,
                     const AdamConstants& c, Out16 out);
}  // namespace internal

}  // namespace zt::ops

#endif  // ZEROTRAIN_OPS_CPU_ADAM_H_
