#include "io/io_engine.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "io/aligned_buffer.h"

namespace zt::io {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

std::string TempPath(const std::string& name) { return std::string(std::getenv("TEST_TMPDIR")) + "/" + name; }

AlignedBuffer Random(std::size_t bytes, unsigned seed) {
  AlignedBuffer b = *AlignedBuffer::Create(bytes);
  std::mt19937 gen(seed);
  for (std::size_t i = 0; i < b.size(); ++i) b.data()[i] = static_cast<std::uint8_t>(gen());
  return b;
}

struct Case {
  const char* name;
  AioOptions aio;
  bool direct;
};

std::vector<Case> Cases() {
  std::vector<Case> cases;
  for (bool ring : {true, false}) {
    for (bool direct : {true, false}) {
      AioOptions a;
      a.use_io_uring = ring;
      a.block_size = 16384;
      a.queue_depth = 4;
      a.thread_count = 3;
      cases.push_back({ring ? (direct ? "uring_direct" : "uring_buffered") : (direct ? "pool_direct" : "pool_buffered"),
                       a, direct});
    }
  }
  AioOptions single;
  single.single_submit = true;
  single.overlap_events = false;
  single.block_size = 4096;
  single.queue_depth = 2;
  cases.push_back({"uring_single_submit_no_overlap", single, true});
  return cases;
}

class RoundTrip : public ::testing::TestWithParam<Case> {};

// Every byte written comes back, from many requests in flight at once, at odd offsets of the
// file and across block and worker boundaries.
TEST_P(RoundTrip, WhatIsWrittenIsReadBack) {
  const Case& c = GetParam();
  auto engine = IoEngine::Create(c.aio);
  ASSERT_TRUE(engine.ok()) << engine.status();
  EXPECT_EQ((*engine)->uses_io_uring(), c.aio.use_io_uring);
  auto file = File::Open(TempPath(std::string(c.name) + ".bin"), File::kCreate, c.direct);
  ASSERT_TRUE(file.ok()) << file.status();
  constexpr int kRequests = 6;
  const std::size_t len = 5 * 16384 + 4096;  // not a whole number of blocks
  std::vector<AlignedBuffer> out, in;
  std::vector<IoHandle> writes;
  for (int r = 0; r < kRequests; ++r) {
    out.push_back(Random(len, r));
    writes.push_back((*engine)->Write(*file, out[r].data(), len, (kRequests - 1 - r) * len));
  }
  for (const IoHandle& h : writes) ASSERT_TRUE(h.Wait().ok()) << h.Wait();
  std::vector<IoHandle> reads;
  for (int r = 0; r < kRequests; ++r) {
    in.push_back(*AlignedBuffer::Create(len));
    reads.push_back((*engine)->Read(*file, in[r].data(), len, (kRequests - 1 - r) * len));
  }
  for (int r = 0; r < kRequests; ++r) {
    ASSERT_TRUE(reads[r].Wait().ok()) << reads[r].Wait();
    EXPECT_TRUE(reads[r].Done());
    ASSERT_EQ(std::memcmp(in[r].data(), out[r].data(), len), 0) << "request " << r;
  }
  EXPECT_EQ((*engine)->bytes_written(), kRequests * len);
  EXPECT_EQ((*engine)->bytes_read(), kRequests * len);
}

INSTANTIATE_TEST_SUITE_P(Backends, RoundTrip, ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(IoEngine, ReadingPastTheEndOfATruncatedFileIsAnErrorNotZeros) {
  for (bool ring : {true, false}) {
    AioOptions a;
    a.use_io_uring = ring;
    auto engine = *IoEngine::Create(a);
    const std::string path = TempPath("truncated.bin");
    auto file = *File::Open(path, File::kCreate, /*direct=*/true);
    AlignedBuffer buf = Random(3 * 4096, 1);
    ASSERT_TRUE(engine->Write(file, buf.data(), buf.size(), 0).Wait().ok());
    ASSERT_EQ(::truncate(path.c_str(), 4096), 0);  // cut under the engine
    absl::Status s = engine->Read(file, buf.data(), buf.size(), 0).Wait();
    EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange) << s;
    EXPECT_THAT(std::string(s.message()),
                AllOf(HasSubstr(path), HasSubstr("offset 4096"), HasSubstr("length 8192"), HasSubstr("truncated")))
        << (ring ? "io_uring" : "pread");
  }
}

TEST(IoEngine, MisalignedDirectRequestsAreRefusedWithTheReason) {
  auto engine = *IoEngine::Create(AioOptions());
  auto file = *File::Open(TempPath("aligned.bin"), File::kCreate, /*direct=*/true);
  if (!file.direct()) GTEST_SKIP() << "TEST_TMPDIR's filesystem has no O_DIRECT";
  AlignedBuffer buf = *AlignedBuffer::Create(8192);
  absl::Status s = engine->Write(file, buf.data() + 1, 4096, 0).Wait();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), AllOf(HasSubstr("aligned.bin"), HasSubstr("O_DIRECT")));
  EXPECT_EQ(engine->Write(file, buf.data(), 100, 0).Wait().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine->Read(file, buf.data(), 4096, 10).Wait().code(), absl::StatusCode::kInvalidArgument);
}

