#include "core/zero/stage3.h"

#include <ATen/ATen.h>
#include <c10/core/StorageImpl.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>
#include <set>
#include <stdexcept>
#include <unordered_set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/util/logging.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "core/zero/stage3_unit_state.h"
#include "core/zero/zero_init.h"

namespace zt {

const char* SyncPointName(std::int64_t point) {
  switch (static_cast<SyncPoint>(point)) {
    case SyncPoint::kStep:
      return "Step()";
    case SyncPoint::kGather:
      return "GatheredParameters()";
    case SyncPoint::kBarrier:
      return "Barrier()";
    case SyncPoint::kShutdown:
      return "Shutdown()";
  }
  return point == 0 ? "running (forward/backward)" : "an unknown sync point";
}

namespace {

// Reduce-scatters left running behind the backward with overlap_comm; each holds its unit's
// fp32 gradients until it is folded in.
constexpr std::size_t kReducesInFlight = 2;

// A unit's gathered buffer keeps its StorageImpl (the parameters and the tensors autograd
// saved for backward alias it) while its memory comes and goes.
void FreeStorage(const at::Tensor& t) {
  c10::StorageImpl* s = t.storage().unsafeGetStorageImpl();
  s->set_data_ptr_noswap(at::DataPtr(nullptr, s->device()));
  s->set_nbytes(0);
}

void AllocStorage(const at::Tensor& t) {
  c10::StorageImpl* s = t.storage().unsafeGetStorageImpl();
  const std::size_t bytes = static_cast<std::size_t>(t.numel()) * t.element_size();
  if (s->nbytes() == bytes) return;
  s->set_data_ptr_noswap(s->allocator()->allocate(bytes));
  s->set_nbytes(bytes);
}

class PostHook : public torch::autograd::FunctionPostHook {
 public:
  explicit PostHook(std::function<void()> fn) : fn_(std::move(fn)) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    fn_();
    return outputs;
  }

