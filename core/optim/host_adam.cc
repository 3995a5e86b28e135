#include "core/optim/host_adam.h"

#include <ATen/ATen.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
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
  std::unique_ptr<HostAdam> h(new HostAdam(std::move(device_params), config, options));
  RETURN_IF_ERROR(CallTorch("offloaded optimizer state", [&] { h->Init(); }));
  return h;
}

HostAdam::HostAdam(at::Tensor device_params, const AdamConfig& config, const HostAdamOptions& options)
    : device_params_(std::move(device_params)), config_(config), options_(options) {}

HostAdam::~HostAdam() {
  // Copies still in flight read or write host buffers this object owns.
  for (auto& e : out_done_) {
    if (e) e->synchronize();
  }
  if (grads_down_) grads_down_->synchronize();
}

void HostAdam::Init() {
  cuda_params_ = device_params_.is_cuda();
  cuda_grads_ = options_.grads_device.is_cuda();
  const std::int64_t n = device_params_.numel();
  const bool pin = (cuda_params_ || cuda_grads_) && options_.pin_memory;
  const auto host = at::TensorOptions().dtype(at::kFloat).device(at::kCPU).pinned_memory(pin);
  if (!cuda_params_ && device_params_.scalar_type() == at::kFloat) {
    master_ = device_params_;  // host fp32 parameters are the master weights
  } else {
    master_ = at::empty({n}, host);
    master_.copy_(device_params_);
  }
  exp_avg_ = at::zeros({n}, host);
  exp_avg_sq_ = at::zeros({n}, host);
  if (cuda_grads_) grads_ = at::empty({n}, host);
  if (cuda_params_ && device_params_.scalar_type() != at::kFloat) {
    const std::int64_t chunk = std::min<std::int64_t>(std::max<std::int64_t>(1, options_.chunk_elems), n);
    for (auto& b : out16_) b = at::empty({chunk}, host.dtype(device_params_.scalar_type()));
  }
  const at::Device cuda = cuda_params_ ? device_params_.device() : options_.grads_device;
  if (cuda.is_cuda()) {
    c10::impl::VirtualGuardImpl impl(cuda.type());
    copy_stream_ = impl.getStreamFromGlobalPool(cuda);
  }
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

absl::Status HostAdam::Step(const at::Tensor& device_grads, double lr, double beta1, double beta2, float grad_scale) {
  const std::int64_t n = master_.numel();
  if (device_grads.numel() != n || device_grads.scalar_type() != at::kFloat || !device_grads.is_contiguous()) {
    return absl::InvalidArgumentError(
        absl::StrCat("HostAdam: ", device_grads.numel(), " gradients for a shard of ", n));
  }
  ++step_;
  ops::AdamStep s;
  s.lr = static_cast<float>(lr);
  s.beta1 = static_cast<float>(beta1);
  s.beta2 = static_cast<float>(beta2);
  s.eps = static_cast<float>(config_.eps);
  s.weight_decay = static_cast<float>(config_.weight_decay);
  s.decoupled = config_.decoupled_weight_decay;
  s.bias_correction = config_.bias_correction;
  s.step = step_;
  s.grad_scale = grad_scale;
  ops::CpuAdamOptions cpu;
  cpu.threads = options_.threads;
  const ops::Half16 half = HalfType(device_params_.scalar_type());
  return CallTorch("offloaded Adam step", [&] {
    const float* grads = device_grads.data_ptr<float>();
    if (cuda_grads_) {
      CopyMissingGrads(device_grads);
      if (grads_down_) grads_down_->synchronize();  // the CPU needs the gradients now
      grads = grads_.data_ptr<float>();
    }
    copied_.clear();
    if (!cuda_params_) {
      // Host parameters: 16-bit values are written in place, fp32 ones are the master weights.
      ops::CpuAdam(master_.data_ptr<float>(), grads, exp_avg_.data_ptr<float>(), exp_avg_sq_.data_ptr<float>(), n, s,
                   {half, half == ops::Half16::kNone ? nullptr : device_params_.data_ptr()}, cpu);
      return;
    }
    c10::impl::VirtualGuardImpl impl(device_params_.device().type());
    {  // the copies up overwrite parameters that work queued earlier may still read
      c10::Event queued(device_params_.device().type());
      queued.record(impl.getStream(device_params_.device()));
      queued.block(*copy_stream_);
    }
    const std::int64_t chunk = std::min<std::int64_t>(std::max<std::int64_t>(1, options_.chunk_elems), n);
    int k = 0;
    for (std::int64_t off = 0; off < n; off += chunk, k ^= 1) {
      const std::int64_t len = std::min(chunk, n - off);
      // Staging buffer k is free once its previous copy up finished.
      if (out_done_[k]) out_done_[k]->synchronize();
      void* out = half == ops::Half16::kNone ? nullptr : out16_[k].data_ptr();
      ops::CpuAdam(master_.data_ptr<float>() + off, grads + off, exp_avg_.data_ptr<float>() + off,
                   exp_avg_sq_.data_ptr<float>() + off, len, s, {half, out}, cpu);
      c10::StreamGuard guard(*copy_stream_);
      at::Tensor src = half == ops::Half16::kNone ? master_.narrow(0, off, len) : out16_[k].narrow(0, 0, len);
      device_params_.narrow(0, off, len).copy_(src, /*non_blocking=*/true);
      if (!out_done_[k]) out_done_[k].emplace(device_params_.device().type());
      out_done_[k]->record(*copy_stream_);
    }
    // Later work on the compute stream sees the new parameters; the host does not wait.
    c10::Event up(device_params_.device().type());
    up.record(*copy_stream_);
    up.block(impl.getStream(device_params_.device()));
  });
}

absl::Status HostAdam::SetMaster(const at::Tensor& values) {
  return CallTorch("set master weights", [&] { master_.copy_(values.reshape({-1})); });
}

}  // namespace zt
