// A host buffer for swap I/O (ZeRO-Infinity): 4 KiB aligned for O_DIRECT, pinned when CUDA
// copies read or write it, and registered with the IoEngine's rings (io_uring fixed buffers)
// where they take it.  Move-only; gives the registration back when destroyed, so its owner
// waits for the I/O on it first.
//
//   IoBuffer b = IoBuffer::Allocate(io, bytes, /*pin=*/device.is_cuda());   // inside CallTorch
//   io->Read(file, b.data(), bytes, offset);
#ifndef ZEROTRAIN_CORE_ZERO_IO_BUFFER_H_
#define ZEROTRAIN_CORE_ZERO_IO_BUFFER_H_

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "io/io_engine.h"

namespace zt {

class IoBuffer {
 public:
  // LibTorch's allocation errors throw (call it where CallTorch converts them).
  static IoBuffer Allocate(io::IoEngine* io, std::int64_t bytes, bool pin);

  IoBuffer() = default;
  IoBuffer(IoBuffer&& other) noexcept;
  IoBuffer& operator=(IoBuffer&& other) noexcept;
  IoBuffer(const IoBuffer&) = delete;
  IoBuffer& operator=(const IoBuffer&) = delete;
  ~IoBuffer();

  void* data() const { return mem_.data_ptr(); }
  std::int64_t bytes() const { return mem_.numel(); }
  bool registered() const { return registered_; }

 private:
  void Release();

  io::IoEngine* io_ = nullptr;
  at::Tensor mem_;  // bytes, a 4 KiB aligned view of a slightly larger allocation
  bool registered_ = false;
};

}  // namespace zt

#endif  // ZEROTRAIN_CORE_ZERO_IO_BUFFER_H_
