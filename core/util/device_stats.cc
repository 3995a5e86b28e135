#include "core/util/device_stats.h"

#include <unistd.h>

#include <cstdio>
#include <string>

#ifdef ZT_CUDA
#include <ATen/Context.h>
#include <ATen/core/CachingHostAllocator.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_runtime_api.h>
#endif

namespace zt {
namespace {

std::int64_t HostRss() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return -1;
  long long size = 0, resident = 0;
  const int n = std::fscanf(f, "%lld %lld", &size, &resident);
  std::fclose(f);
  if (n != 2) return -1;
  return static_cast<std::int64_t>(resident) * static_cast<std::int64_t>(::sysconf(_SC_PAGESIZE));
}

struct Peak {
  const char* name;  // a substring of the CUDA device name; the first match wins
  double bf16;       // dense bf16/fp16 tensor-core TFLOPS
  double tf32;       // dense TF32 tensor-core TFLOPS (fp32 matmuls with TF32 allowed)
  double fp32;       // fp32 without tensor cores
};

// Vendor datasheets' dense (not sparse) figures; SXM parts before PCIe ones of the same name.
constexpr Peak kPeaks[] = {
    {"GB200", 2500, 1250, 80},   {"B200", 2250, 1100, 80},
    {"H200", 989, 494, 67},      {"H100 PCIe", 756, 378, 51},
    {"H100 NVL", 835, 418, 60},  {"H100", 989, 494, 67},
    {"H800", 989, 494, 67},      {"GH200", 989, 494, 67},
    {"A100", 312, 156, 19.5},    {"A800", 312, 156, 19.5},
    {"L40S", 362, 183, 91.6},    {"L40", 181, 90, 90.5},
    {"L4", 121, 60, 30.3},       {"A10G", 70, 35, 31.2},
    {"A10", 125, 62.5, 31.2},    {"RTX 6000 Ada", 364, 182, 91.1},
    {"RTX 4090", 165, 83, 82.6}, {"RTX 3090", 71, 36, 35.6},
    {"V100", 125, 15.7, 15.7},   {"T4", 65, 8.1, 8.1},
};

}  // namespace

double PeakTflopsForName(const std::string& name, c10::ScalarType dtype, bool tf32) {
  for (const Peak& p : kPeaks) {
    if (name.find(p.name) != std::string::npos) {
      if (dtype == c10::kBFloat16 || dtype == c10::kHalf) return p.bf16;
      return tf32 ? p.tf32 : p.fp32;
    }
  }
  return 0;
}

#ifdef ZT_CUDA
namespace alloc = c10::cuda::CUDACachingAllocator;
constexpr auto kAggregate = static_cast<std::size_t>(c10::CachingAllocator::StatType::AGGREGATE);

MemoryStats ReadMemoryStats(const c10::Device& device) {
  MemoryStats m;
  m.host_rss = HostRss();
  if (!device.is_cuda()) return m;
  const auto index = device.has_index() ? device.index() : c10::DeviceIndex{0};
  const auto stats = alloc::getDeviceStats(index);
  m.gpu_allocated = stats.allocated_bytes[kAggregate].current;
  m.gpu_reserved = stats.reserved_bytes[kAggregate].current;
  m.gpu_peak = stats.allocated_bytes[kAggregate].peak;
  m.pinned = at::getHostAllocator(at::kCUDA)->get_stats().allocated_bytes.current;
  return m;
}

void ResetPeakMemory(const c10::Device& device) {
  if (device.is_cuda()) alloc::resetPeakStats(device.has_index() ? device.index() : c10::DeviceIndex{0});
}

double DevicePeakTflops(const c10::Device& device, c10::ScalarType dtype) {
  if (!device.is_cuda()) return 0;
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, device.has_index() ? device.index() : 0) != cudaSuccess) return 0;
  return PeakTflopsForName(p.name, dtype, at::globalContext().allowTF32CuBLAS());
}
#else
MemoryStats ReadMemoryStats(const c10::Device&) {
  MemoryStats m;
  m.host_rss = HostRss();
  return m;
}

void ResetPeakMemory(const c10::Device&) {}

double DevicePeakTflops(const c10::Device&, c10::ScalarType) { return 0; }
#endif

}  // namespace zt
