// Page-aligned host memory for O_DIRECT file I/O.
//
// O_DIRECT reads and writes need the buffer address, the length and the file offset aligned
// to the device's logical block size; 4096 bytes covers every NVMe drive.  AlignedBuffer owns
// such memory (move-only, freed when it goes out of scope) and hands out spans of it:
//
//   ASSIGN_OR_RETURN(zt::io::AlignedBuffer buf, zt::io::AlignedBuffer::Create(1 << 20));
//   std::memcpy(buf.data(), src, n);
//   // pwrite(fd, buf.data(), buf.size(), offset) with O_DIRECT
//
// Pinning for fast device copies (cudaHostRegister) belongs to the layer that knows about
// devices; this buffer only guarantees alignment and zero-initialised contents.
#ifndef ZEROTRAIN_IO_ALIGNED_BUFFER_H_
#define ZEROTRAIN_IO_ALIGNED_BUFFER_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"

namespace zt::io {

inline constexpr std::size_t kDirectIoAlignment = 4096;

// Rounds n up to a multiple of `alignment` (a power of two).
constexpr std::size_t AlignUp(std::size_t n, std::size_t alignment = kDirectIoAlignment) {
  return (n + alignment - 1) & ~(alignment - 1);
}

class AlignedBuffer {
 public:
  // At least `bytes` bytes (rounded up to `alignment`), zeroed.  `alignment` must be a power
  // of two and a multiple of sizeof(void*).
  static absl::StatusOr<AlignedBuffer> Create(std::size_t bytes, std::size_t alignment = kDirectIoAlignment);

  AlignedBuffer() = default;
  AlignedBuffer(AlignedBuffer&& other) noexcept;
  AlignedBuffer& operator=(AlignedBuffer&& other) noexcept;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer();

  std::uint8_t* data() { return data_; }
  const std::uint8_t* data() const { return data_; }
  // The rounded-up size: what O_DIRECT may transfer.
  std::size_t size() const { return size_; }
  std::size_t alignment() const { return alignment_; }
  bool empty() const { return size_ == 0; }

 private:
  AlignedBuffer(std::uint8_t* data, std::size_t size, std::size_t alignment)
      : data_(data), size_(size), alignment_(alignment) {}

  std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t alignment_ = 0;
};

}  // namespace zt::io

#endif  // ZEROTRAIN_IO_ALIGNED_BUFFER_H_
