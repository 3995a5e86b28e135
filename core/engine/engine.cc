#include "core/engine/engine.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/comm/agreement.h"
#include "core/comm/comms_logger.h"
#include "core/profiler/flops_profiler.h"
#include "core/util/logging.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "core/zero/partition.h"
#include "io/swap_file.h"

namespace zt {
namespace {

at::ScalarType ComputeDtype(const Config& c) {
  switch (c.precision()) {
    case Precision::kFp16:
      return at::kHalf;
    case Precision::kBf16:
      return at::kBFloat16;
    case Precision::kFp32:
      break;
  }
  return at::kFloat;
}

at::ScalarType WireDtype(CommDataType t) {
  switch (t) {
    case CommDataType::kFp16:
      return at::kHalf;
    case CommDataType::kBf16:
      return at::kBFloat16;
    case CommDataType::kDefault:  // gradients are accumulated in fp32 and travel so
    case CommDataType::kFp32:
      break;
  }
  return at::kFloat;
}

// The squared 2-norm of the gradients as a [1] float64 tensor, in one pass over them: float32
// norms of 4096-element rows, their squares summed in float64.  (Converting the whole flat
// buffer to float64 first costs a 2x-sized copy, several times the reduction itself.)  inf or
// NaN exactly when some gradient is (or the norm passes float32's range).
at::Tensor SquaredNorm(const at::Tensor& grads) {
  constexpr std::int64_t kRow = 4096;
  const at::Tensor flat = grads.reshape({-1});
  const std::int64_t n = flat.numel(), whole = n / kRow * kRow;
  std::vector<at::Tensor> norms;
  if (whole > 0) {
    norms.push_back(at::linalg_vector_norm(flat.narrow(0, 0, whole).view({-1, kRow}), 2, at::IntArrayRef{1}));
  }
  if (whole < n || n == 0) norms.push_back(at::linalg_vector_norm(flat.narrow(0, whole, n - whole), 2).reshape({1}));
  const at::Tensor all = norms.size() == 1 ? norms[0] : at::cat(norms);
  return all.to(at::kDouble).pow(2).sum().reshape({1});
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(std::shared_ptr<Model> model, const Config& config,
                                                       std::shared_ptr<Communicator> comm,
                                                       const EngineOptions& options) {
  if (model == nullptr || comm == nullptr) return absl::InvalidArgumentError("Engine: model and communicator needed");
  RETURN_IF_ERROR(config.RequireImplemented());
  if (config.optimizer.type == OptimizerType::kNone) {
    return absl::InvalidArgumentError(
        absl::StrCat(config.source,
                     ": no \"optimizer\" block: the engine trains with Adam or AdamW from the config (a job fills "
                     "one from its own flags when the config has none)"));
  }
  const at::Device device = options.device.value_or(
      comm->backend() == CommBackend::kNccl ? at::Device(at::kCUDA, comm->local_rank()) : at::Device(at::kCPU));
  if (comm->backend() == CommBackend::kGloo && !device.is_cpu()) {
    return absl::InvalidArgumentError("Engine: the Gloo backend trains on the CPU; use NCCL for CUDA devices");
  }
  if (comm->backend() == CommBackend::kNccl && !device.is_cuda()) {
    return absl::InvalidArgumentError("Engine: the NCCL backend trains on CUDA devices; use Gloo on the CPU");
  }
  // comms_logger, and wall_clock_breakdown's communication time: every collective through a
  // timing decorator (profiled collectives are synchronous; comms_logger.h).
  std::shared_ptr<LoggingCommunicator> logger;
  if (config.comms_logger.enabled || config.wall_clock_breakdown) {
    LoggingCommunicator::Options o;
    const bool by_logger = config.comms_logger.enabled;
    o.verbose = by_logger && config.comms_logger.verbose;
    o.prof_all = !by_logger || config.comms_logger.prof_all;
    if (by_logger) o.prof_ops = config.comms_logger.prof_ops;
    o.debug = config.comms_logger.debug;
    ASSIGN_OR_RETURN(logger, LoggingCommunicator::Create(comm, o), _.WithPrefix(config.source + ": "));
    comm = logger;
  }
  std::unique_ptr<Engine> e(new Engine(std::move(model), config, std::move(comm), device));
  e->comms_logger_ = std::move(logger);
  RETURN_IF_ERROR(e->Init(), _.WithPrefix(absl::StrCat("rank ", e->comm_->rank())));
  if (e->comm_->rank() == 0 && (config.tensorboard.enabled || config.csv_monitor.enabled)) {
    // DeepSpeed's monitors: rank 0 writes, under output_path/job_name.
    const auto writer = [](const MonitorConfig& m) {
      return monitor::MonitorWriterOptions{m.enabled, m.output_path, m.job_name};
    };
    monitor::MonitorOptions o;
    o.tensorboard = writer(config.tensorboard);
    o.csv_monitor = writer(config.csv_monitor);
    ASSIGN_OR_RETURN(monitor::Monitor m, monitor::Monitor::Create(o), _.WithPrefix(config.source));
    e->monitor_.emplace(std::move(m));
  }
  return e;
}

Engine::Engine(std::shared_ptr<Model> model, const Config& config, std::shared_ptr<Communicator> comm,
               at::Device device)
    : model_(std::move(model)),
      config_(config),
      comm_(std::move(comm)),
      device_(device),
      compute_dtype_(ComputeDtype(config)),
      scaler_(LossScaler::Create(config.fp16, config.zero_optimization.stage)) {}

Engine::~Engine() = default;  // here, where profiler::FlopsProfiler is complete

absl::Status Engine::Init() {
  SetLogRank(comm_->rank());
  if (config_.zero_optimization.stage == 3) return InitStage3();
  RETURN_IF_ERROR(Flatten());
  const int stage = config_.zero_optimization.stage;
  const Range range = stage == 0 ? Range{0, layout_.padded()} : layout_.shard(comm_->rank());
  RETURN_IF_ERROR(InitOptimizer(flat_.narrow(0, range.begin, range.size()), at::Tensor()));
  ASSIGN_OR_RETURN(LrSchedule schedule, LrSchedule::Create(config_.scheduler, config_.optimizer.adam.lr));
  schedule_.emplace(std::move(schedule));

  const ZeroConfig& z = config_.zero_optimization;
  GradReducerOptions r;
  r.sharded_optimizer = stage >= 1;
  r.reduce_to_owner = stage >= 1 && z.reduce_scatter;
  r.partitioned = stage == 2 && z.reduce_scatter && config_.gradient_accumulation_steps == 1;
  r.overlap = stage == 0 || z.overlap_comm;  // stage 0 always overlaps (DDP's buckets)
  r.bucket_elems = z.reduce_bucket_size;
  r.comm_dtype = WireDtype(config_.communication_data_type);
  r.mean = config_.gradient_allreduce_op == AllReduceOp::kMean;
  r.prescale = config_.prescale_gradients;
  r.predivide_factor = config_.gradient_predivide_factor;
  if (host_adam_) {
    // Each finished bucket of this rank's gradients starts down to the host while backward
    // goes on; Step copies whatever is left.
    r.on_final = [this](Range g) {
      return host_adam_->CopyGradsDown(g.begin, reducer_->OptimizerGrads().narrow(0, g.begin, g.size()));
    };
  }
  ASSIGN_OR_RETURN(reducer_, GradReducer::Create(params_, layout_, *comm_, r));
  if (comm_->rank() == 0) {
    ZT_LOG(INFO) << absl::StrFormat(
        "engine: ZeRO stage %d, %s, %d ranks (%s), %d parameters in %d tensors, %d per rank in the optimizer, "
        "%d gradient buckets, micro batch %d x accumulation %d x world %d = %d%s",
        stage, compute_dtype_ == at::kFloat ? "fp32" : c10::toString(compute_dtype_), comm_->world_size(),
        CommBackendName(comm_->backend()), layout_.total(), layout_.num_params(), range.size(), reducer_->buckets(),
        config_.train_micro_batch_size_per_gpu, config_.gradient_accumulation_steps, comm_->world_size(),
        config_.train_batch_size, host_adam_ ? "; optimizer state offloaded to host memory (CPU Adam)" : "");
  }
  return absl::OkStatus();
}

absl::Status Engine::InitStage3() {
  // Same parameters everywhere before any collective depends on it.
  Fingerprint fp;
  std::int64_t count = 0;
  for (const auto& item : model_->named_parameters(/*recurse=*/true)) {
    if (!item.value().requires_grad()) continue;
    fp.Add(item.key()).Add(static_cast<std::int64_t>(item.value().scalar_type()));
    for (std::int64_t d : item.value().sizes()) fp.Add(d);
    ++count;
  }
  RETURN_IF_ERROR(CheckAgreement(*comm_, fp.value(), count, "model parameters"));
  const ZeroConfig& z = config_.zero_optimization;
  Stage3Options o;
  o.device = device_;
  o.compute_dtype = compute_dtype_;
  o.persistence_threshold = z.param_persistence_threshold;
  o.schedule.prefetch_elems = z.prefetch_bucket_size;
  o.schedule.max_live_elems = z.max_live_parameters;
  o.schedule.max_reuse_distance = z.max_reuse_distance;
  o.mean = config_.gradient_allreduce_op == AllReduceOp::kMean;
  o.prescale = config_.prescale_gradients;
  o.predivide_factor = config_.gradient_predivide_factor;
  o.comm_dtype = WireDtype(config_.communication_data_type);
  o.overlap_comm = z.overlap_comm;
  o.external_master = z.offload_optimizer.device != OffloadDevice::kNone;
  o.offload_params = z.offload_param.device != OffloadDevice::kNone;
  o.pin_memory = z.offload_param.pin_memory;
  if (z.offload_param.device == OffloadDevice::kNvme) {
    // At most this rank's part of every parameter plus an alignment block per unit.
    std::int64_t elems = 0, tensors = 0;
    for (const auto& item : model_->named_parameters(/*recurse=*/true)) {
      elems += item.value().numel();
      ++tensors;
    }
    const std::uint64_t bytes = static_cast<std::uint64_t>((elems + comm_->world_size() - 1) / comm_->world_size()) *
                                    c10::elementSize(compute_dtype_) +
                                static_cast<std::uint64_t>(tensors) * 4096;
    const std::string key = "zero_optimization.offload_param.nvme_path";
    ASSIGN_OR_RETURN(io::SwapDirInfo dir, io::PreflightSwapDir(z.offload_param.nvme_path, bytes, key));
    if (!dir.direct_io) {
      ZT_LOG(WARNING) << key << " " << z.offload_param.nvme_path
                      << " does not support O_DIRECT; parameters swap through the page cache";
    }
    RETURN_IF_ERROR(CreateIoEngine());
    ParamSwapOptions nvme;
    nvme.io = io_.get();
    nvme.dir = z.offload_param.nvme_path;
    nvme.name = absl::StrFormat("zerotrain.%d.rank%d.params.swp", ::getpid(), comm_->rank());
    nvme.dtype = compute_dtype_;
    nvme.device = device_;
    nvme.buffer_count = z.offload_param.buffer_count > 0 ? static_cast<int>(z.offload_param.buffer_count) : 5;
    nvme.pin_memory = z.offload_param.pin_memory;
    o.nvme = nvme;
    o.max_in_cpu = z.offload_param.max_in_cpu;
    o.nvme_buffer_elems = z.offload_param.buffer_size;
  }
  ASSIGN_OR_RETURN(stage3_, Stage3::Create(*model_, *comm_, o));
  RETURN_IF_ERROR(InitOptimizer(stage3_->params(), stage3_->master()));
  const std::int64_t optimizer_elems = opt_params_.numel();
  if (stage3_->param_swap() != nullptr) {
    // The optimizer took the initial values; the swapped shards now live on NVMe only.
    opt_params_ = at::Tensor();
    RETURN_IF_ERROR(stage3_->DropSwappedShards());
  }
  ASSIGN_OR_RETURN(LrSchedule schedule, LrSchedule::Create(config_.scheduler, config_.optimizer.adam.lr));
  schedule_.emplace(std::move(schedule));
  if (comm_->rank() == 0) {
    ZT_LOG(INFO) << absl::StrFormat(
        "engine: ZeRO stage 3, %s, %d ranks (%s), %d units holding %d partitioned parameters, %d persistent, "
        "%d per rank in the optimizer (%d of them %s)%s, micro batch %d x accumulation %d x world %d = "
        "%d",
        compute_dtype_ == at::kFloat ? "fp32" : c10::toString(compute_dtype_), comm_->world_size(),
        CommBackendName(comm_->backend()), stage3_->num_units(), stage3_->partitioned_elems(),
        stage3_->persistent_elems(), optimizer_elems, host_elems_,
        host_adam_ && host_adam_->swapped()
            ? "in NVMe swap files under " + config_.zero_optimization.offload_optimizer.nvme_path
            : std::string("in host memory"),
        stage3_->param_swap() != nullptr
            ? absl::StrCat(", parameter shards past the first ", o.max_in_cpu, " elements in NVMe swap files under ",
                           z.offload_param.nvme_path)
            : std::string(o.offload_params ? ", parameter shards in host memory" : ""),
        config_.train_micro_batch_size_per_gpu, config_.gradient_accumulation_steps, comm_->world_size(),
        config_.train_batch_size);
  }
  return absl::OkStatus();
}

absl::Status Engine::InitOptimizer(const at::Tensor& params, const at::Tensor& device_master) {
  opt_params_ = params;
  const std::int64_t n = params.numel();
  const OffloadConfig& off = config_.zero_optimization.offload_optimizer;
  if (off.device != OffloadDevice::kNone) {
    host_elems_ = std::clamp<std::int64_t>(std::llround(off.ratio * static_cast<double>(n)), 0, n);
    HostAdamOptions h;
    h.pin_memory = off.pin_memory;
    h.chunk_elems = config_.zero_optimization.sub_group_size;
    h.threads = at::get_num_threads();  // the launcher gives each rank its share of the cores
    h.grads_device = device_;
    if (stage3_ && stage3_->param_swap() != nullptr) {
      // Parameters on NVMe: the updates go to their units' homes, not into params.
      h.params_out = [this](std::int64_t offset, const at::Tensor& values) {
        return stage3_->UpdateShards(offset, values);
      };
    }
    if (off.device == OffloadDevice::kNvme) {
      const std::string key = "zero_optimization.offload_optimizer.nvme_path";
      ASSIGN_OR_RETURN(io::SwapDirInfo dir,
                       io::PreflightSwapDir(off.nvme_path, HostAdam::SwapBytes(host_elems_, h.chunk_elems), key));
      if (!dir.direct_io) {
        ZT_LOG(WARNING) << key << " " << off.nvme_path
                        << " does not support O_DIRECT; optimizer state swaps through the page cache";
      }
      RETURN_IF_ERROR(CreateIoEngine());
      HostAdamSwap sw;
      sw.io = io_.get();
      sw.dir = off.nvme_path;
      sw.name = absl::StrFormat("zerotrain.%d.rank%d.optimizer.swp", ::getpid(), comm_->rank());
      sw.buffer_count = off.buffer_count > 0 ? static_cast<int>(off.buffer_count) : 4;
      sw.pipeline_read = off.pipeline_read;
      sw.pipeline_write = off.pipeline_write;
      sw.fast_init = off.fast_init;
      h.swap = sw;
    }
    ASSIGN_OR_RETURN(host_adam_, HostAdam::Create(params.narrow(0, 0, host_elems_), config_.optimizer.adam, h));
  }
  if (host_adam_ && host_elems_ == n) return absl::OkStatus();
  RETURN_IF_ERROR(CallTorch("create fp32 master weights", [&] {
    const at::Tensor rest = params.narrow(0, host_elems_, n - host_elems_);
    if (device_master.defined()) {
      master_ = device_master;  // stage 3 keeps it and writes the 16-bit shards from it
    } else if (rest.scalar_type() == at::kFloat && rest.device() == device_) {
      master_ = rest;
    } else {
      master_ = rest.to(device_, at::kFloat, /*non_blocking=*/false, /*copy=*/true);
    }
  }));
  adam_ = std::make_unique<AdamShard>(master_, config_.optimizer.adam);
  return absl::OkStatus();
}

absl::Status Engine::CreateIoEngine() {
  if (io_) return absl::OkStatus();
  const AioConfig& a = config_.aio;
  io::AioOptions o;
  o.block_size = static_cast<std::size_t>(a.block_size);
  o.queue_depth = a.queue_depth;
  o.thread_count = a.intra_op_parallelism;
  o.single_submit = a.single_submit;
  o.overlap_events = a.overlap_events;
  ASSIGN_OR_RETURN(io_, io::IoEngine::Create(o));
  if (!io_->uses_io_uring() && comm_->rank() == 0) {
    ZT_LOG(WARNING) << "NVMe offload: " << io_->fallback_reason() << "; swapping through a pread/pwrite thread pool";
  }
  return absl::OkStatus();
}

absl::Status Engine::ReloadMaster() {
  if (!opt_params_.defined() && stage3_) {  // parameters on NVMe: read them back
    ASSIGN_OR_RETURN(at::Tensor values, stage3_->ShardValues());
    return host_adam_->SetMaster(values);
  }
  if (host_adam_) RETURN_IF_ERROR(host_adam_->SetMaster(opt_params_.narrow(0, 0, host_elems_)));
  if (!adam_ || (stage3_ && !host_adam_)) return absl::OkStatus();  // Stage3 reloads its own master
  return CallTorch("take the modified values",
                   [&] { master_.copy_(opt_params_.narrow(0, host_elems_, opt_params_.numel() - host_elems_)); });
}

absl::Status Engine::Flatten() {
  RETURN_IF_ERROR(CallTorch("move the model to " + device_.str(), [&] { model_->to(device_, compute_dtype_); }));
  std::vector<std::int64_t> numels;
  Fingerprint fp;
  for (const auto& item : model_->named_parameters(/*recurse=*/true)) {
    const at::Tensor& p = item.value();
    if (!p.requires_grad()) continue;
    params_.push_back(p);
    param_names_.push_back(item.key());
    numels.push_back(p.numel());
    fp.Add(item.key()).Add(static_cast<std::int64_t>(p.scalar_type()));
    for (std::int64_t d : p.sizes()) fp.Add(d);
  }
  RETURN_IF_ERROR(CheckAgreement(*comm_, fp.value(), static_cast<std::int64_t>(params_.size()), "model parameters"));
  layout_ = FlatLayout::Make(numels, comm_->world_size());
  RETURN_IF_ERROR(CallTorch("flatten the parameters", [&] {
    at::NoGradGuard no_grad;
    flat_ = at::zeros({layout_.padded()}, at::TensorOptions().dtype(compute_dtype_).device(device_));
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const Range r = layout_.param(i);
      at::Tensor view = flat_.narrow(0, r.begin, r.size()).view(params_[i].sizes());
      view.copy_(params_[i]);
      params_[i].set_data(view);
    }
  }));
  // Every rank starts from rank 0's weights, as deepspeed.initialize does.
  if (comm_->world_size() > 1) {
    ASSIGN_OR_RETURN(auto w, comm_->Broadcast(flat_, 0));
    RETURN_IF_ERROR(w->Wait());
  }
  return absl::OkStatus();
}

bool Engine::is_gradient_accumulation_boundary() const {
  return (micro_steps_ + 1) % config_.gradient_accumulation_steps == 0;
}

absl::StatusOr<at::Tensor> Engine::Forward(const Batch& batch) {
  t_forward_ = std::chrono::steady_clock::now();
  if (!meter_.started) {
    meter_.started = true;
    meter_.run_start = meter_.last_step = t_forward_;
    meter_.run_first_step = global_steps_;
  }
  if (!meter_.in_step) {
    meter_.in_step = true;
    meter_.step_start = t_forward_;
  }
  BatchWork work;
  RETURN_IF_ERROR(CallTorch("count the batch's work (Model::Work)", [&] { work = model_->Work(batch); }));
  meter_.samples += work.samples;
  if (work.tokens >= 0) meter_.tokens += work.tokens;
  if (work.flops >= 0) meter_.flops += work.flops;
  meter_.tokens_known = meter_.tokens_known && work.tokens >= 0;
  meter_.flops_known = meter_.flops_known && work.flops >= 0;
  if (stage3_) stage3_->BeginForwardPass();
  RETURN_IF_ERROR(MaybeStartFlopsProfile());
  auto loss = CallTorch("forward", [&] {
    Batch on_device;
    for (const auto& [name, t] : batch) {
      // A host tensor goes through pinned memory: a copy from pageable memory first waits for
      // the device to finish everything queued before it.
      at::Tensor x =
          device_.is_cuda() && t.is_cpu() ? t.pin_memory().to(device_, /*non_blocking=*/true) : t.to(device_);
      if (config_.fp16.enabled && config_.fp16.auto_cast && x.is_floating_point()) x = x.to(at::kHalf);
      on_device.emplace(name, std::move(x));
    }
    return model_->Forward(on_device);
  });
  if (profile_phase_ == ProfilePhase::kWaiting && flops_profiler_) RETURN_IF_ERROR(StopFlopsProfile());
  if (!loss.ok()) return loss.status();
  if (loss->numel() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("the model's Forward returned ", loss->numel(), " values; it must return the scalar loss"));
  }
  fwd_s_ += Seconds(t_forward_);
  return loss;
}

absl::Status Engine::Backward(const at::Tensor& loss) {
  t_backward_ = std::chrono::steady_clock::now();
  if (!loss.defined() || loss.numel() != 1 || !loss.requires_grad()) {
    return absl::InvalidArgumentError("Backward needs the scalar loss that Forward returned");
  }
  const bool boundary = is_gradient_accumulation_boundary();
  if (stage3_) {
    stage3_->BeginBackwardPass();
  } else {
    reducer_->BeginMicroStep(boundary);
  }
  const double factor = scaler_.scale() / static_cast<double>(config_.gradient_accumulation_steps);
  RETURN_IF_ERROR(CallTorch("backward", [&] {
    last_loss_ = loss.detach();
    const at::Tensor l32 = last_loss_.to(at::kFloat);
    meter_.loss_sum = meter_.loss_sum.defined() ? meter_.loss_sum + l32 : l32;
    ++meter_.micro;
    if (monitor_) monitor_loss_sum_ = monitor_loss_sum_.defined() ? monitor_loss_sum_ + l32 : l32;
    (loss.to(at::kFloat) * factor).backward();
  }));
  // Stages 0-2: on a boundary this reduces what is left and waits; elsewhere it only reports
  // hook errors.  Stage 3 reduces every micro-step (it gathers every micro-step anyway).
  RETURN_IF_ERROR(stage3_ ? stage3_->FinishBackward() : reducer_->FinishBackward());
  backward_done_ = true;
  const double bwd = Seconds(t_backward_);
  bwd_s_ += bwd;
  if (profile_phase_ == ProfilePhase::kProfiled && profile_bwd_s_ == 0) profile_bwd_s_ = bwd;
  return absl::OkStatus();
}

absl::Status Engine::Step() {
  if (!backward_done_) return absl::FailedPreconditionError("Step() needs a Backward() first in each micro-step");
  backward_done_ = false;
  const bool boundary = is_gradient_accumulation_boundary();
  ++micro_steps_;
  if (!boundary) return absl::OkStatus();
  const auto t0 = std::chrono::steady_clock::now();
  RETURN_IF_ERROR(ApplyStep());
  const double step_seconds = Seconds(t0);
  step_s_ += step_seconds;
  RETURN_IF_ERROR(MaybeReportFlopsProfile(step_seconds));
  meter_.last_step = std::chrono::steady_clock::now();
  meter_.busy_s += std::chrono::duration<double>(meter_.last_step - meter_.step_start).count();
  meter_.in_step = false;
  if (monitor_) RETURN_IF_ERROR(WriteMonitorEvents());
  return MaybeReport();
}

double Engine::last_grad_norm() const {
  if (last_grad_norm_device_.defined()) {
    last_grad_norm_ = last_grad_norm_device_.item<double>();
    last_grad_norm_device_ = at::Tensor();
  }
  return last_grad_norm_;
}

absl::Status Engine::ApplyStep() {
  // Stage 3: every rank's gradients are in once all ranks are here.
  if (stage3_) RETURN_IF_ERROR(stage3_->Sync(SyncPoint::kStep));
  const at::Tensor norm_grads = stage3_ ? stage3_->grads() : reducer_->ShardGrads();
  const at::Tensor opt_grads = stage3_ ? stage3_->grads() : reducer_->OptimizerGrads();
  const bool check_overflow = config_.fp16.enabled || (config_.bf16.enabled && config_.bf16.check_grad_overflow);
  // One collective answers both questions: the global squared norm (ranks' shards do not
  // overlap), which is inf/NaN exactly when some gradient is.
  at::Tensor local;
  RETURN_IF_ERROR(CallTorch("gradient norm", [&] { local = SquaredNorm(norm_grads); }));
  RETURN_IF_ERROR(AllReduceSync(*comm_, local));
  // With no overflow to decide and the whole update on the GPU, the norm and the clipping factor
  // stay on the GPU's stream: the host queues the update (and the next step's forward) without
  // waiting for the backward to finish.
  const bool on_device = !check_overflow && !host_adam_ && adam_ != nullptr && local.is_cuda();
  const double norm_sq = on_device ? 0.0 : local.item<double>();
  ++global_steps_;
  if (check_overflow && !std::isfinite(norm_sq)) {
    ++skipped_steps_;
    if (host_adam_) host_adam_->DropGrads();
    if (stage3_) {
      stage3_->ZeroGrads();
      RETURN_IF_ERROR(stage3_->AfterStep(/*applied=*/false));
    } else {
      reducer_->ZeroGrads();
    }
    if (comm_->rank() == 0) {
      ZT_LOG(WARNING) << "step " << global_steps_ << ": gradients hold inf/NaN on some rank; every rank skips it";
    }
    return scaler_.Update(/*overflow=*/true);
  }
  const double scale = scaler_.scale();
  double factor = 1.0 / scale;
  at::Tensor device_factor;  // on_device: the factor, as one float on the GPU
  if (on_device) {
    RETURN_IF_ERROR(CallTorch("clipping factor", [&] {
      // The host branch's arithmetic, in double, as tensor operations.
      const at::Tensor norm = local.sqrt() / scale;
      last_grad_norm_device_ = norm;
      at::Tensor f = at::full_like(norm, 1.0 / scale);
      if (config_.gradient_clipping > 0) {
        const at::Tensor clip = (norm + 1e-6) / config_.gradient_clipping;
        f = at::where(clip > 1, (clip * scale).reciprocal(), f);
      }
      device_factor = f.to(at::kFloat);
    }));
    factor = 1.0;
  } else {
    const double norm = std::sqrt(norm_sq) / scale;
    last_grad_norm_ = norm;
    last_grad_norm_device_ = at::Tensor();
    if (config_.gradient_clipping > 0) {
      const double clip = (norm + 1e-6) / config_.gradient_clipping;
      if (clip > 1) factor = 1.0 / (clip * scale);
    }
  }
  const auto betas =
      schedule_->betas().value_or(std::make_pair(config_.optimizer.adam.beta1, config_.optimizer.adam.beta2));
  const std::int64_t n = opt_grads.numel();
  if (host_adam_) {
    RETURN_IF_ERROR(host_adam_->Step(opt_grads.narrow(0, 0, host_elems_), schedule_->lr(), betas.first, betas.second,
                                     static_cast<float>(factor)));
  }
  if (adam_) {
    // The new values of the device part go to the compute dtype in the same pass (stage 3
    // writes its own master's).
    const at::Tensor rest = opt_params_.narrow(0, host_elems_, n - host_elems_);
    const bool write_back = !(stage3_ && !host_adam_) && !master_.is_same(rest);
    RETURN_IF_ERROR(adam_->Step(opt_grads.narrow(0, host_elems_, n - host_elems_), schedule_->lr(), betas.first,
                                betas.second, static_cast<float>(factor), write_back ? rest : at::Tensor(),
                                device_factor));
  }
  if (stage3_) {
    RETURN_IF_ERROR(stage3_->AfterStep(/*applied=*/true));
    stage3_->ZeroGrads();
    schedule_->Step();
    return scaler_.Update(/*overflow=*/false);
  }
  if (config_.zero_optimization.stage >= 1) RETURN_IF_ERROR(AllGatherUpdated());
  schedule_->Step();
  reducer_->ZeroGrads();
  return scaler_.Update(/*overflow=*/false);
}

// Every rank's updated shard to every rank: one in-place all-gather when it fits
// allgather_bucket_size, else chunk by chunk through a buffer; or, with allgather_partitions
// false, one broadcast per shard (DeepSpeed's alternative).
absl::Status Engine::AllGatherUpdated() {
  const int world = comm_->world_size();
  if (world == 1) return absl::OkStatus();
  const std::int64_t s = layout_.shard_size();
  const int me = comm_->rank();
  const ZeroConfig& z = config_.zero_optimization;
  if (!z.allgather_partitions) {
    std::vector<std::unique_ptr<CommWork>> works;
    for (int r = 0; r < world; ++r) {
      ASSIGN_OR_RETURN(auto w, comm_->Broadcast(flat_.narrow(0, r * s, s), r));
      works.push_back(std::move(w));
    }
    for (auto& w : works) RETURN_IF_ERROR(w->Wait());
    return absl::OkStatus();
  }
  if (layout_.padded() <= z.allgather_bucket_size) {
    ASSIGN_OR_RETURN(auto w, comm_->AllGather(flat_, flat_.narrow(0, me * s, s)));
    return w->Wait();
  }
  const std::int64_t chunk = std::max<std::int64_t>(1, z.allgather_bucket_size / world);
  for (const Range c : PlanChunks(s, chunk)) {
    at::Tensor gathered;
    RETURN_IF_ERROR(CallTorch("all-gather buffer", [&] { gathered = at::empty({c.size() * world}, flat_.options()); }));
    ASSIGN_OR_RETURN(auto w, comm_->AllGather(gathered, flat_.narrow(0, me * s + c.begin, c.size())));
    RETURN_IF_ERROR(w->Wait());
    RETURN_IF_ERROR(CallTorch("scatter gathered chunk", [&] {
      for (int r = 0; r < world; ++r) {
        if (r != me) flat_.narrow(0, r * s + c.begin, c.size()).copy_(gathered.narrow(0, r * c.size(), c.size()));
      }
    }));
  }
  return absl::OkStatus();
}

std::int64_t Engine::ParameterBytes() const { return stage3_ ? stage3_->ParameterBytes() : flat_.nbytes(); }

absl::StatusOr<std::unique_ptr<GatheredParameters>> Engine::GatherParameters(int modifier_rank) {
  if (modifier_rank >= comm_->world_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("GatherParameters: modifier rank ", modifier_rank, " of ", comm_->world_size()));
  }
  if (stage3_) RETURN_IF_ERROR(stage3_->GatherAll());
  return std::unique_ptr<GatheredParameters>(new GatheredParameters(this, modifier_rank));
}

