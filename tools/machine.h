// Facts about the machine a tool or benchmark runs on, without LibTorch.
#ifndef ZEROTRAIN_TOOLS_MACHINE_H_
#define ZEROTRAIN_TOOLS_MACHINE_H_

#include <string>

namespace zt::tools {

// The CPU's model name (/proc/cpuinfo), for reports and benchmark headers; "unknown" without it.
std::string CpuModel();

}  // namespace zt::tools

#endif  // ZEROTRAIN_TOOLS_MACHINE_H_
