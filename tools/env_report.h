// What this zerotrain build runs on, for bug reports and the first line of a job's log (the
// role of DeepSpeed's ds_report): LibTorch, CUDA and NCCL, io_uring, the CPU's SIMD features.
//
//   for (const auto& [key, value] : zt::tools::EnvReport()) std::cout << key << ": " << value << "\n";
#ifndef ZEROTRAIN_TOOLS_ENV_REPORT_H_
#define ZEROTRAIN_TOOLS_ENV_REPORT_H_

#include <string>
#include <utility>
#include <vector>

namespace zt::tools {

using ReportLines = std::vector<std::pair<std::string, std::string>>;

// Facts every build can find out: compiler, LibTorch, CPU, io_uring.
ReportLines EnvReport();

// Facts of a --config=cuda build: CUDA runtime and driver, devices, NCCL.  Defined in
// env_report_cuda.cc, linked only under --config=cuda.
ReportLines CudaReport();

}  // namespace zt::tools

#endif  // ZEROTRAIN_TOOLS_ENV_REPORT_H_
