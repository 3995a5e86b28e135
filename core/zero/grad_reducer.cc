#include "core/zero/grad_reducer.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "ops/accumulate.h"

namespace zt {
namespace {

// Runs after AccumulateGrad has stored a parameter's gradient.
class GradReadyHook : public torch::autograd::FunctionPostHook {
 public:
  explicit GradReadyHook(std::function<void()> fn) : fn_(std::move(fn)) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /*inputs*/) override {
    fn_();
    return outputs;
  }

 private:
  std::function<void()> fn_;
};

// How many buckets may be in flight before the oldest is waited for (partitioned mode keeps
// memory to the shard plus these).
constexpr std::size_t kMaxInFlightPartitioned = 2;

// Hooks queue their gradients and add them in batches (ops/accumulate.h): one kernel per batch
// instead of one ATen add per parameter.  A batch goes when it holds this many bytes of
// gradients (kept alive until then) or slices, and before any bucket is reduced.
constexpr std::int64_t kQueueBytes = 64 << 20;
constexpr std::size_t kQueueSlices = 256;

bool Queueable(const at::Tensor& g) {
  const at::ScalarType t = g.scalar_type();
  return t == at::kFloat || t == at::kBFloat16 || t == at::kHalf;
}

}  // namespace

absl::StatusOr<std::unique_ptr<GradReducer>> GradReducer::Create(std::vector<at::Tensor> params,
                                                                 const FlatLayout& layout, Communicator& comm,
                                                                 const GradReducerOptions& options) {
  if (static_cast<std::int64_t>(params.size()) != layout.num_params()) {
    return absl::InvalidArgumentError(
        absl::StrCat("GradReducer: ", params.size(), " parameters but the layout has ", layout.num_params()));
  }
  if (layout.world() != comm.world_size()) {
    return absl::InvalidArgumentError(absl::StrCat("GradReducer: layout for ", layout.world(),
                                                   " ranks but the communicator has ", comm.world_size()));
  }
  if (options.partitioned && !options.reduce_to_owner) {
    return absl::InvalidArgumentError("GradReducer: partitioned gradients need reduce_to_owner");
  }
  std::unique_ptr<GradReducer> r(new GradReducer(std::move(params), layout, comm, options));
  RETURN_IF_ERROR(CallTorch("install gradient hooks", [&] { r->InstallHooks(); }));
  return r;
}

GradReducer::GradReducer(std::vector<at::Tensor> params, const FlatLayout& layout, Communicator& comm,
                         const GradReducerOptions& options)
    : params_(std::move(params)), layout_(layout), comm_(comm), options_(options) {
  const at::Device device = params_.empty() ? at::Device(at::kCPU) : params_[0].device();
  f32_ = at::TensorOptions().dtype(at::kFloat).device(device);
  optimizer_range_ = options_.sharded_optimizer ? layout_.shard(comm_.rank()) : Range{0, layout_.padded()};
  if (options_.partitioned) {
    shard_ = at::zeros({layout_.shard_size()}, f32_);
    staging_.resize(0);
  } else {
    full_ = at::zeros({layout_.padded()}, f32_);
    views_ = true;
  }
  buckets_ = PlanBuckets(layout_, options_.bucket_elems, options_.reduce_to_owner);
  if (options_.partitioned) staging_.resize(buckets_.size());
  buckets_of_param_.resize(params_.size());
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    for (std::int64_t p : buckets_[b].params) buckets_of_param_[p].push_back(b);
  }
  pending_.assign(buckets_.size(), 0);
  ready_.assign(buckets_.size(), false);
}

GradReducer::~GradReducer() {
  for (std::size_t i = 0; i < accumulators_.size(); ++i) accumulators_[i]->del_post_hook(hook_keys_[i]);
}

void GradReducer::InstallHooks() {
  for (std::size_t i = 0; i < params_.size(); ++i) {
    // The variable only holds its accumulator weakly: keep it alive, or the hook goes with it.
    auto acc = torch::autograd::impl::grad_accumulator(params_[i]);
    hook_keys_.push_back(acc->add_post_hook(std::make_unique<GradReadyHook>([this, i] { OnGradReady(i); })));
    accumulators_.push_back(std::move(acc));
  }
  AttachGradViews();
}

void GradReducer::AttachGradViews() {
  if (!views_) return;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& p = params_[i];
    if (p.scalar_type() != at::kFloat) continue;  // 16-bit gradients are added in by the hook
    const Range r = layout_.param(i);
    at::Tensor view = full_.narrow(0, r.begin, r.size()).view(p.sizes());
    at::Tensor& g = p.mutable_grad();
    if (!g.defined() || g.data_ptr() != view.data_ptr()) g = view;
  }
}

