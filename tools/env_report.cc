#include "tools/env_report.h"

#include <liburing.h>
#include <torch/version.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tools/machine.h"

namespace zt::tools {
namespace {

std::string SimdFeatures() {
  std::vector<std::string> have;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) have.push_back("avx2");
  if (__builtin_cpu_supports("fma")) have.push_back("fma");
  if (__builtin_cpu_supports("avx512f")) have.push_back("avx512f");
  if (__builtin_cpu_supports("avx512bw")) have.push_back("avx512bw");
  if (__builtin_cpu_supports("avx512bf16")) have.push_back("avx512bf16");
  return have.empty() ? "none beyond SSE" : absl::StrJoin(have, " ");
}

std::string IoUring() {
  io_uring ring;
  const int rc = io_uring_queue_init(8, &ring, 0);
  if (rc < 0) return absl::StrCat("unavailable (io_uring_queue_init: ", std::strerror(-rc), ")");
  io_uring_queue_exit(&ring);
  return "available";
}

}  // namespace

ReportLines EnvReport() {
  ReportLines r;
  r.emplace_back("compiler", absl::StrCat("g++ ", __VERSION__, ", C++ ", __cplusplus));
  r.emplace_back("LibTorch", TORCH_VERSION);
#ifdef ZT_CUDA
  r.emplace_back("CUDA build", "yes (--config=cuda)");
#else
  r.emplace_back("CUDA build", "no (CPU build; GPU machines build with --config=cuda)");
#endif
  r.emplace_back("CPU", absl::StrCat(CpuModel(), ", ", std::thread::hardware_concurrency(), " threads"));
  r.emplace_back("CPU SIMD", SimdFeatures());
  r.emplace_back("io_uring", IoUring());
  return r;
}

}  // namespace zt::tools
