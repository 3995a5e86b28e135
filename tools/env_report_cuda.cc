#include <cuda_runtime_api.h>
#include <nccl.h>

#include "absl/strings/str_cat.h"
#include "tools/env_report.h"

namespace zt::tools {

ReportLines CudaReport() {
  ReportLines r;
  int runtime = 0, driver = 0, count = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  r.emplace_back("CUDA runtime / driver",
                 absl::StrCat(runtime / 1000, ".", runtime % 1000 / 10, " / ", driver / 1000, ".", driver % 1000 / 10));
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    r.emplace_back("GPUs", absl::StrCat("none usable: ", cudaGetErrorString(e)));
  } else {
    r.emplace_back("GPUs", absl::StrCat(count));
    for (int d = 0; d < count; ++d) {
      cudaDeviceProp p{};
      cudaGetDeviceProperties(&p, d);
      r.emplace_back(absl::StrCat("GPU ", d),
                     absl::StrCat(p.name, ", sm_", p.major, p.minor, ", ", p.totalGlobalMem >> 20, " MiB"));
    }
  }
  int nccl = 0;
  ncclGetVersion(&nccl);
  r.emplace_back("NCCL", absl::StrCat(nccl / 10000, ".", nccl / 100 % 100, ".", nccl % 100));
  return r;
}

}  // namespace zt::tools