 private:
  std::function<void()> fn_;
};

std::int64_t CeilDiv(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

}  // namespace

absl::StatusOr<std::unique_ptr<Stage3>> Stage3::Create(torch::nn::Module& model, Communicator& comm,
                                                       const Stage3Options& options) {
  std::unique_ptr<Stage3> s(new Stage3(comm, options));
  RETURN_IF_ERROR(s->Build(model), _.WithPrefix(absl::StrCat("rank ", comm.rank(), ": ZeRO stage 3")));
  return s;
}

Stage3::Stage3(Communicator& comm, const Stage3Options& options) : comm_(comm), options_(options) {}

Stage3::~Stage3() {
  for (UnitBase* u : attached_) u->AttachFetcher(nullptr, -1);
  for (std::size_t i = 0; i < accumulators_.size(); ++i) accumulators_[i]->del_post_hook(hook_keys_[i]);
}

absl::Status Stage3::Build(torch::nn::Module& model) {
  const int world = comm_.world_size();
  // Units in module order; units may not nest.
  std::vector<UnitBase*> units;
  for (const auto& m : model.modules(/*include_self=*/true)) {
    if (auto* u = dynamic_cast<UnitBase*>(m.get())) units.push_back(u);
  }
  for (UnitBase* u : units) {
    for (const auto& inner : u->inner().modules(/*include_self=*/true)) {
      if (dynamic_cast<UnitBase*>(inner.get()) != nullptr) {
        return absl::InvalidArgumentError("a stage-3 unit holds another unit; units do not nest");
      }
    }
  }
  // Parameters of units built sharded stay as they are; everything else moves to the device and
  // compute dtype first.
  std::unordered_set<const c10::TensorImpl*> sharded;
  for (UnitBase* u : units) {
    if (!u->storage()) continue;
    const UnitStorage& st = *u->storage();
    if (st.shard.numel() != st.shard_size || st.full.numel() != world * st.shard_size) {
      return absl::FailedPreconditionError(absl::StrCat("a unit built sharded for another world size (",
                                                        st.full.numel(), " elements in shards of ", st.shard_size,
                                                        ", world ", world, ")"));
    }
    if (st.full.scalar_type() != options_.compute_dtype || st.full.device() != options_.device) {
      return absl::FailedPreconditionError(
          absl::StrCat("a unit built sharded in ", c10::toString(st.full.scalar_type()), " on ", st.full.device().str(),
                       " for an engine training in ", c10::toString(options_.compute_dtype), " on ",
                       options_.device.str(), ": build with ZeroInit from the same config and device"));
    }
    for (const at::Tensor& p : st.params) sharded.insert(p.unsafeGetTensorImpl());
  }
  RETURN_IF_ERROR(CallTorch("move the model to " + options_.device.str(), [&] {
    at::NoGradGuard no_grad;
    for (auto& p : model.parameters(/*recurse=*/true)) {
      if (sharded.count(p.unsafeGetTensorImpl())) continue;
      p.set_data(p.is_floating_point() ? p.to(options_.device, options_.compute_dtype) : p.to(options_.device));
    }
    for (auto& b : model.buffers(/*recurse=*/true)) {
      b.set_data(b.is_floating_point() ? b.to(options_.device, options_.compute_dtype) : b.to(options_.device));
    }
  }));
  std::unordered_set<const c10::TensorImpl*> partitioned;
  for (UnitBase* u : units) {
    auto state = std::make_unique<UnitState>();
    state->id = static_cast<int>(units_.size());
    state->unit = u;
    if (!u->storage()) {
      RETURN_IF_ERROR(
          PartitionUnit(*u, comm_, options_.device, options_.compute_dtype, options_.persistence_threshold));
    }
    state->st = u->storage();
    std::int64_t off = 0;
    for (const at::Tensor& p : state->st->params) {
      state->param_offsets.push_back(off);
      off += p.numel();
      partitioned.insert(p.unsafeGetTensorImpl());
    }
    partitioned_elems_ += state->st->numel;
    units_.push_back(std::move(state));
  }
  // The persistent group: every trainable parameter not partitioned in a unit, in model order.
  auto group = std::make_unique<UnitState>();
  group->id = static_cast<int>(units_.size());
  group->persistent = true;
  group->st = std::make_shared<UnitStorage>();
  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    const at::Tensor& p = item.value();
    if (!p.requires_grad() || partitioned.count(p.unsafeGetTensorImpl())) continue;
    group->param_offsets.push_back(group->st->numel);
    group->st->params.push_back(p);
    group->st->names.push_back(item.key());
    group->st->numel += p.numel();
  }
  group->st->shard_size = CeilDiv(group->st->numel, world);
  RETURN_IF_ERROR(CallTorch("flatten persistent parameters", [&] {
    at::NoGradGuard no_grad;
    UnitStorage& st = *group->st;
    st.full =
        at::zeros({world * st.shard_size}, at::TensorOptions().dtype(options_.compute_dtype).device(options_.device));
    for (std::size_t i = 0; i < st.params.size(); ++i) {
      at::Tensor view = st.full.narrow(0, group->param_offsets[i], st.params[i].numel()).view(st.params[i].sizes());
      view.copy_(st.params[i]);
      st.params[i].set_data(view);
    }
  }));
  if (world > 1 && group->st->numel > 0) {
    ASSIGN_OR_RETURN(auto w, comm_.Broadcast(group->st->full, 0));
    RETURN_IF_ERROR(w->Wait());
  }
  group->live = true;
  units_.push_back(std::move(group));

  for (auto& s : units_) s->grad_seen.assign(s->st->params.size(), false);
  RETURN_IF_ERROR(PlaceShards());
  std::vector<std::int64_t> elems;
  for (int u = 0; u < num_units(); ++u) elems.push_back(units_[u]->st->full.numel());
  schedule_ = std::make_unique<FetchSchedule>(std::move(elems), options_.schedule);
  if (world > 1) {
    ASSIGN_OR_RETURN(control_, comm_.CreateCpuChannel("stage3"));
  }
  RETURN_IF_ERROR(CallTorch("install gradient hooks", [&] { InstallGradHooks(); }));
  for (int u = 0; u < num_units(); ++u) {
    units_[u]->unit->AttachFetcher(this, u);
    attached_.push_back(units_[u]->unit);
  }
  if (num_units() == 0 && comm_.rank() == 0) {
    ZT_LOG(WARNING) << "ZeRO stage 3: the model marks no units (zt::Unit), so every parameter stays whole on every "
                       "rank; only gradients and optimizer state are partitioned";
  }
  return absl::OkStatus();
}