absl::Status Engine::ReleaseGathered(int modifier_rank) {
  if (stage3_) RETURN_IF_ERROR(stage3_->ReleaseAll(modifier_rank));
  if (modifier_rank < 0) return absl::OkStatus();
  if (!stage3_ && comm_->world_size() > 1) {
    ASSIGN_OR_RETURN(auto w, comm_->Broadcast(flat_, modifier_rank));
    RETURN_IF_ERROR(w->Wait());
  }
  return ReloadMaster();
}

GatheredParameters::~GatheredParameters() {
  if (released_) return;
  absl::Status s = Release();
  if (!s.ok()) ZT_LOG(ERROR) << "releasing gathered parameters: " << s;
}

absl::Status GatheredParameters::Release() {
  if (released_) return absl::OkStatus();
  released_ = true;
  return engine_->ReleaseGathered(modifier_rank_);
}

absl::StatusOr<std::map<std::string, at::Tensor>> Engine::ConsolidatedStateDict() {
  if (stage3_ && !config_.zero_optimization.gather_16bit_weights_on_model_save) {
    return absl::FailedPreconditionError(
        absl::StrCat(config_.source,
                     ": at ZeRO stage 3 the full weights are gathered for saving only with "
                     "\"zero_optimization.stage3_gather_16bit_weights_on_model_save\": true"));
  }
  ASSIGN_OR_RETURN(auto scope, GatherParameters());
  std::map<std::string, at::Tensor> out;
  RETURN_IF_ERROR(CallTorch("copy the weights", [&] {
    for (const auto& item : model_->named_parameters(/*recurse=*/true))
      out[item.key()] = item.value().detach().cpu().clone();
  }));
  RETURN_IF_ERROR(scope->Release());
  return out;
}

absl::Status Engine::Barrier() {
  if (stage3_) return stage3_->Sync(SyncPoint::kBarrier);
  return comm_->Barrier();
}

absl::Status Engine::Shutdown() {
  RETURN_IF_ERROR(stage3_ ? stage3_->Sync(SyncPoint::kShutdown) : comm_->Barrier());
  // deepspeed.comm.log_summary(): rank 0's table.
  if (comms_logger_ && config_.comms_logger.enabled && comm_->rank() == 0) {
    monitor::PrintLine(absl::StrCat("communication (rank 0, comms_logger):\n", comms_logger_->Summary()));
  }
  return absl::OkStatus();
}

}  // namespace zt