void GradReducer::BeginMicroStep(bool boundary) {
  std::lock_guard<std::mutex> lock(mu_);
  boundary_ = boundary;
  begun_ = true;
  next_launch_ = 0;
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    pending_[b] = static_cast<int>(buckets_[b].params.size());
    ready_[b] = false;
  }
  AttachGradViews();
}

void GradReducer::OnGradReady(std::size_t i) {
  std::lock_guard<std::mutex> lock(mu_);
  at::Tensor& p = params_[i];
  at::Tensor& g = p.mutable_grad();
  const Range r = layout_.param(i);
  absl::Status s = CallTorch("gradient hook", [&] {
    if (!g.defined()) return;
    if (options_.partitioned) {
      const at::Tensor flat = g.contiguous();
      const bool first = fresh_ && !touched_[i];  // its shard slices hold the last step's gradients
      for (std::size_t b : buckets_of_param_[i]) {
        const Range br = buckets_[b].range;
        const std::int64_t lo = std::max(br.begin, r.begin), hi = std::min(br.end, r.end);
        if (!staging_[b].defined()) staging_[b] = NewStaging(b);
        Accumulate(flat, lo - r.begin, staging_[b], lo - br.begin, hi - lo, first && buckets_[b].owner == comm_.rank());
      }
      if (fresh_) touched_[i] = true;
      g.reset();
    } else if (!views_ || p.scalar_type() != at::kFloat) {
      Accumulate(g.contiguous(), 0, full_, r.begin, r.size());
      g.reset();
    } else if (g.data_ptr() != full_.data_ptr<float>() + r.begin) {
      // Autograd replaced our view (a user reset .grad mid-step): fold it back in.
      full_.narrow(0, r.begin, r.size()).add_(g.reshape({-1}));
      g = full_.narrow(0, r.begin, r.size()).view(p.sizes());
    }
  });
  if (s.ok() && (queued_bytes_ >= kQueueBytes || queued_.size() >= kQueueSlices)) s = FlushQueued();
  if (!s.ok()) {
    Fail(s);
    return;
  }
  if (!boundary_) return;
  for (std::size_t b : buckets_of_param_[i]) {
    if (--pending_[b] == 0) ready_[b] = true;
  }
  if (options_.overlap) LaunchReadyInOrder();
}

void GradReducer::Accumulate(const at::Tensor& src, std::int64_t src_offset, const at::Tensor& dst,
                             std::int64_t dst_offset, std::int64_t n, bool assign) {
  if (!Queueable(src)) {
    at::Tensor d = dst.narrow(0, dst_offset, n);
    const at::Tensor s = src.view({-1}).narrow(0, src_offset, n);
    if (assign) {
      d.copy_(s);
    } else {
      d.add_(s);
    }
    return;
  }
  queued_.push_back(ops::AccumulateSlice{src, src_offset, dst, dst_offset, n, assign});
  queued_bytes_ += n * src.element_size();
}

absl::Status GradReducer::FlushQueued() {
  if (queued_.empty()) return absl::OkStatus();
  absl::Status s = CallTorch("add queued gradients", [&] { ops::AccumulateSlices(queued_); });
  queued_.clear();
  queued_bytes_ = 0;
  return s;
}

at::Tensor GradReducer::NewStaging(std::size_t b) {
  const Range br = buckets_[b].range;
  if (buckets_[b].owner == comm_.rank()) {  // straight into the shard (see fresh_)
    const Range shard = layout_.shard(comm_.rank());
    return shard_.narrow(0, br.begin - shard.begin, br.size());
  }
  return at::zeros({br.size()}, f32_);
}

at::Tensor GradReducer::BucketSource(std::size_t b) {
  const Range br = buckets_[b].range;
  if (!options_.partitioned) return full_.narrow(0, br.begin, br.size());
  if (!staging_[b].defined()) staging_[b] = NewStaging(b);
  return staging_[b];
}

void GradReducer::LaunchReadyInOrder() {
  if (next_launch_ < buckets_.size() && ready_[next_launch_]) {
    const absl::Status s = FlushQueued();
    if (!s.ok()) Fail(s);
  }
  while (next_launch_ < buckets_.size() && ready_[next_launch_]) Launch(next_launch_++);
}