void Stage3::InstallGradHooks() {
  for (auto& s : units_) {
    for (std::size_t i = 0; i < s->st->params.size(); ++i) {
      auto acc = torch::autograd::impl::grad_accumulator(s->st->params[i]);
      const int u = s->id;
      hook_keys_.push_back(acc->add_post_hook(std::make_unique<PostHook>([this, u, i] { OnGradReady(u, i); })));
      accumulators_.push_back(std::move(acc));
    }
  }
}

// ---- rounds ---------------------------------------------------------------------------------

absl::Status Stage3::Round(RoundRequest request, RoundPlan* plan) {
  ++stats_.rounds;
  if (comm_.world_size() == 1) {
    std::set<int> g(request.gather.begin(), request.gather.end()), r(request.reduce.begin(), request.reduce.end());
    plan->gather.assign(g.begin(), g.end());
    plan->reduce.assign(r.begin(), r.end());
    plan->sync_points = {request.sync_point};
    plan->all_at_sync = request.sync_point != 0 && g.empty() && r.empty();
    return absl::OkStatus();
  }
  const std::vector<std::int64_t> message = EncodeRound(request, nullptr, nullptr);
  at::Tensor mine = at::tensor(message, at::kLong);
  at::Tensor all = at::empty({comm_.world_size() * kRoundMessageSize}, at::kLong);
  ASSIGN_OR_RETURN(auto w, control_->AllGather(all, mine));
  RETURN_IF_ERROR(w->Wait());
  ASSIGN_OR_RETURN(*plan,
                   DecideRound(absl::MakeConstSpan(all.data_ptr<std::int64_t>(), all.numel()), comm_.world_size()));
  return absl::OkStatus();
}

absl::Status Stage3::Execute(const RoundPlan& plan, const std::vector<int>& wanted) {
  for (int v : plan.gather) {
    if (v < 0 || v >= num_units()) return absl::InternalError(absl::StrCat("round asks for unit ", v));
    const bool mine = std::find(wanted.begin(), wanted.end(), v) != wanted.end();
    RETURN_IF_ERROR(StartGather(v, mine && !units_[v]->live));
  }
  for (int v : plan.reduce) {
    if (v < 0 || v > num_units()) return absl::InternalError(absl::StrCat("round reduces unit ", v));
    RETURN_IF_ERROR(Reduce(v));
  }
  return absl::OkStatus();
}

absl::Status Stage3::StartGather(int v, bool keep) {
  UnitState& s = *units_[v];
  at::Tensor out;
  RETURN_IF_ERROR(CallTorch("gather buffer", [&] {
    if (keep) {
      AllocStorage(s.st->full);
      out = s.st->full;
    } else {  // another rank's request: take part, drop the result
      out = at::empty_like(s.st->full);
    }
  }));
  ++stats_.gathers;
  stats_.gathered_bytes += out.nbytes();
  at::Tensor source;
  RETURN_IF_ERROR(CallTorch("stage the shard on the device", [&] { source = GatherSource(s); }));
  ASSIGN_OR_RETURN(auto work, comm_.AllGather(out, source));
  if (!keep) return work->Wait();
  s.staged = std::move(source);
  s.live = true;
  s.pending = std::move(work);
  schedule_->SetLive(v, true);
  stats_.peak_live_elems = std::max(stats_.peak_live_elems, schedule_->live_elems());
  return absl::OkStatus();
}

absl::Status Stage3::WaitGather(int v) {
  UnitState& s = *units_[v];
  if (!s.pending) return absl::OkStatus();
  absl::Status st = s.pending->Wait();
  s.pending.reset();
  s.staged.reset();
  return st;
}

absl::Status Stage3::Release(int v) {
  UnitState& s = *units_[v];
  if (s.persistent || !s.live) return absl::OkStatus();
  RETURN_IF_ERROR(WaitGather(v));
  FreeStorage(s.st->full);
  s.live = false;
  schedule_->SetLive(v, false);
  return absl::OkStatus();
}

