#include "core/zero/io_buffer.h"

#include <ATen/ATen.h>

#include <utility>

#include "io/aligned_buffer.h"

namespace zt {

IoBuffer IoBuffer::Allocate(io::IoEngine* io, std::int64_t bytes, bool pin) {
  IoBuffer b;
  b.io_ = io;
  // Over-allocate by one alignment unit and keep the aligned part.
  at::Tensor raw = at::empty({bytes + static_cast<std::int64_t>(io::kDirectIoAlignment)},
                             at::TensorOptions().dtype(at::kByte).pinned_memory(pin));
  const auto addr = reinterpret_cast<std::uintptr_t>(raw.data_ptr());
  b.mem_ = raw.narrow(0, static_cast<std::int64_t>(io::AlignUp(addr) - addr), bytes);
  b.registered_ = io != nullptr && bytes > 0 && io->RegisterBuffer(b.mem_.data_ptr(), static_cast<std::size_t>(bytes));
  return b;
}

IoBuffer::IoBuffer(IoBuffer&& other) noexcept
    : io_(other.io_), mem_(std::move(other.mem_)), registered_(std::exchange(other.registered_, false)) {}

IoBuffer& IoBuffer::operator=(IoBuffer&& other) noexcept {
  if (this != &other) {
    Release();
    io_ = other.io_;
    mem_ = std::move(other.mem_);
    registered_ = std::exchange(other.registered_, false);
  }
  return *this;
}

IoBuffer::~IoBuffer() { Release(); }

void IoBuffer::Release() {
  if (registered_) io_->UnregisterBuffer(mem_.data_ptr());
  registered_ = false;
}

}  // namespace zt