void GradReducer::Launch(std::size_t b) {
  if (!error_.ok()) return;
  InFlight f;
  f.bucket = b;
  f.dest = BucketSource(b);
  f.wire = options_.comm_dtype == at::kFloat ? f.dest : f.dest.to(options_.comm_dtype);
  const double world = comm_.world_size();
  if (options_.mean && options_.prescale) {
    f.wire.mul_(1.0 / world);
  } else if (options_.predivide_factor != 1.0) {
    f.wire.mul_(1.0 / options_.predivide_factor);
  }
  auto work = options_.reduce_to_owner ? comm_.Reduce(f.wire, buckets_[b].owner) : comm_.AllReduce(f.wire);
  if (!work.ok()) {
    Fail(work.status());
    return;
  }
  f.work = *std::move(work);
  in_flight_.push_back(std::move(f));
  if (options_.partitioned) {
    while (in_flight_.size() > kMaxInFlightPartitioned) {
      Complete(in_flight_.front());
      in_flight_.pop_front();
    }
  }
}

void GradReducer::Complete(InFlight& f) {
  absl::Status s = f.work->Wait();
  if (!s.ok()) {
    Fail(s);
    return;
  }
  const GradBucket& b = buckets_[f.bucket];
  const bool mine = !options_.reduce_to_owner || b.owner == comm_.rank();
  if (mine) {
    s = CallTorch("finish a gradient bucket", [&] {
      if (!f.wire.is_same(f.dest)) f.dest.copy_(f.wire);
      double post = 1.0;
      if (options_.mean && !options_.prescale) post = options_.predivide_factor / comm_.world_size();
      if (!options_.mean) post = options_.predivide_factor;
      if (post != 1.0) f.dest.mul_(post);
      if (options_.partitioned) {
        const Range shard = layout_.shard(comm_.rank());
        at::Tensor mine = shard_.narrow(0, b.range.begin - shard.begin, b.range.size());
        if (mine.data_ptr() != f.dest.data_ptr()) mine.copy_(f.dest);
      }
    });
    if (!s.ok()) Fail(s);
    const Range opt = optimizer_range_;
    const std::int64_t begin = std::max(b.range.begin, opt.begin), end = std::min(b.range.end, opt.end);
    if (s.ok() && options_.on_final && begin < end) {
      s = options_.on_final({begin - opt.begin, end - opt.begin});
      if (!s.ok()) Fail(s);
    }
  }
  if (options_.partitioned) staging_[f.bucket].reset();
}

void GradReducer::Fail(const absl::Status& s) {
  if (error_.ok()) error_ = s;
}

void GradReducer::ZeroUntouched() {
  fresh_ = false;
  const Range shard = layout_.shard(comm_.rank());
  const absl::Status s = CallTorch("zero the gradients of unused parameters", [&] {
    for (std::int64_t i : layout_.ParamsIn(shard)) {
      if (touched_[i]) continue;
      const Range r = layout_.param(i);
      const std::int64_t lo = std::max(r.begin, shard.begin), hi = std::min(r.end, shard.end);
      shard_.narrow(0, lo - shard.begin, hi - lo).zero_();
    }
  });
  if (!s.ok()) Fail(s);
}

void GradReducer::SettleShard() const {
  if (fresh_ && !begun_) {
    shard_.zero_();
    fresh_ = false;
  }
}

absl::Status GradReducer::FinishBackward() {
  std::lock_guard<std::mutex> lock(mu_);
  if (absl::Status s = FlushQueued(); !s.ok()) Fail(s);
  if (fresh_) ZeroUntouched();  // before the buckets that hold such parameters are reduced
  if (boundary_) {
    std::fill(ready_.begin(), ready_.end(), true);  // parameters that got no gradient count as zero
    LaunchReadyInOrder();
  }
  while (!in_flight_.empty()) {
    Complete(in_flight_.front());
    in_flight_.pop_front();
  }
  absl::Status s = error_;
  error_ = absl::OkStatus();
  return s;
}

at::Tensor GradReducer::OptimizerGrads() const {
  SettleShard();
  if (options_.partitioned) return shard_;
  return full_.narrow(0, optimizer_range_.begin, optimizer_range_.size());
}

at::Tensor GradReducer::ShardGrads() const {
  SettleShard();
  if (options_.partitioned) return shard_;
  const Range r = layout_.shard(comm_.rank());
  return full_.narrow(0, r.begin, r.size());
}

void GradReducer::ZeroGrads() {
  std::lock_guard<std::mutex> lock(mu_);
  queued_.clear();  // gradients of a backward that failed
  queued_bytes_ = 0;
  if (full_.defined()) full_.zero_();
  if (shard_.defined()) {  // cleared by the next backward's own writes (fresh_)
    fresh_ = true;
    begun_ = false;
    touched_.assign(params_.size(), false);
  }
  for (auto& s : staging_) s.reset();
  for (auto& p : params_) {
    if (!views_ || p.scalar_type() != at::kFloat) p.mutable_grad().reset();
  }
  AttachGradViews();
}

}  // namespace zt