absl::Status Stage3::Reduce(int v) {
  UnitState& s = *units_[v];
  const int world = comm_.world_size();
  const std::int64_t shard = s.st->shard_size;
  at::Tensor wire, out;
  RETURN_IF_ERROR(CallTorch("gradient reduce-scatter buffers", [&] {
    at::Tensor in = s.ready.defined() ? s.ready : at::zeros({world * shard}, grads_.options());
    wire = options_.comm_dtype == at::kFloat ? in : in.to(options_.comm_dtype);
    if (options_.mean && options_.prescale) {
      wire.mul_(1.0 / world);
    } else if (options_.predivide_factor != 1.0) {
      wire.mul_(1.0 / options_.predivide_factor);
    }
    out = at::empty({shard}, wire.options());
  }));
  ++stats_.reduces;
  stats_.reduced_bytes += wire.nbytes();
  ASSIGN_OR_RETURN(auto work, comm_.ReduceScatter(out, wire));
  reducing_.push_back(ReduceInFlight{std::move(work), wire, out, s.offset});
  stats_.peak_reduces_in_flight = std::max(stats_.peak_reduces_in_flight, static_cast<std::int64_t>(reducing_.size()));
  const std::size_t keep = options_.overlap_comm ? kReducesInFlight : 0;
  while (reducing_.size() > keep) RETURN_IF_ERROR(FinishOldestReduce());
  if (s.ready.defined()) {
    s.ready.reset();
    if (!s.persistent) {  // this rank's backward of the unit is over
      s.in_use = false;
      schedule_->SetInUse(v, false);
      for (int r : schedule_->OnDone(v)) RETURN_IF_ERROR(Release(r));
    }
  }
  return absl::OkStatus();
}

absl::Status Stage3::FinishOldestReduce() {
  ReduceInFlight f = std::move(reducing_.front());
  reducing_.pop_front();
  RETURN_IF_ERROR(f.work->Wait());
  return CallTorch("accumulate reduced gradients", [&] {
    const int world = comm_.world_size();
    double post = 1.0;
    if (options_.mean && !options_.prescale) post = options_.predivide_factor / world;
    if (!options_.mean) post = options_.predivide_factor;
    at::Tensor g = f.out.to(at::kFloat);
    if (post != 1.0) g.mul_(post);
    grads_.narrow(0, f.offset, f.out.numel()).add_(g);
  });
}

absl::Status Stage3::FinishReduces() {
  while (!reducing_.empty()) RETURN_IF_ERROR(FinishOldestReduce());
  return absl::OkStatus();
}

std::vector<int> Stage3::ReadyToReduce() const {
  std::vector<int> out;
  for (const auto& s : units_) {
    if (s->ready.defined()) out.push_back(s->id);
  }
  return out;
}

void Stage3::Throw(const absl::Status& s) {
  if (error_.ok()) error_ = s;
  throw StatusException(s);
}

// ---- forward and backward of units ------------------------------------------------------------

void Stage3::Need(int u) {
  UnitState& s = *units_[u];
  s.in_use = true;
  schedule_->SetInUse(u, true);
  std::vector<int> wanted = schedule_->OnNeed(u);
  for (int v : schedule_->TakeEvictions()) {
    if (absl::Status st = Release(v); !st.ok()) Throw(st);
  }
  while (!wanted.empty()) {
    RoundRequest req;
    req.gather = wanted;
    req.reduce = ReadyToReduce();
    RoundPlan plan;
    absl::Status st = Round(req, &plan);
    if (st.ok()) st = Execute(plan, wanted);
    if (!st.ok()) Throw(st);
    std::vector<int> rest;
    for (int v : wanted) {
      if (std::find(plan.gather.begin(), plan.gather.end(), v) == plan.gather.end()) rest.push_back(v);
    }
    wanted.swap(rest);
  }
  if (absl::Status st = WaitGather(u); !st.ok()) Throw(st);
}

void Stage3::BeginForward(int u) {
  if (units_[u]->st->numel == 0) return;
  Need(u);
}

void Stage3::EndForward(int u, const std::vector<at::Tensor>& outputs) noexcept {
  UnitState& s = *units_[u];
  if (s.st->numel == 0) return;
  try {
    for (const at::Tensor& t : outputs) {
      t.register_hook([this, u](const at::Tensor&) { OnPreBackward(u); });
    }
    s.in_use = false;
    schedule_->SetInUse(u, false);
    for (int v : schedule_->OnDone(u)) {
      if (absl::Status st = Release(v); !st.ok() && error_.ok()) error_ = st;
    }
  } catch (const std::exception& e) {
    if (error_.ok()) error_ = StatusFromException(e, "stage-3 unit forward end");
  }
}

