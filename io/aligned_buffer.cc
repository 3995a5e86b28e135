#include "io/aligned_buffer.h"

#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace zt::io {

absl::StatusOr<AlignedBuffer> AlignedBuffer::Create(std::size_t bytes, std::size_t alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment % sizeof(void*) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("AlignedBuffer: alignment ", alignment, " is not a power of two multiple of ", sizeof(void*)));
  }
  if (bytes == 0) return AlignedBuffer();
  const std::size_t size = AlignUp(bytes, alignment);
  if (size < bytes) return absl::InvalidArgumentError(absl::StrCat("AlignedBuffer: size ", bytes, " overflows"));
  void* p = nullptr;
  const int rc = posix_memalign(&p, alignment, size);
  if (rc != 0) {
    return absl::ResourceExhaustedError(absl::StrCat("AlignedBuffer: cannot allocate ", size, " bytes aligned to ",
                                                     alignment, ": ", std::strerror(rc)));
  }
  std::memset(p, 0, size);
  return AlignedBuffer(static_cast<std::uint8_t*>(p), size, alignment);
}

AlignedBuffer::AlignedBuffer(AlignedBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      alignment_(std::exchange(other.alignment_, 0)) {}

AlignedBuffer& AlignedBuffer::operator=(AlignedBuffer&& other) noexcept {
  if (this != &other) {
    std::free(data_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    alignment_ = std::exchange(other.alignment_, 0);
  }
  return *this;
}

AlignedBuffer::~AlignedBuffer() { std::free(data_); }

}  // namespace zt::io
