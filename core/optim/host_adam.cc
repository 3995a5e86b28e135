#include "core/optim/host_adam.h"

#include <ATen/ATen.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/optim/adam_shard.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "io/aligned_buffer.h"
#include "ops/cpu_adam.h"

namespace zt {
namespace {

ops::Half16 HalfType(at::ScalarType t) {
  if (t == at::kBFloat16) return ops::Half16::kBf16;
  if (t == at::kHalf) return ops::Half16::kFp16;
  return ops::Half16::kNone;
}

}  // namespace

absl::StatusOr<std::unique_ptr<HostAdam>> HostAdam::Create(at::Tensor device_params, const AdamConfig& config,
                                                           const HostAdamOptions& options) {
  const at::ScalarType t = device_params.scalar_type();
  if (t != at::kFloat && t != at::kBFloat16 && t != at::kHalf) {
    return absl::InvalidArgumentError(absl::StrCat("HostAdam: parameters of ", c10::toString(t)));
  }
  if (!device_params.is_contiguous()) return absl::InvalidArgumentError("HostAdam: non-contiguous parameters");
  if (options.swap && options.swap->io == nullptr)
    return absl::InvalidArgumentError("HostAdam: swap without an IoEngine");
  std::unique_ptr<HostAdam> h(new HostAdam(std::move(device_params), config, options));
  RETURN_IF_ERROR(CallTorch("offloaded optimizer state", [&] { h->Init(); }));
  return h;
}

HostAdam::HostAdam(at::Tensor device_params, const AdamConfig& config, const HostAdamOptions& options)
    : device_params_(std::move(device_params)),
      n_(device_params_.numel()),
      dtype_(device_params_.scalar_type()),
      config_(config),
      options_(options) {}

HostAdam::~HostAdam() {
  // Copies and swap I/O still in flight read or write host buffers this object owns.
  for (SwapBuffer& b : bufs_) {
    for (io::IoHandle* h : {&b.read, &b.write}) {
      if (h->valid()) (void)h->Wait();
    }
  }
  for (auto& e : out_done_) {
    if (e) e->synchronize();
  }
  if (grads_down_) grads_down_->synchronize();
}

void HostAdam::Init() {
  cuda_params_ = device_params_.is_cuda() && !options_.params_out;
  cuda_grads_ = options_.grads_device.is_cuda();
  const std::int64_t n = n_;
  const bool pin = (cuda_params_ || cuda_grads_) && options_.pin_memory;
  const auto host = at::TensorOptions().dtype(at::kFloat).device(at::kCPU).pinned_memory(pin);
  const at::Device cuda = cuda_params_ ? device_params_.device() : options_.grads_device;
  if (options_.params_out) {  // host staging of the updated values handed to params_out
    for (auto& b : out16_) b = at::empty({chunk()}, host.dtype(dtype_));
  }
  if (cuda.is_cuda()) {
    c10::impl::VirtualGuardImpl impl(cuda.type());
    copy_stream_ = impl.getStreamFromGlobalPool(cuda);
  }
  if (cuda_grads_) grads_ = at::empty({n}, host);
  if (options_.swap) {
    InitSwap();
  } else if (!cuda_params_ && dtype_ == at::kFloat && !options_.params_out) {
    master_ = device_params_;  // host fp32 parameters are the master weights
  } else {
    master_ = at::empty({n}, host);
    master_.copy_(device_params_);
  }
  if (!options_.swap) {
    exp_avg_ = at::zeros({n}, host);
    exp_avg_sq_ = at::zeros({n}, host);
    if (cuda_params_ && dtype_ != at::kFloat) {
      for (auto& b : out16_) b = at::empty({chunk()}, host.dtype(dtype_));
    }
  }
  if (options_.params_out) device_params_ = at::Tensor();  // only the initial values were needed
}

absl::Status HostAdam::CopyGradsDown(std::int64_t offset, const at::Tensor& slice) {
  if (!cuda_grads_) return absl::OkStatus();  // host gradients: Adam reads them where they are
  return CallTorch("copy gradients to the host", [&] {
    c10::impl::VirtualGuardImpl impl(slice.device().type());
    c10::Event ready(slice.device().type());
    ready.record(impl.getStream(slice.device()));
    ready.block(*copy_stream_);
    {
      c10::StreamGuard guard(*copy_stream_);
      grads_.narrow(0, offset, slice.numel()).copy_(slice.reshape({-1}), /*non_blocking=*/true);
    }
    impl.recordDataPtrOnStream(slice.storage().data_ptr(), *copy_stream_);
    if (!grads_down_) grads_down_.emplace(slice.device().type());
    grads_down_->record(*copy_stream_);
    copied_.push_back({offset, offset + slice.numel()});
  });
}

void HostAdam::CopyMissingGrads(const at::Tensor& device_grads) {
  // Ranges of [0, n) no CopyGradsDown covered this step.
  std::sort(copied_.begin(), copied_.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
  std::vector<Range> missing;
  std::int64_t at = 0;
  for (const Range& r : copied_) {
    if (r.begin > at) missing.push_back({at, r.begin});
    at = std::max(at, r.end);
  }
  if (at < device_grads.numel()) missing.push_back({at, device_grads.numel()});
  for (const Range& r : missing) {
    absl::Status s = CopyGradsDown(r.begin, device_grads.narrow(0, r.begin, r.size()));
    if (!s.ok()) throw StatusException(s);
  }
}

std::int64_t HostAdam::chunk() const {
  return std::min<std::int64_t>(std::max<std::int64_t>(1, options_.chunk_elems), std::max<std::int64_t>(1, n_));
}

void HostAdam::BeginCopyUp() {
  // The copies up overwrite parameters that work queued earlier may still read.
  c10::impl::VirtualGuardImpl impl(device_params_.device().type());
  c10::Event queued(device_params_.device().type());
  queued.record(impl.getStream(device_params_.device()));
  queued.block(*copy_stream_);
}

// Copies src (host, pinned staging k or the master weights) to parameters [off, off + len).
void HostAdam::CopyUp(int k, std::int64_t off, std::int64_t len, const at::Tensor& src) {
  c10::StreamGuard guard(*copy_stream_);
  device_params_.narrow(0, off, len).copy_(src, /*non_blocking=*/true);
  if (!out_done_[k]) out_done_[k].emplace(device_params_.device().type());
  out_done_[k]->record(*copy_stream_);
}

void HostAdam::EndCopyUp() {
  // Later work on the compute stream sees the new parameters; the host does not wait.
  c10::impl::VirtualGuardImpl impl(device_params_.device().type());
  c10::Event up(device_params_.device().type());
  up.record(*copy_stream_);
  up.block(impl.getStream(device_params_.device()));
}

absl::Status HostAdam::Step(const at::Tensor& device_grads, double lr, double beta1, double beta2, float grad_scale) {
  const std::int64_t n = n_;
  if (device_grads.numel() != n || device_grads.scalar_type() != at::kFloat || !device_grads.is_contiguous()) {
    return absl::InvalidArgumentError(
        absl::StrCat("HostAdam: ", device_grads.numel(), " gradients for a shard of ", n));
  }
  ++step_;
  const ops::AdamStep s = MakeAdamStep(config_, lr, beta1, beta2, step_, grad_scale);
  ops::CpuAdamOptions cpu;
  cpu.threads = options_.threads;
  const ops::Half16 half = HalfType(dtype_);
  return CallTorch("offloaded Adam step", [&] {
    const float* grads = device_grads.data_ptr<float>();
    if (cuda_grads_) {
      CopyMissingGrads(device_grads);
      if (grads_down_) grads_down_->synchronize();  // the CPU needs the gradients now
      grads = grads_.data_ptr<float>();
    }
    copied_.clear();
    if (swapped()) {
      StepSwapped(grads, s, cpu);
      return;
    }
    if (options_.params_out) {
      const std::int64_t chunk = this->chunk();
      for (std::int64_t off = 0; off < n; off += chunk) {
        const std::int64_t len = std::min(chunk, n - off);
        float* master = master_.data_ptr<float>() + off;
        ops::CpuAdam(master, grads + off, exp_avg_.data_ptr<float>() + off, exp_avg_sq_.data_ptr<float>() + off, len, s,
                     {half, half == ops::Half16::kNone ? nullptr : out16_[0].data_ptr()}, cpu);
        if (half == ops::Half16::kNone) std::memcpy(out16_[0].data_ptr(), master, len * sizeof(float));
        Emit(off, out16_[0].narrow(0, 0, len));
      }
      return;
    }
    if (!cuda_params_) {
      // Host parameters: 16-bit values are written in place, fp32 ones are the master weights.
      ops::CpuAdam(master_.data_ptr<float>(), grads, exp_avg_.data_ptr<float>(), exp_avg_sq_.data_ptr<float>(), n, s,
                   {half, half == ops::Half16::kNone ? nullptr : device_params_.data_ptr()}, cpu);
      return;
    }
    BeginCopyUp();
    const std::int64_t chunk = this->chunk();
    int k = 0;
    for (std::int64_t off = 0; off < n; off += chunk, k ^= 1) {
      const std::int64_t len = std::min(chunk, n - off);
      // Staging buffer k is free once its previous copy up finished.
      if (out_done_[k]) out_done_[k]->synchronize();
      void* out = half == ops::Half16::kNone ? nullptr : out16_[k].data_ptr();
      ops::CpuAdam(master_.data_ptr<float>() + off, grads + off, exp_avg_.data_ptr<float>() + off,
                   exp_avg_sq_.data_ptr<float>() + off, len, s, {half, out}, cpu);
      CopyUp(k, off, len, half == ops::Half16::kNone ? master_.narrow(0, off, len) : out16_[k].narrow(0, 0, len));
    }
    EndCopyUp();
  });
}

// ---- swapped state (NVMe) ---------------------------------------------------------------------

std::uint64_t HostAdam::SwapBytes(std::int64_t n, std::int64_t chunk_elems) {
  if (n <= 0) return 0;
  const std::int64_t chunk = std::min<std::int64_t>(std::max<std::int64_t>(1, chunk_elems), n);
  const std::uint64_t chunks = static_cast<std::uint64_t>((n + chunk - 1) / chunk);
  return chunks * 3 * io::AlignUp(static_cast<std::size_t>(chunk) * sizeof(float));
}

void HostAdam::Emit(std::int64_t offset, const at::Tensor& values) {
  absl::Status s = options_.params_out(offset, values);
  if (!s.ok()) throw StatusException(s);
}

void HostAdam::WaitSwap(const io::IoHandle& h) const {
  if (!h.valid()) return;
  absl::Status s = h.Wait();
  if (!s.ok()) throw StatusException(absl::Status(s.code(), absl::StrCat("optimizer state swap: ", s.message())));
}

void HostAdam::FlushSwap() {
  for (SwapBuffer& b : bufs_) {
    io::IoHandle w = std::exchange(b.write, io::IoHandle());
    WaitSwap(w);
  }
}

void HostAdam::InitSwap() {
  const HostAdamSwap& sw = *options_.swap;
  const std::int64_t n = n_;
  const std::int64_t chunk = this->chunk();
  const std::int64_t chunks = (n + chunk - 1) / chunk;
  stride_ = static_cast<std::int64_t>(io::AlignUp(static_cast<std::size_t>(chunk) * sizeof(float)));
  auto file = io::SwapFile::Create(sw.dir, sw.name, SwapBytes(n, chunk));
  if (!file.ok()) throw StatusException(file.status());
  swap_file_.emplace(std::move(*file));
  const bool pin = (cuda_params_ || cuda_grads_) && options_.pin_memory;
  const int count = static_cast<int>(std::min<std::int64_t>(std::max(1, sw.buffer_count), chunks));
  for (int i = 0; i < count; ++i) {
    bufs_.push_back({IoBuffer::Allocate(sw.io, 3 * stride_, pin), {}, {}});
  }
  if (cuda_params_) {
    for (auto& b : out16_) b = at::empty({chunk}, at::TensorOptions().dtype(dtype_).pinned_memory(pin));
  }
  // The master weights from the parameters; the moments zero (fast_init: not written, the
  // first step makes them in memory).
  const std::uint64_t region = static_cast<std::uint64_t>(stride_);
  for (std::int64_t c = 0; c < chunks; ++c) {
    SwapBuffer& b = bufs_[c % count];
    WaitSwap(std::exchange(b.write, io::IoHandle()));
    const std::int64_t off = c * chunk, len = std::min(chunk, n - off);
    float* base = static_cast<float*>(b.mem.data());
    at::from_blob(base, {len}, at::kFloat).copy_(device_params_.narrow(0, off, len));
    if (!sw.fast_init) std::memset(base + stride_ / 4, 0, 2 * region);
    b.write = sw.io->Write(swap_file_->file(), base, sw.fast_init ? region : 3 * region, c * 3 * region);
  }
  FlushSwap();
  fresh_ = sw.fast_init;
}

void HostAdam::StepSwapped(const float* grads, const ops::AdamStep& s, const ops::CpuAdamOptions& cpu) {
  const HostAdamSwap& sw = *options_.swap;
  const std::int64_t n = n_;
  const std::int64_t chunk = this->chunk();
  const std::int64_t chunks = (n + chunk - 1) / chunk;
  const std::int64_t count = static_cast<std::int64_t>(bufs_.size());
  const std::uint64_t region = static_cast<std::uint64_t>(stride_);
  const ops::Half16 half = HalfType(dtype_);
  const bool staged = cuda_params_ || options_.params_out;  // the new values go through out16_
  // Sub-groups read ahead: every buffer but the one stepping (and the one writing back).
  const std::int64_t ahead = sw.pipeline_read ? std::max<std::int64_t>(0, count - 1 - (sw.pipeline_write ? 1 : 0)) : 0;
  std::int64_t next_read = 0;
  auto start_read = [&](std::int64_t c) {
    SwapBuffer& b = bufs_[c % count];
    WaitSwap(std::exchange(b.write, io::IoHandle()));
    b.read = sw.io->Read(swap_file_->file(), b.mem.data(), fresh_ ? region : 3 * region, c * 3 * region);
  };
  if (cuda_params_) BeginCopyUp();
  for (std::int64_t c = 0; c < chunks; ++c) {
    for (; next_read <= std::min(c + ahead, chunks - 1); ++next_read) start_read(next_read);
    SwapBuffer& b = bufs_[c % count];
    WaitSwap(std::exchange(b.read, io::IoHandle()));
    float* master = static_cast<float*>(b.mem.data());
    float* m = master + stride_ / 4;
    float* v = m + stride_ / 4;
    if (fresh_) std::memset(m, 0, 2 * region);
    const std::int64_t off = c * chunk, len = std::min(chunk, n - off);
    const int k = static_cast<int>(c & 1);
    void* out = nullptr;
    if (staged) {
      if (out_done_[k]) out_done_[k]->synchronize();  // staging k is free again
      out = half == ops::Half16::kNone ? nullptr : out16_[k].data_ptr();
    } else if (half != ops::Half16::kNone) {
      out = static_cast<char*>(device_params_.data_ptr()) + off * device_params_.element_size();
    }
    ops::CpuAdam(master, grads + off, m, v, len, s, {half, out}, cpu);
    if (half == ops::Half16::kNone) {  // fp32 parameters: a copy of the master weights
      float* dst = staged ? out16_[k].data_ptr<float>() : device_params_.data_ptr<float>() + off;
      std::memcpy(dst, master, static_cast<std::size_t>(len) * sizeof(float));
    }
    if (cuda_params_) CopyUp(k, off, len, out16_[k].narrow(0, 0, len));
    if (options_.params_out) Emit(off, out16_[k].narrow(0, 0, len));
    b.write = sw.io->Write(swap_file_->file(), master, 3 * region, c * 3 * region);
    if (!sw.pipeline_write) WaitSwap(std::exchange(b.write, io::IoHandle()));
  }
  if (cuda_params_) EndCopyUp();
  fresh_ = false;
}

absl::StatusOr<HostAdam::State> HostAdam::ReadState() {
  State st;
  RETURN_IF_ERROR(CallTorch("read the optimizer state", [&] {
    if (!swapped()) {
      st = {master_.clone(), exp_avg_.clone(), exp_avg_sq_.clone()};
      return;
    }
    FlushSwap();
    const std::int64_t n = n_, chunk = this->chunk();
    st = {at::empty({n}, at::kFloat), at::zeros({n}, at::kFloat), at::zeros({n}, at::kFloat)};
    const std::uint64_t region = static_cast<std::uint64_t>(stride_);
    SwapBuffer& b = bufs_[0];
    for (std::int64_t off = 0; off < n; off += chunk) {
      const std::int64_t len = std::min(chunk, n - off);
      WaitSwap(options_.swap->io->Read(swap_file_->file(), b.mem.data(), fresh_ ? region : 3 * region,
                                       off / chunk * 3 * region));
      float* base = static_cast<float*>(b.mem.data());
      st.master.narrow(0, off, len).copy_(at::from_blob(base, {len}, at::kFloat));
      if (fresh_) continue;
      st.exp_avg.narrow(0, off, len).copy_(at::from_blob(base + stride_ / 4, {len}, at::kFloat));
      st.exp_avg_sq.narrow(0, off, len).copy_(at::from_blob(base + stride_ / 2, {len}, at::kFloat));
    }
  }));
  return st;
}

absl::Status HostAdam::RestoreState(const State& state, std::int64_t step) {
  for (const at::Tensor* t : {&state.master, &state.exp_avg, &state.exp_avg_sq}) {
    if (t->numel() != n_) {
      return absl::InvalidArgumentError(
          absl::StrCat("HostAdam: restoring ", t->numel(), " values into a shard of ", n_));
    }
  }
  if (step < 0) return absl::InvalidArgumentError(absl::StrCat("HostAdam: restoring step ", step));
  RETURN_IF_ERROR(CallTorch("restore the offloaded optimizer state", [&] {
    if (!swapped()) {
      master_.copy_(state.master.reshape({-1}));
      exp_avg_.copy_(state.exp_avg.reshape({-1}));
      exp_avg_sq_.copy_(state.exp_avg_sq.reshape({-1}));
      return;
    }
    FlushSwap();
    const std::int64_t n = n_, chunk = this->chunk();
    const std::uint64_t region = static_cast<std::uint64_t>(stride_);
    SwapBuffer& b = bufs_[0];
    for (std::int64_t off = 0; off < n; off += chunk) {
      const std::int64_t len = std::min(chunk, n - off);
      float* base = static_cast<float*>(b.mem.data());
      std::memset(base, 0, 3 * region);
      at::from_blob(base, {len}, at::kFloat).copy_(state.master.reshape({-1}).narrow(0, off, len));
      at::from_blob(base + stride_ / 4, {len}, at::kFloat).copy_(state.exp_avg.reshape({-1}).narrow(0, off, len));
      at::from_blob(base + stride_ / 2, {len}, at::kFloat).copy_(state.exp_avg_sq.reshape({-1}).narrow(0, off, len));
      WaitSwap(options_.swap->io->Write(swap_file_->file(), base, 3 * region, off / chunk * 3 * region));
    }
    fresh_ = false;
  }));
  step_ = step;
  return absl::OkStatus();
}

absl::Status HostAdam::SetMaster(const at::Tensor& values) {
  return CallTorch("set master weights", [&] {
    if (!swapped()) {
      master_.copy_(values.reshape({-1}));
      return;
    }
    FlushSwap();
    const at::Tensor flat = values.reshape({-1});
    const std::int64_t n = n_, chunk = this->chunk();
    const std::uint64_t region = static_cast<std::uint64_t>(stride_);
    SwapBuffer& b = bufs_[0];
    for (std::int64_t off = 0; off < n; off += chunk) {
      const std::int64_t len = std::min(chunk, n - off);
      const std::uint64_t at = off / chunk * 3 * region;
      float* base = static_cast<float*>(b.mem.data());
      if (fresh_) {
        std::memset(base + stride_ / 4, 0, 2 * region);
      } else {
        WaitSwap(options_.swap->io->Read(swap_file_->file(), base, 3 * region, at));
      }
      at::from_blob(base, {len}, at::kFloat).copy_(flat.narrow(0, off, len));
      WaitSwap(options_.swap->io->Write(swap_file_->file(), base, 3 * region, at));
    }
    fresh_ = false;
  });
}

}  // namespace zt