void Stage3::OnPreBackward(int u) {
  if (units_[u]->in_use && units_[u]->live && !units_[u]->pending) return;  // another output got here first
  Need(u);
}

void Stage3::CollectGrads(int u) {
  UnitState& s = *units_[u];
  s.ready = at::zeros({s.st->full.numel()}, grads_.options());
  for (std::size_t i = 0; i < s.st->params.size(); ++i) {
    at::Tensor& g = s.st->params[i].mutable_grad();
    if (!g.defined()) continue;
    s.ready.narrow(0, s.param_offsets[i], s.st->params[i].numel()).copy_(g.reshape({-1}));
    g.reset();
  }
}

void Stage3::OnGradReady(int u, std::size_t i) {
  UnitState& s = *units_[u];
  at::Tensor& g = s.st->params[i].mutable_grad();
  if (!g.defined()) return;
  absl::Status st = CallTorch("collect a gradient", [&] {
    if (s.persistent) {
      if (!s.acc.defined()) s.acc = at::zeros({s.st->full.numel()}, grads_.options());
      s.acc.narrow(0, s.param_offsets[i], g.numel()).add_(g.reshape({-1}));
      g.reset();
      return;
    }
    if (!s.grad_seen[i]) {
      s.grad_seen[i] = true;
      ++s.grads_seen;
    }
    if (s.grads_seen == static_cast<int>(s.st->params.size())) CollectGrads(u);
  });
  if (!st.ok()) Throw(st);
  if (s.persistent || !s.ready.defined()) return;
  // The unit's backward is complete here: reduce-scatter its gradients now.
  RoundRequest req;
  req.reduce = ReadyToReduce();
  RoundPlan plan;
  st = Round(req, &plan);
  if (st.ok()) st = Execute(plan, {});
  if (!st.ok()) Throw(st);
}

void Stage3::BeginForwardPass() {
  for (int v : schedule_->BeginPass(FetchSchedule::kForward)) {
    if (absl::Status st = Release(v); !st.ok() && error_.ok()) error_ = st;
  }
}

void Stage3::BeginBackwardPass() {
  // What forward left gathered is kept: backward starts with the units forward ended with.
  schedule_->BeginPass(FetchSchedule::kBackward);
  for (auto& s : units_) {
    std::fill(s->grad_seen.begin(), s->grad_seen.end(), false);
    s->grads_seen = 0;
  }
}

absl::Status Stage3::FinishBackward() {
  RETURN_IF_ERROR(error_);
  RETURN_IF_ERROR(CallTorch("collect remaining gradients", [&] {
    for (auto& s : units_) {
      if (s->persistent) {
        if (s->acc.defined()) {
          s->ready = s->acc;
          s->acc = at::Tensor();
        }
      } else if (s->grads_seen > 0 && !s->ready.defined() && s->grads_seen < static_cast<int>(s->st->params.size())) {
        CollectGrads(s->id);  // parameters without a gradient contribute zeros
      }
    }
  }));
  while (!ReadyToReduce().empty()) {
    RoundRequest req;
    req.reduce = ReadyToReduce();
    RoundPlan plan;
    RETURN_IF_ERROR(Round(req, &plan));
    RETURN_IF_ERROR(Execute(plan, {}));
  }
  RETURN_IF_ERROR(FinishReduces());
  for (int u = 0; u < num_units(); ++u) {
    units_[u]->in_use = false;
    schedule_->SetInUse(u, false);
    RETURN_IF_ERROR(Release(u));
  }
  return error_;
}

absl::Status Stage3::Sync(SyncPoint point) {
  RETURN_IF_ERROR(error_);
  for (;;) {
    RoundRequest req;
    req.sync_point = static_cast<std::int64_t>(point);
    req.reduce = ReadyToReduce();
    RoundPlan plan;
    RETURN_IF_ERROR(Round(req, &plan));
    RETURN_IF_ERROR(Execute(plan, {}));
    if (!plan.all_at_sync) continue;
    RETURN_IF_ERROR(FinishReduces());
    std::vector<std::string> elsewhere;
    for (std::size_t r = 0; r < plan.sync_points.size(); ++r) {
      if (plan.sync_points[r] != req.sync_point) {
        elsewhere.push_back(absl::StrCat("rank ", r, " is in ", SyncPointName(plan.sync_points[r])));
      }
    }
    if (!elsewhere.empty()) {
      return absl::FailedPreconditionError(absl::StrCat("rank ", comm_.rank(), " is in ", SyncPointName(req.sync_point),
                                                        " but ", absl::StrJoin(elsewhere, ", "),
                                                        ": every rank must make the same engine calls"));
    }
    return absl::OkStatus();
  }
}

