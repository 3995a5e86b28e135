#include "io/aligned_buffer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "gtest/gtest.h"

namespace zt::io {
namespace {

TEST(AlignUp, RoundsToTheNextMultiple) {
  EXPECT_EQ(AlignUp(0), 0u);
  EXPECT_EQ(AlignUp(1), 4096u);
  EXPECT_EQ(AlignUp(4096), 4096u);
  EXPECT_EQ(AlignUp(4097), 8192u);
  EXPECT_EQ(AlignUp(5, 8), 8u);
}

TEST(AlignedBuffer, IsAlignedRoundedAndZeroed) {
  auto buf = AlignedBuffer::Create(10000);
  ASSERT_TRUE(buf.ok()) << buf.status();
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(buf->data()) % 4096, 0u);
  EXPECT_EQ(buf->size(), 12288u);
  for (std::size_t i = 0; i < buf->size(); ++i) ASSERT_EQ(buf->data()[i], 0) << i;
}

TEST(AlignedBuffer, RejectsBadAlignment) {
  EXPECT_EQ(AlignedBuffer::Create(64, 3000).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(AlignedBuffer::Create(64, 0).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(AlignedBuffer, ZeroBytesIsEmpty) {
  auto buf = AlignedBuffer::Create(0);
  ASSERT_TRUE(buf.ok());
  EXPECT_TRUE(buf->empty());
  EXPECT_EQ(buf->data(), nullptr);
}

TEST(AlignedBuffer, MoveTransfersOwnership) {
  auto a = AlignedBuffer::Create(100);
  ASSERT_TRUE(a.ok());
  std::uint8_t* p = a->data();
  AlignedBuffer b = std::move(*a);
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(a->data(), nullptr);
  EXPECT_EQ(a->size(), 0u);
  AlignedBuffer c;
  c = std::move(b);
  EXPECT_EQ(c.data(), p);
}

// The point of the alignment: an O_DIRECT write and read of the buffer round-trips.  Some
// file systems (tmpfs) refuse O_DIRECT; the test then says so and skips.
TEST(AlignedBuffer, RoundTripsThroughODirect) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string path = std::string(tmp ? tmp : "/tmp") + "/aligned_buffer_odirect.bin";
  int fd = open(path.c_str(), O_CREAT | O_RDWR | O_TRUNC | O_DIRECT, 0600);
  if (fd < 0 && errno == EINVAL) GTEST_SKIP() << "O_DIRECT not supported on " << path;
  ASSERT_GE(fd, 0) << std::strerror(errno);
  auto out = AlignedBuffer::Create(8192);
  auto in = AlignedBuffer::Create(8192);
  ASSERT_TRUE(out.ok() && in.ok());
  for (std::size_t i = 0; i < out->size(); ++i) out->data()[i] = static_cast<std::uint8_t>(i * 7 + 1);
  ASSERT_EQ(pwrite(fd, out->data(), out->size(), 0), static_cast<ssize_t>(out->size())) << std::strerror(errno);
  ASSERT_EQ(pread(fd, in->data(), in->size(), 0), static_cast<ssize_t>(in->size())) << std::strerror(errno);
  EXPECT_EQ(std::memcmp(out->data(), in->data(), out->size()), 0);
  close(fd);
  unlink(path.c_str());
}

}  // namespace
}  // namespace zt::io