// A write the file-size limit refuses (EFBIG, what a full quota looks like to a writer) ends
// with an error naming the file, offset and strerror, from both backends.
TEST(IoEngine, AFailedWriteNamesPathOffsetLengthAndErrno) {
  struct rlimit old;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old;
  small.rlim_cur = 8192;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  for (bool ring : {true, false}) {
    AioOptions a;
    a.use_io_uring = ring;
    a.block_size = 4096;
    auto engine = *IoEngine::Create(a);
    auto file = *File::Open(TempPath("limited.bin"), File::kCreate, /*direct=*/true);
    AlignedBuffer buf = Random(4 * 4096, 2);
    absl::Status s = engine->Write(file, buf.data(), buf.size(), 0).Wait();
    EXPECT_FALSE(s.ok());
    EXPECT_THAT(std::string(s.message()), AllOf(HasSubstr("write of "), HasSubstr("limited.bin at offset 8192"),
                                                HasSubstr("length 4096"), HasSubstr(std::strerror(EFBIG))))
        << s;
  }
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old), 0);
}

TEST(IoEngine, EnvironmentCanForceThePreadPool) {
  ::setenv("ZT_IO_URING", "0", 1);
  auto engine = IoEngine::Create(AioOptions());
  ::unsetenv("ZT_IO_URING");
  ASSERT_TRUE(engine.ok());
  EXPECT_FALSE((*engine)->uses_io_uring());
  EXPECT_THAT((*engine)->fallback_reason(), HasSubstr("ZT_IO_URING=0"));
}

TEST(IoEngine, BadOptionsNameTheAioKey) {
  AioOptions a;
  a.block_size = 1000;
  EXPECT_THAT(std::string(IoEngine::Create(a).status().message()), HasSubstr("aio.block_size 1000"));
  a = AioOptions();
  a.queue_depth = 0;
  EXPECT_THAT(std::string(IoEngine::Create(a).status().message()), HasSubstr("aio.queue_depth"));
  a = AioOptions();
  a.thread_count = 0;
  EXPECT_THAT(std::string(IoEngine::Create(a).status().message()), HasSubstr("aio.thread_count"));
}

// Registered (fixed) buffers carry the same bytes; requests outside them still work, and a
// buffer can be unregistered and registered again.
TEST(IoEngine, RegisteredBuffersMoveTheSameBytes) {
  AioOptions a;
  a.block_size = 8192;
  a.thread_count = 2;
  auto engine = *IoEngine::Create(a);
  auto file = *File::Open(TempPath("fixed.bin"), File::kCreate, /*direct=*/true);
  AlignedBuffer out = Random(64 * 4096, 5), in = *AlignedBuffer::Create(64 * 4096);
  const bool registered =
      engine->RegisterBuffer(out.data(), out.size()) && engine->RegisterBuffer(in.data(), in.size());
  if (!registered) GTEST_SKIP() << "io_uring fixed buffers are not available here";
  ASSERT_TRUE(engine->Write(file, out.data(), out.size(), 0).Wait().ok());
  ASSERT_TRUE(engine->Read(file, in.data(), in.size(), 0).Wait().ok());
  EXPECT_EQ(std::memcmp(in.data(), out.data(), out.size()), 0);
  engine->UnregisterBuffer(in.data());
  std::memset(in.data(), 0, in.size());
  ASSERT_TRUE(engine->Read(file, in.data(), in.size(), 0).Wait().ok());  // a plain read now
  EXPECT_EQ(std::memcmp(in.data(), out.data(), out.size()), 0);
  EXPECT_TRUE(engine->RegisterBuffer(in.data(), in.size()));
  engine->UnregisterBuffer(in.data());
  engine->UnregisterBuffer(out.data());
}

TEST(IoEngine, ThePreadPoolRegistersNothing) {
  AioOptions a;
  a.use_io_uring = false;
  auto engine = *IoEngine::Create(a);
  AlignedBuffer b = *AlignedBuffer::Create(4096);
  EXPECT_FALSE(engine->RegisterBuffer(b.data(), b.size()));
}

TEST(Ring, IsMoveOnlyAndOwnsItsQueues) {
  auto ring = Ring::Create(8);
  if (!ring.ok()) GTEST_SKIP() << "no io_uring here: " << ring.status();
  ASSERT_TRUE(ring->valid());
  io_uring* raw = ring->get();
  Ring moved = std::move(*ring);
  EXPECT_FALSE(ring->valid());
  EXPECT_EQ(ring->get(), nullptr);
  EXPECT_EQ(moved.get(), raw);
  moved = Ring();  // torn down here
  EXPECT_FALSE(moved.valid());
}

TEST(File, OpenErrorsNameThePath) {
  auto f = File::Open(TempPath("no/such/dir/x.bin"), File::kCreate, true);
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("no/such/dir/x.bin"));
}

}  // namespace
}  // namespace zt::io
