#include "core/util/crc32c.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace zt::crc32c {
namespace {

using internal::ExtendPortable;
using internal::ExtendSse42;

// Both implementations, and Extend (whichever of them this machine picked).
struct Impl {
  const char* name;
  uint32_t (*fn)(uint32_t, const void*, std::size_t);
};
std::vector<Impl> Impls() {
  std::vector<Impl> impls = {{"portable", ExtendPortable}, {"dispatch", Extend}};
  if (HardwareAccelerated()) impls.push_back({"sse4.2", ExtendSse42});
  return impls;
}

uint32_t Crc(const Impl& impl, const std::string& s) { return impl.fn(0, s.data(), s.size()); }

TEST(Crc32cTest, KnownVectors) {
  std::string ascending(32, '\0'), descending(32, '\0');
  for (int i = 0; i < 32; ++i) {
    ascending[i] = static_cast<char>(i);
    descending[i] = static_cast<char>(31 - i);
  }
  // RFC 3720 appendix B.4 (iSCSI), the last one a SCSI read command PDU.
  const unsigned char pdu[48] = {0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
                                 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
                                 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  for (const Impl& impl : Impls()) {
    SCOPED_TRACE(impl.name);
    EXPECT_EQ(Crc(impl, ""), 0u);
    EXPECT_EQ(Crc(impl, "123456789"), 0xE3069283u);  // the catalogue's check value
    EXPECT_EQ(Crc(impl, std::string(32, '\0')), 0x8A9136AAu);
    EXPECT_EQ(Crc(impl, std::string(32, '\xff')), 0x62A8AB43u);
    EXPECT_EQ(Crc(impl, ascending), 0x46DD794Eu);
    EXPECT_EQ(Crc(impl, descending), 0x113FDB5Cu);
    EXPECT_EQ(impl.fn(0, pdu, sizeof(pdu)), 0xD9963A56u);
  }
}

TEST(Crc32cTest, StringViewHelpersMatch) {
  EXPECT_EQ(Value("123456789"), 0xE3069283u);
  EXPECT_EQ(Extend(Value("1234"), "56789"), 0xE3069283u);
}

// The hardware path against the reference loop on fresh random data: every length 0..1000, each
// at several misalignments (the SSE path has an unaligned head, an 8-byte body and a tail).
TEST(Crc32cTest, ImplementationsAgreeOnEveryLengthAndAlignment) {
  std::mt19937_64 rng(std::random_device{}());
  std::vector<unsigned char> buf(1000 + 16);
  for (unsigned char& b : buf) b = static_cast<unsigned char>(rng());
  for (std::size_t len = 0; len <= 1000; ++len) {
    for (std::size_t start = 0; start < 8; ++start) {
      const uint32_t want = ExtendPortable(0, buf.data() + start, len);
      EXPECT_EQ(Extend(0, buf.data() + start, len), want) << "len " << len << " start " << start;
      if (HardwareAccelerated()) {
        EXPECT_EQ(ExtendSse42(0, buf.data() + start, len), want) << "len " << len << " start " << start;
      }
    }
  }
}

// Streaming in pieces of any size gives the value of the whole.
TEST(Crc32cTest, ExtendInPiecesEqualsWhole) {
  std::mt19937_64 rng(std::random_device{}());
  std::string data(4099, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  for (const Impl& impl : Impls()) {
    SCOPED_TRACE(impl.name);
    const uint32_t whole = Crc(impl, data);
    for (std::size_t piece : {1, 3, 7, 8, 9, 64, 1000, 4098}) {
      uint32_t crc = 0;
      for (std::size_t at = 0; at < data.size(); at += piece) {
        const std::size_t n = std::min(piece, data.size() - at);
        crc = impl.fn(crc, data.data() + at, n);
      }
      EXPECT_EQ(crc, whole) << "pieces of " << piece;
    }
  }
}

TEST(Crc32cTest, DetectsEverySingleBitFlip) {
  std::string data(257, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 31 + 7);
  const uint32_t good = Value(data);
  for (std::size_t bit = 0; bit < data.size() * 8; ++bit) {
    std::string bad = data;
    bad[bit / 8] = static_cast<char>(bad[bit / 8] ^ (1 << (bit % 8)));
    EXPECT_NE(Value(bad), good) << "bit " << bit;
  }
}

}  // namespace
}  // namespace zt::crc32c
