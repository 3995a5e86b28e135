// bazel run //tools:ds_report  — prints what this build of zerotrain runs on.
#include <cstdio>

#include "tools/env_report.h"

int main() {
  zt::tools::ReportLines lines = zt::tools::EnvReport();
#ifdef ZT_CUDA
  for (auto& l : zt::tools::CudaReport()) lines.push_back(std::move(l));
#endif
  std::printf("zerotrain environment\n");
  for (const auto& [key, value] : lines) std::printf("  %-22s %s\n", key.c_str(), value.c_str());
  return 0;
}
