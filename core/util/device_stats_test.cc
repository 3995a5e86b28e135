#include "core/util/device_stats.h"

#include <cstring>
#include <memory>

#include "gtest/gtest.h"

namespace zt {
namespace {

TEST(DeviceStatsTest, HostRssGrowsWithTouchedMemory) {
  const MemoryStats before = ReadMemoryStats(c10::Device(c10::kCPU));
  ASSERT_GT(before.host_rss, 0);
  constexpr std::size_t kBytes = 256 << 20;
  std::unique_ptr<char[]> block(new char[kBytes]);
  std::memset(block.get(), 1, kBytes);
  const MemoryStats after = ReadMemoryStats(c10::Device(c10::kCPU));
  EXPECT_GE(after.host_rss - before.host_rss, static_cast<std::int64_t>(kBytes) * 9 / 10);
  EXPECT_EQ(block[kBytes - 1], 1);
  // A CPU device has no GPU numbers.
  EXPECT_EQ(after.gpu_allocated, -1);
  EXPECT_EQ(after.gpu_peak, -1);
}

TEST(DeviceStatsTest, PeakTableByName) {
  EXPECT_EQ(PeakTflopsForName("NVIDIA H200", c10::kBFloat16, false), 989);
  EXPECT_EQ(PeakTflopsForName("NVIDIA H100 80GB HBM3", c10::kHalf, false), 989);
  EXPECT_EQ(PeakTflopsForName("NVIDIA H100 PCIe", c10::kBFloat16, false), 756);
  // fp32: TF32 tensor cores only when allowed.
  EXPECT_EQ(PeakTflopsForName("NVIDIA A100-SXM4-80GB", c10::kFloat, true), 156);
  EXPECT_EQ(PeakTflopsForName("NVIDIA A100-SXM4-80GB", c10::kFloat, false), 19.5);
  EXPECT_EQ(PeakTflopsForName("NVIDIA H200", c10::kFloat, false), 67);
  EXPECT_EQ(PeakTflopsForName("NVIDIA A10G", c10::kBFloat16, false), 70);
  EXPECT_EQ(PeakTflopsForName("NVIDIA A10", c10::kBFloat16, false), 125);
  EXPECT_EQ(PeakTflopsForName("Some Future GPU", c10::kBFloat16, false), 0);
  EXPECT_EQ(DevicePeakTflops(c10::Device(c10::kCPU), c10::kBFloat16), 0);
}

}  // namespace
}  // namespace zt
