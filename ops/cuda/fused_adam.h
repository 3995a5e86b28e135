// Fused Adam / AdamW on the GPU: one pass over flat fp32 shards that updates the master
// weights and both moments and writes the 16-bit compute copy of the new weights.
//
//   zt::ops::cuda::AdamChunk c{master, grad, exp_avg, exp_avg_sq, /*out16=*/bf16_params, n};
//   cudaError_t e = zt::ops::cuda::LaunchFusedAdam(&c, 1, zt::ops::cuda::AdamCopyOut::kBFloat16,
//                                                  zt::ops::cuda::MakeFusedAdamArgs(step), nullptr, nullptr, stream);
//
// The arithmetic is ops/adam.h's AdamReference, element by element with the same float
// operations in the same order (no fused multiply-adds), so the results are bit-identical to the
// CPU reference.  Any number of chunks: a launch covers up to kFusedAdamMaxChunks of them and
// larger lists take several launches (the multi-tensor pattern: one launch for many tensors).
//
// Overflow (fp16): with `skip_if` non-null, a device int, the kernel changes nothing when
// *skip_if != 0 (a found-inf flag computed earlier on the stream, so skipping needs no host
// round trip).  With `nonfinite` non-null, a device int the caller zeroes, the kernel sets it to
// 1 when any scaled gradient is inf/NaN or any 16-bit copy overflows to inf.
//
// Asynchronous on `stream`.
#ifndef ZEROTRAIN_OPS_CUDA_FUSED_ADAM_H_
#define ZEROTRAIN_OPS_CUDA_FUSED_ADAM_H_

#include <cuda_runtime_api.h>

#include <cstdint>

namespace zt::ops {
struct AdamStep;  // ops/adam.h
}  // namespace zt::ops

namespace zt::ops::cuda {

inline constexpr int kFusedAdamMaxChunks = 32;

enum class AdamCopyOut { kNone, kBFloat16, kFloat16 };

struct AdamChunk {
  float* param = nullptr;  // fp32 master weights, updated in place
  const float* grad = nullptr;
  float* exp_avg = nullptr;
  float* exp_avg_sq = nullptr;
  void* out16 = nullptr;  // the new weights in the copy-out dtype, or null
  std::int64_t n = 0;
};

// The step's scalars, computed on the host in double and rounded once as AdamReference does.
struct FusedAdamArgs {
  float neg_step_size = 0;  // -(lr / (1 - beta1^t))
  float bc2_sqrt = 1;       // sqrt(1 - beta2^t)
  float decay = 1;          // 1 - lr * weight_decay (AdamW)
  float lerp_weight = 0;    // 1 - beta1
  float beta2 = 0;
  float one_minus_beta2 = 0;
  float eps = 0;
  float weight_decay = 0;
  float grad_scale = 1;
  // When set, a float on the device the gradients are also multiplied by (after grad_scale):
  // a clipping factor computed on the stream, so the step needs no host round trip.
  const float* device_grad_scale = nullptr;
  bool l2 = false;           // Adam: g += weight_decay * p
  bool decay_param = false;  // AdamW: p *= decay
};

// In fused_adam_args.cc (host code).
FusedAdamArgs MakeFusedAdamArgs(const AdamStep& s);

cudaError_t LaunchFusedAdam(const AdamChunk* chunks, int count, AdamCopyOut copy_out, const FusedAdamArgs& args,
                            const int* skip_if, int* nonfinite, cudaStream_t stream);

}  // namespace zt::ops::cuda

#endif  // ZEROTRAIN_OPS_CUDA_FUSED_ADAM_H_
