#include "core/comm/nccl_communicator.h"

#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include <vector>

#include "absl/strings/str_cat.h"
#include "core/util/logging.h"
#include "core/util/torch_status.h"

namespace zt {
namespace {

c10d::ReduceOp ToC10d(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return c10d::ReduceOp::SUM;
    case ReduceOp::kMax:
      return c10d::ReduceOp::MAX;
    case ReduceOp::kMin:
      return c10d::ReduceOp::MIN;
  }
  return c10d::ReduceOp::SUM;
}

class NcclWork : public CommWork {
 public:
  NcclWork(c10::intrusive_ptr<c10d::Work> work, std::string where) : work_(std::move(work)), where_(std::move(where)) {}
  absl::Status Wait() override {
    return CallTorch(where_, [&] { work_->wait(); });
  }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
  std::string where_;
};

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(RankInfo info, c10::intrusive_ptr<c10d::ProcessGroupNCCL> pg, c10::intrusive_ptr<c10d::Store> store,
                   std::chrono::milliseconds timeout)
      : Communicator(std::move(info)), pg_(std::move(pg)), store_(std::move(store)), timeout_(timeout) {}

  ~NcclCommunicator() override {
    if (!shut_down_) ZT_LOG(WARNING) << Where() << ": communicator destroyed without Shutdown()";
  }

  CommBackend backend() const override { return CommBackend::kNccl; }

  absl::StatusOr<std::unique_ptr<CommWork>> AllReduce(at::Tensor t, ReduceOp op) override {
    if (auto s = CheckCuda(t, "all-reduce"); !s.ok()) return s;
    Count(stats_.all_reduce_bytes, t.nbytes());
    return Start("all-reduce", [&] {
      std::vector<at::Tensor> v{t};
      c10d::AllreduceOptions o;
      o.reduceOp = ToC10d(op);
      return pg_->allreduce(v, o);
    });
  }

  absl::StatusOr<std::unique_ptr<CommWork>> Reduce(at::Tensor t, int root, ReduceOp op) override {
    if (auto s = CheckCuda(t, "reduce"); !s.ok()) return s;
    if (auto s = CheckRoot(root, "reduce"); !s.ok()) return s;
    Count(stats_.reduce_bytes, t.nbytes());
    return Start("reduce", [&] {
      std::vector<at::Tensor> v{t};
      c10d::ReduceOptions o;
      o.rootRank = root;
      o.reduceOp = ToC10d(op);
      return pg_->reduce(v, o);
    });
  }

  absl::StatusOr<std::unique_ptr<CommWork>> ReduceScatter(at::Tensor out, at::Tensor in, ReduceOp op) override {
    if (auto s = CheckCuda(out, "reduce-scatter"); !s.ok()) return s;
    if (auto s = CheckCuda(in, "reduce-scatter"); !s.ok()) return s;
    if (in.numel() != out.numel() * world_size()) {
      return absl::InvalidArgumentError(absl::StrCat(Where(), ": reduce-scatter input has ", in.numel(),
                                                     " elements, expected ", world_size(), " x ", out.numel()));
    }
    Count(stats_.reduce_scatter_bytes, in.nbytes());
    return Start("reduce-scatter", [&] {
      c10d::ReduceScatterOptions o;
      o.reduceOp = ToC10d(op);
      at::Tensor o_flat = out.view(-1), i_flat = in.view(-1);
      return pg_->_reduce_scatter_base(o_flat, i_flat, o);
    });
  }

  absl::StatusOr<std::unique_ptr<CommWork>> AllGather(at::Tensor out, at::Tensor in) override {
    if (auto s = CheckCuda(out, "all-gather"); !s.ok()) return s;
    if (auto s = CheckCuda(in, "all-gather"); !s.ok()) return s;
    if (out.numel() != in.numel() * world_size()) {
      return absl::InvalidArgumentError(absl::StrCat(Where(), ": all-gather output has ", out.numel(),
                                                     " elements, expected ", world_size(), " x ", in.numel()));
    }
    Count(stats_.all_gather_bytes, out.nbytes());
    return Start("all-gather", [&] {
      at::Tensor o_flat = out.view(-1), i_flat = in.view(-1);
      return pg_->_allgather_base(o_flat, i_flat);
    });
  }

  absl::StatusOr<std::unique_ptr<CommWork>> Broadcast(at::Tensor t, int root) override {
    if (auto s = CheckCuda(t, "broadcast"); !s.ok()) return s;
    if (auto s = CheckRoot(root, "broadcast"); !s.ok()) return s;
    Count(stats_.broadcast_bytes, t.nbytes());
    return Start("broadcast", [&] {
      std::vector<at::Tensor> v{t};
      c10d::BroadcastOptions o;
      o.rootRank = root;
      return pg_->broadcast(v, o);
    });
  }

  absl::Status Barrier() override {
    auto w = Start("barrier", [&] { return pg_->barrier(); });
    if (!w.ok()) return w.status();
    return (*w)->Wait();
  }

  absl::StatusOr<std::unique_ptr<Communicator>> CreateCpuChannel(const std::string& name) override {
    return CpuChannelOver(store_, name, timeout_);
  }

  absl::Status Shutdown() override {
    if (shut_down_) return absl::OkStatus();
    shut_down_ = true;
    store_.reset();
    return CallTorch(Where() + ": shutdown", [&] { pg_->shutdown(); });
  }

 private:
  absl::Status CheckCuda(const at::Tensor& t, const char* what) const {
    if (auto s = CheckTensor(t, what); !s.ok()) return s;
    if (!t.is_cuda()) {
      return absl::InvalidArgumentError(absl::StrCat(Where(), ": ", what, " of a ", t.device().str(),
                                                     " tensor; the NCCL backend takes CUDA tensors"));
    }
    return absl::OkStatus();
  }

  template <typename F>
  absl::StatusOr<std::unique_ptr<CommWork>> Start(const char* what, F&& start) {
    std::string where = absl::StrCat(Where(), ": nccl ", what);
    auto work = CallTorch(where, std::forward<F>(start));
    if (!work.ok()) return work.status();
    return std::unique_ptr<CommWork>(new NcclWork(*std::move(work), std::move(where)));
  }

  c10::intrusive_ptr<c10d::ProcessGroupNCCL> pg_;
  c10::intrusive_ptr<c10d::Store> store_;  // for side channels
  std::chrono::milliseconds timeout_;
  bool shut_down_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(const CommOptions& options,
                                                                     c10::intrusive_ptr<c10d::Store> store) {
  const RankInfo& info = options.rank;
  const std::string where = absl::StrCat("rank ", info.rank, " of ", info.world_size, " (nccl)");
  const int devices = c10::cuda::device_count();
  if (info.local_rank >= devices) {
    return absl::FailedPreconditionError(
        absl::StrCat(where, ": LOCAL_RANK ", info.local_rank, " but this node has ", devices, " CUDA devices"));
  }
  auto pg = CallTorch(where + ": create ProcessGroupNCCL", [&] {
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(info.local_rank));
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = options.timeout;
    return c10::make_intrusive<c10d::ProcessGroupNCCL>(c10::make_intrusive<c10d::PrefixStore>("zt/nccl", store),
                                                       info.rank, info.world_size, opts);
  });
  if (!pg.ok()) return pg.status();
  return std::unique_ptr<Communicator>(new NcclCommunicator(info, *std::move(pg), std::move(store), options.timeout));
}

}  // namespace zt
