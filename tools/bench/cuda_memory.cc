#include "tools/bench/cuda_memory.h"

#include <c10/cuda/CUDACachingAllocator.h>

namespace zt::bench {

namespace alloc = c10::cuda::CUDACachingAllocator;

void ResetPeakCudaMemory(int device) { alloc::resetPeakStats(static_cast<c10::DeviceIndex>(device)); }

std::int64_t PeakCudaMemory(int device) {
  const auto stats = alloc::getDeviceStats(static_cast<c10::DeviceIndex>(device));
  return stats.allocated_bytes[static_cast<std::size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak;
}

}  // namespace zt::bench
