#include "core/zero/param_swap.h"

#include <ATen/ATen.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "io/aligned_buffer.h"

namespace zt {
namespace {

std::uint64_t ShardBytes(std::int64_t elems, at::ScalarType dtype) {
  return io::AlignUp(static_cast<std::size_t>(elems) * c10::elementSize(dtype));
}

void Check(const absl::Status& s) {
  if (!s.ok()) throw StatusException(absl::Status(s.code(), absl::StrCat("parameter swap: ", s.message())));
}

}  // namespace

std::uint64_t ParamSwap::FileBytes(const std::vector<std::int64_t>& shard_elems, at::ScalarType dtype) {
  std::uint64_t bytes = 0;
  for (std::int64_t e : shard_elems) bytes += ShardBytes(e, dtype);
  return bytes;
}

absl::StatusOr<std::unique_ptr<ParamSwap>> ParamSwap::Create(const ParamSwapOptions& options,
                                                             std::vector<std::int64_t> shard_elems) {
  if (options.io == nullptr) return absl::InvalidArgumentError("ParamSwap without an IoEngine");
  std::unique_ptr<ParamSwap> s(new ParamSwap(options, std::move(shard_elems)));
  ASSIGN_OR_RETURN(s->file_, io::SwapFile::Create(options.dir, options.name, FileBytes(s->elems_, options.dtype)));
  RETURN_IF_ERROR(CallTorch("parameter swap buffers", [&] { s->Init(); }));
  return s;
}

ParamSwap::ParamSwap(const ParamSwapOptions& options, std::vector<std::int64_t> shard_elems)
    : options_(options), elems_(std::move(shard_elems)) {
  std::uint64_t at = 0;
  for (std::int64_t e : elems_) {
    offsets_.push_back(at);
    at += ShardBytes(e, options_.dtype);
  }
}

ParamSwap::~ParamSwap() {
  for (Buffer& b : buffers_) {
    if (b.write.valid()) (void)b.write.Wait();
    if (b.copied) b.copied->synchronize();
  }
}

void ParamSwap::Init() {
  std::int64_t largest = 0;
  for (std::int64_t e : elems_) largest = std::max(largest, e);
  const std::int64_t bytes = static_cast<std::int64_t>(ShardBytes(largest, options_.dtype));
  const bool pin = options_.device.is_cuda() && options_.pin_memory;
  for (int i = 0; i < std::max(1, options_.buffer_count); ++i) {
    buffers_.push_back({IoBuffer::Allocate(options_.io, bytes, pin), {}, {}});
  }
}

ParamSwap::Buffer& ParamSwap::Acquire() {
  Buffer& b = buffers_[next_];
  next_ = (next_ + 1) % buffers_.size();
  if (b.write.valid()) Check(std::exchange(b.write, io::IoHandle()).Wait());
  if (b.copied) {
    b.copied->synchronize();
    b.copied.reset();
  }
  return b;
}

at::Tensor ParamSwap::View(Buffer& b, std::int64_t elems) const {
  return at::from_blob(b.mem.data(), {elems}, at::TensorOptions().dtype(options_.dtype));
}

void ParamSwap::StartWrite(int i, Buffer& b) {
  b.write = options_.io->Write(file_.file(), b.mem.data(), ShardBytes(elems_[i], options_.dtype), offsets_[i]);
}

absl::Status ParamSwap::Write(int i, const at::Tensor& values) {
  return CallTorch("write a parameter shard", [&] {
    Buffer& b = Acquire();
    View(b, elems_[i]).copy_(values.reshape({-1}));
    StartWrite(i, b);
    Check(std::exchange(b.write, io::IoHandle()).Wait());
  });
}

absl::StatusOr<at::Tensor> ParamSwap::Fetch(int i) {
  at::Tensor out;
  RETURN_IF_ERROR(CallTorch("fetch a parameter shard", [&] {
    Buffer& b = Acquire();
    Check(options_.io->Read(file_.file(), b.mem.data(), ShardBytes(elems_[i], options_.dtype), offsets_[i]).Wait());
    ++fetches_;
    const at::Tensor host = View(b, elems_[i]);
    if (!options_.device.is_cuda()) {
      out = host.clone();
      return;
    }
    out = host.to(options_.device, /*non_blocking=*/true);
    c10::impl::VirtualGuardImpl impl(options_.device.type());
    b.copied.emplace(options_.device.type());
    b.copied->record(impl.getStream(options_.device));
  }));
  return out;
}

absl::Status ParamSwap::Put(int i, std::int64_t offset, const at::Tensor& values) {
  return CallTorch("assemble a parameter shard", [&] {
    if (assembling_ != i) {
      if (assembling_ >= 0) {
        Check(absl::InternalError(absl::StrCat("shard ", assembling_, " left incomplete at ", assembled_, " of ",
                                               elems_[assembling_], " elements")));
      }
      Buffer& b = Acquire();
      assembly_ = static_cast<std::size_t>(&b - buffers_.data());
      assembling_ = i;
      assembled_ = 0;
    }
    Buffer& b = buffers_[assembly_];
    View(b, elems_[i]).narrow(0, offset, values.numel()).copy_(values.reshape({-1}));
    assembled_ += values.numel();
    if (assembled_ == elems_[i]) {
      StartWrite(i, b);  // waited for when the buffer comes round again, or by Flush
      assembling_ = -1;
    }
  });
}

absl::Status ParamSwap::Flush() {
  if (assembling_ >= 0) {
    return absl::InternalError(absl::StrCat("parameter swap: shard ", assembling_, " incomplete at the flush"));
  }
  for (Buffer& b : buffers_) {
    if (b.write.valid()) {
      absl::Status s = std::exchange(b.write, io::IoHandle()).Wait();
      if (!s.ok()) return absl::Status(s.code(), absl::StrCat("parameter swap: ", s.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace zt