absl::Status Stage3::AfterStep(bool applied) {
  if (!applied) return absl::OkStatus();
  if (param_swap_) RETURN_IF_ERROR(param_swap_->Flush());  // the updates are on disk before any fetch
  if (master_.defined() && !master_.is_same(shard16_)) {
    RETURN_IF_ERROR(CallTorch("write 16-bit shards", [&] { shard16_.copy_(master_); }));
  }
  for (int u = 0; u < num_units(); ++u) RETURN_IF_ERROR(Release(u));  // stale now
  UnitState& group = *units_.back();
  if (group.st->numel > 0) {
    at::Tensor source;
    RETURN_IF_ERROR(CallTorch("stage the shard on the device", [&] { source = GatherSource(group); }));
    ASSIGN_OR_RETURN(auto w, comm_.AllGather(group.st->full, source));
    RETURN_IF_ERROR(w->Wait());
  }
  return absl::OkStatus();
}

void Stage3::ZeroGrads() {
  // Nothing is in flight after FinishBackward()/Sync(); should anything be, it belongs to the
  // gradients being dropped.
  if (absl::Status st = FinishReduces(); !st.ok() && error_.ok()) error_ = st;
  grads_.zero_();
  for (auto& s : units_) {
    s->acc = at::Tensor();
    s->ready = at::Tensor();
  }
}

absl::Status Stage3::GatherAll() {
  RETURN_IF_ERROR(Sync(SyncPoint::kGather));
  // Every rank gathers every unit (those it already has into a scratch buffer), so the
  // collectives match whatever each rank kept.
  for (int u = 0; u < num_units(); ++u) RETURN_IF_ERROR(StartGather(u, /*keep=*/!units_[u]->live));
  for (int u = 0; u < num_units(); ++u) {
    RETURN_IF_ERROR(WaitGather(u));
    units_[u]->in_use = true;
    schedule_->SetInUse(u, true);
  }
  gathered_all_ = true;
  return absl::OkStatus();
}

absl::Status Stage3::ReleaseAll(int modifier_rank) {
  if (!gathered_all_) return absl::FailedPreconditionError("ReleaseAll() without GatherAll()");
  gathered_all_ = false;
  RETURN_IF_ERROR(Sync(SyncPoint::kGather));
  for (auto& s : units_) {
    if (modifier_rank >= 0 && s->st->numel > 0) {
      ASSIGN_OR_RETURN(auto w, comm_.Broadcast(s->st->full, modifier_rank));
      RETURN_IF_ERROR(w->Wait());
      if (s->swap_index >= 0 && !shard16_.defined()) {
        RETURN_IF_ERROR(param_swap_->Write(s->swap_index,
                                           s->st->full.narrow(0, comm_.rank() * s->st->shard_size, s->st->shard_size)));
      }
      RETURN_IF_ERROR(CallTorch("take the modified values", [&] {
        if (s->swap_index >= 0 && !shard16_.defined()) return;
        s->st->shard.copy_(s->st->full.narrow(0, comm_.rank() * s->st->shard_size, s->st->shard_size));
        if (master_.defined() && !master_.is_same(shard16_)) {
          master_.narrow(0, s->offset, s->st->shard_size).copy_(s->st->shard);
        }
      }));
    }
    if (!s->persistent) {
      s->in_use = false;
      schedule_->SetInUse(s->id, false);
      RETURN_IF_ERROR(Release(s->id));
    }
  }
  return absl::OkStatus();
}

// ---- introspection ----------------------------------------------------------------------------

std::int64_t Stage3::persistent_elems() const { return units_.back()->st->numel; }

bool Stage3::gathered(int unit) const { return units_[unit]->live; }

}  // namespace zt
