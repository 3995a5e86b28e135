// Peak CUDA memory of the caching allocator, for benchmarks (built under --config=cuda only).
#ifndef ZEROTRAIN_TOOLS_BENCH_CUDA_MEMORY_H_
#define ZEROTRAIN_TOOLS_BENCH_CUDA_MEMORY_H_

#include <cstdint>

namespace zt::bench {

// Starts a new peak measurement on `device` (the allocator's peak := what is allocated now).
void ResetPeakCudaMemory(int device);
// Most bytes allocated on `device` since the last reset.
std::int64_t PeakCudaMemory(int device);

}  // namespace zt::bench

#endif  // ZEROTRAIN_TOOLS_BENCH_CUDA_MEMORY_H_
