// The seed of a dropout kernel call (the fused dropout ops, the T5 attention's dropout): one
// draw from LibTorch's default CPU generator, so at::manual_seed makes runs repeatable, or the
// value a test set for the next call on this thread.
#ifndef ZEROTRAIN_OPS_CUDA_DROPOUT_SEED_H_
#define ZEROTRAIN_OPS_CUDA_DROPOUT_SEED_H_

#include <cstdint>

namespace zt::ops::cuda {

std::uint64_t NextDropoutSeed();

// The seed the next NextDropoutSeed() on this thread returns (0: none; tests).
void SetNextDropoutSeedForTesting(std::uint64_t seed);

}  // namespace zt::ops::cuda

#endif  // ZEROTRAIN_OPS_CUDA_DROPOUT_SEED_H_
