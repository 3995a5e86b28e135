// CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected), the checksum of iSCSI, ext4, Btrfs,
// LevelDB/RocksDB and Google's object stores — and of zerotrain's checkpoint files.
//
//   uint32_t crc = zt::crc32c::Value(bytes);
//   uint32_t crc = 0;                                    // streaming: the same value in pieces
//   for (absl::string_view chunk : chunks) crc = zt::crc32c::Extend(crc, chunk);
//
// Values are the finished CRC (initial ~0 and final xor already applied), so
// Extend(Value(a), b) == Value(a + b) and Value("") == 0.  On x86-64 CPUs with SSE4.2 (all since
// 2008) the crc32 instruction does the work; elsewhere a table-driven slicing-by-8 loop.  The
// choice is made once, at run time (no -march flags: the same binary runs on every machine).
#ifndef ZEROTRAIN_CORE_UTIL_CRC32C_H_
#define ZEROTRAIN_CORE_UTIL_CRC32C_H_

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace zt::crc32c {

// The CRC-32C of `crc`'s data followed by data[0, n).
uint32_t Extend(uint32_t crc, const void* data, std::size_t n);
inline uint32_t Extend(uint32_t crc, absl::string_view data) { return Extend(crc, data.data(), data.size()); }
inline uint32_t Value(absl::string_view data) { return Extend(0, data); }

// Whether Extend uses the SSE4.2 instruction on this machine.
bool HardwareAccelerated();

namespace internal {
// The two implementations behind Extend, for tests and benchmarks.  ExtendSse42 may only be
// called when HardwareAccelerated() is true.
uint32_t ExtendPortable(uint32_t crc, const void* data, std::size_t n);
uint32_t ExtendSse42(uint32_t crc, const void* data, std::size_t n);
}  // namespace internal

}  // namespace zt::crc32c

#endif  // ZEROTRAIN_CORE_UTIL_CRC32C_H_
