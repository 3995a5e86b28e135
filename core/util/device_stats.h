// Memory and peak-throughput facts about the device a rank trains on, for the step line and the
// end-of-job summary.  CUDA numbers come from LibTorch's caching allocators (built with
// --config=cuda); elsewhere they read -1 (unknown).
#ifndef ZEROTRAIN_CORE_UTIL_DEVICE_STATS_H_
#define ZEROTRAIN_CORE_UTIL_DEVICE_STATS_H_

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>

namespace zt {

// Bytes; -1 where the build or the device has no such number.
struct MemoryStats {
  std::int64_t gpu_allocated = -1;  // the CUDA caching allocator's live tensors
  std::int64_t gpu_reserved = -1;   // what it holds from the driver
  std::int64_t gpu_peak = -1;       // most allocated since the last ResetPeakMemory
  std::int64_t host_rss = -1;       // this process's resident set (/proc/self/statm)
  std::int64_t pinned = -1;         // page-locked host memory LibTorch's CUDA host allocator holds
};

MemoryStats ReadMemoryStats(const c10::Device& device);
// Starts a new gpu_peak window on `device` (no-op off CUDA).
void ResetPeakMemory(const c10::Device& device);

// The device's dense peak in TFLOPS for `dtype` from a table of datacenter and workstation GPUs
// by name: bf16/fp16 tensor cores; for fp32 the TF32 tensor-core figure when LibTorch allows TF32
// in cuBLAS (at::globalContext().allowTF32CuBLAS(), off by default), else plain fp32.  0 when
// unknown (a CPU, an unlisted card).
double DevicePeakTflops(const c10::Device& device, c10::ScalarType dtype);
// The table's lookup by a CUDA device name ("NVIDIA H200"), for tests.
double PeakTflopsForName(const std::string& name, c10::ScalarType dtype, bool tf32);

}  // namespace zt

#endif  // ZEROTRAIN_CORE_UTIL_DEVICE_STATS_H_
