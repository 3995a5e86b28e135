#include "core/comm/gloo_communicator.h"

#include <c10/util/BFloat16.h>
#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/math.h>
#include <gloo/reduce.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>
#include <gloo/types.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/comm/rendezvous_error.h"
#include "core/util/logging.h"
#include "core/util/torch_status.h"

namespace zt {
namespace {

// Gloo's rendezvous talks to a gloo::rendezvous::Store; this one forwards to c10d's store.
// Every wait, and every get (which waits for its key), is bounded by the rendezvous limit, not
// the store's own timeout (a collective's, once Create() made the store).
class C10dStoreAdapter : public gloo::rendezvous::Store {
 public:
  C10dStoreAdapter(c10::intrusive_ptr<c10d::Store> store, std::chrono::milliseconds timeout)
      : store_(std::move(store)), timeout_(timeout) {}
  void set(const std::string& key, const std::vector<char>& data) override {
    store_->set(key, std::vector<uint8_t>(data.begin(), data.end()));
  }
  std::vector<char> get(const std::string& key) override {
    store_->wait({key}, timeout_);
    std::vector<uint8_t> v = store_->get(key);
    return std::vector<char>(v.begin(), v.end());
  }
  void wait(const std::vector<std::string>& keys) override { store_->wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override {
    store_->wait(keys, timeout);
  }

 private:
  c10::intrusive_ptr<c10d::Store> store_;
  std::chrono::milliseconds timeout_;
};

using ReduceFn = void (*)(void*, const void*, const void*, std::size_t);

// bfloat16 has no Gloo math: reduce element by element in float, round once per pair.
template <typename Op>
void Bf16Reduce(void* c, const void* a, const void* b, std::size_t n) {
  auto* out = static_cast<c10::BFloat16*>(c);
  const auto* x = static_cast<const c10::BFloat16*>(a);
  const auto* y = static_cast<const c10::BFloat16*>(b);
  for (std::size_t i = 0; i < n; ++i) out[i] = c10::BFloat16(Op()(static_cast<float>(x[i]), static_cast<float>(y[i])));
}
struct SumOp {
  float operator()(float a, float b) const { return a + b; }
};
struct MaxOp {
  float operator()(float a, float b) const { return a > b ? a : b; }
};
struct MinOp {
  float operator()(float a, float b) const { return a < b ? a : b; }
};

template <typename T>
ReduceFn GlooFn(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return &gloo::sum<T>;
    case ReduceOp::kMax:
      return &gloo::max<T>;
    case ReduceOp::kMin:
      return &gloo::min<T>;
  }
  return nullptr;
}

// The element type Gloo sees for a tensor dtype, and its reduction.
struct TypedFn {
  std::size_t element_size = 0;
  ReduceFn fn = nullptr;
};

absl::StatusOr<TypedFn> ReductionFor(at::ScalarType type, ReduceOp op) {
  switch (type) {
    case at::kFloat:
      return TypedFn{sizeof(float), GlooFn<float>(op)};
    case at::kDouble:
      return TypedFn{sizeof(double), GlooFn<double>(op)};
    case at::kInt:
      return TypedFn{sizeof(int32_t), GlooFn<int32_t>(op)};
    case at::kLong:
      return TypedFn{sizeof(int64_t), GlooFn<int64_t>(op)};
    case at::kByte:
      return TypedFn{sizeof(uint8_t), GlooFn<uint8_t>(op)};
    case at::kHalf:
      return TypedFn{sizeof(gloo::float16), GlooFn<gloo::float16>(op)};
    case at::kBFloat16:
      switch (op) {
        case ReduceOp::kSum:
          return TypedFn{2, &Bf16Reduce<SumOp>};
        case ReduceOp::kMax:
          return TypedFn{2, &Bf16Reduce<MaxOp>};
        case ReduceOp::kMin:
          return TypedFn{2, &Bf16Reduce<MinOp>};
      }
      break;
    default:
      break;
  }
  return absl::InvalidArgumentError(absl::StrCat("gloo: no reduction for dtype ", c10::toString(type)));
}

// Gloo's options take typed pointers only to learn the element size; reductions see raw bytes.
// These element types have the right sizes.
template <std::size_t N>
struct Bytes {
  unsigned char b[N];
};

class GlooWork : public CommWork {
 public:
  explicit GlooWork(std::shared_future<absl::Status> done) : done_(std::move(done)) {}
  absl::Status Wait() override { return done_.get(); }

 private:
  std::shared_future<absl::Status> done_;
};

class GlooCommunicator : public Communicator {
 public:
  GlooCommunicator(RankInfo info, c10::intrusive_ptr<c10d::Store> store, std::shared_ptr<gloo::Context> context,
                   std::chrono::milliseconds timeout)
      : Communicator(std::move(info)), store_(std::move(store)), context_(std::move(context)), timeout_(timeout) {
    worker_ = std::thread([this] { Run(); });
  }

  ~GlooCommunicator() override {
    if (!shut_down_) {
      ZT_LOG(WARNING) << Where() << ": communicator destroyed without Shutdown()";
      StopWorker();
    }
  }

  CommBackend backend() const override { return CommBackend::kGloo; }

  absl::StatusOr<std::unique_ptr<CommWork>> AllReduce(at::Tensor t, ReduceOp op) override {
    if (auto s = CheckCpu(t, "all-reduce"); !s.ok()) return s;
    auto fn = ReductionFor(t.scalar_type(), op);
    if (!fn.ok()) return Annotate(fn.status(), "all-reduce");
    Count(stats_.all_reduce_bytes, t.nbytes());
    return Submit(
        "all-reduce",
        [this, t, f = *fn](uint32_t tag) {
          gloo::AllreduceOptions opts(context_);
          SetOutput(opts, t.data_ptr(), t.numel(), f.element_size);
          opts.setReduceFunction(f.fn);
          opts.setTag(tag);
          opts.setTimeout(timeout_);
          gloo::allreduce(opts);
        },
        t.numel() == 0);
  }

  absl::StatusOr<std::unique_ptr<CommWork>> Reduce(at::Tensor t, int root, ReduceOp op) override {
    if (auto s = CheckCpu(t, "reduce"); !s.ok()) return s;
    if (auto s = CheckRoot(root, "reduce"); !s.ok()) return s;
    auto fn = ReductionFor(t.scalar_type(), op);
    if (!fn.ok()) return Annotate(fn.status(), "reduce");
    Count(stats_.reduce_bytes, t.nbytes());
    return Submit(
        "reduce",
        [this, t, root, f = *fn](uint32_t tag) {
          gloo::ReduceOptions opts(context_);
          SetOutput(opts, t.data_ptr(), t.numel(), f.element_size);
          opts.setRoot(root);
          opts.setReduceFunction(f.fn);
          opts.setTag(tag);
          opts.setTimeout(timeout_);
          gloo::reduce(opts);
        },
        t.numel() == 0);
  }

  absl::StatusOr<std::unique_ptr<CommWork>> ReduceScatter(at::Tensor out, at::Tensor in, ReduceOp op) override {
    if (auto s = CheckCpu(out, "reduce-scatter"); !s.ok()) return s;
    if (auto s = CheckCpu(in, "reduce-scatter"); !s.ok()) return s;
    if (in.numel() != out.numel() * world_size() || in.scalar_type() != out.scalar_type()) {
      return absl::InvalidArgumentError(absl::StrCat(
          Where(), ": reduce-scatter input has ", in.numel(), " ", c10::toString(in.scalar_type()),
          " elements, expected ", world_size(), " x ", out.numel(), " ", c10::toString(out.scalar_type())));
    }
    auto fn = ReductionFor(in.scalar_type(), op);
    if (!fn.ok()) return Annotate(fn.status(), "reduce-scatter");
    Count(stats_.reduce_scatter_bytes, in.nbytes());
    const int r = rank();
    return Submit(
        "reduce-scatter",
        [this, out, in, r, f = *fn](uint32_t tag) {
          // No flat reduce-scatter in Gloo: all-reduce a copy, keep this rank's chunk.
          at::Tensor tmp = in.clone();
          gloo::AllreduceOptions opts(context_);
          SetOutput(opts, tmp.data_ptr(), tmp.numel(), f.element_size);
          opts.setReduceFunction(f.fn);
          opts.setTag(tag);
          opts.setTimeout(timeout_);
          gloo::allreduce(opts);
          out.view(-1).copy_(tmp.view(-1).narrow(0, r * out.numel(), out.numel()));
        },
        in.numel() == 0);
  }

  absl::StatusOr<std::unique_ptr<CommWork>> AllGather(at::Tensor out, at::Tensor in) override {
    if (auto s = CheckCpu(out, "all-gather"); !s.ok()) return s;
    if (auto s = CheckCpu(in, "all-gather"); !s.ok()) return s;
    if (out.numel() != in.numel() * world_size() || in.scalar_type() != out.scalar_type()) {
      return absl::InvalidArgumentError(
          absl::StrCat(Where(), ": all-gather output has ", out.numel(), " ", c10::toString(out.scalar_type()),
                       " elements, expected ", world_size(), " x ", in.numel(), " ", c10::toString(in.scalar_type())));
    }
    Count(stats_.all_gather_bytes, out.nbytes());
    const std::size_t chunk = in.nbytes();
    auto* own = static_cast<unsigned char*>(out.data_ptr()) + rank() * chunk;
    const bool in_place = in.data_ptr() == own;
    return Submit(
        "all-gather",
        [this, out, in, chunk, in_place](uint32_t tag) {
          gloo::AllgatherOptions opts(context_);
          // Without an input Gloo gathers in place: this rank's chunk of the output is its input.
          if (!in_place) opts.setInput(static_cast<unsigned char*>(in.data_ptr()), chunk);
          opts.setOutput(static_cast<unsigned char*>(out.data_ptr()), out.nbytes());
          opts.setTag(tag);
          opts.setTimeout(timeout_);
          gloo::allgather(opts);
        },
        out.numel() == 0);
  }

  absl::StatusOr<std::unique_ptr<CommWork>> Broadcast(at::Tensor t, int root) override {
    if (auto s = CheckCpu(t, "broadcast"); !s.ok()) return s;
    if (auto s = CheckRoot(root, "broadcast"); !s.ok()) return s;
    Count(stats_.broadcast_bytes, t.nbytes());
    return Submit(
        "broadcast",
        [this, t, root](uint32_t tag) {
          gloo::BroadcastOptions opts(context_);
          opts.setOutput(static_cast<unsigned char*>(t.data_ptr()), t.nbytes());
          opts.setRoot(root);
          opts.setTag(tag);
          opts.setTimeout(timeout_);
          gloo::broadcast(opts);
        },
        t.numel() == 0);
  }

  absl::Status Barrier() override {
    auto work = Submit("barrier", [this](uint32_t tag) {
      gloo::BarrierOptions opts(context_);
      opts.setTag(tag);
      opts.setTimeout(timeout_);
      gloo::barrier(opts);
    });
    if (!work.ok()) return work.status();
    return (*work)->Wait();
  }

  absl::StatusOr<std::unique_ptr<Communicator>> CreateCpuChannel(const std::string& name) override {
    return CpuChannelOver(store_, name, timeout_);
  }

  absl::Status Shutdown() override {
    if (shut_down_) return absl::OkStatus();
    StopWorker();
    context_.reset();
    store_.reset();
    shut_down_ = true;
    return absl::OkStatus();
  }

 private:
  struct Task {
    std::string what;
    std::function<void(uint32_t)> run;
    std::promise<absl::Status> done;
  };

  absl::Status CheckCpu(const at::Tensor& t, const char* what) const {
    if (auto s = CheckTensor(t, what); !s.ok()) return s;
    if (!t.device().is_cpu()) {
      return absl::InvalidArgumentError(
          absl::StrCat(Where(), ": ", what, " of a ", t.device().str(), " tensor; the Gloo backend takes CPU tensors"));
    }
    return absl::OkStatus();
  }

  absl::Status Annotate(const absl::Status& s, const char* what) const {
    return absl::Status(s.code(), absl::StrCat(Where(), ": ", what, ": ", s.message()));
  }

  template <typename Opts>
  static void SetOutput(Opts& opts, void* ptr, std::int64_t n, std::size_t element_size) {
    switch (element_size) {
      case 1:
        opts.setOutput(static_cast<Bytes<1>*>(ptr), n);
        break;
      case 2:
        opts.setOutput(static_cast<Bytes<2>*>(ptr), n);
        break;
      case 4:
        opts.setOutput(static_cast<Bytes<4>*>(ptr), n);
        break;
      default:
        opts.setOutput(static_cast<Bytes<8>*>(ptr), n);
        break;
    }
  }

  absl::StatusOr<std::unique_ptr<CommWork>> Submit(const char* what, std::function<void(uint32_t)> run,
                                                   bool empty = false) {
    if (empty) {  // nothing to move: Gloo's algorithms divide by the size, so do not call them
      std::promise<absl::Status> done;
      done.set_value(absl::OkStatus());
      return std::unique_ptr<CommWork>(new GlooWork(done.get_future().share()));
    }
    Task task{what, std::move(run), {}};
    std::shared_future<absl::Status> done = task.done.get_future().share();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) {
        return absl::FailedPreconditionError(absl::StrCat(Where(), ": ", what, " after Shutdown()"));
      }
      queue_.push_back(std::move(task));
    }
    cv_.notify_one();
    return std::unique_ptr<CommWork>(new GlooWork(std::move(done)));
  }

  void Run() {
    uint32_t tag = 0;
    for (;;) {
      Task task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      absl::Status status;
      if (failed_.ok()) {
        try {
          task.run(tag++);
        } catch (const std::exception& e) {
          const std::string msg = e.what();
          const bool timed_out = absl::StrContains(msg, "Timed out") || absl::StrContains(msg, "timed out");
          status = absl::Status(timed_out ? absl::StatusCode::kDeadlineExceeded : absl::StatusCode::kUnavailable,
                                absl::StrCat(Where(), ": gloo ", task.what, " failed: ", msg));
          // A failed collective leaves the peers out of step: later ones fail fast.
          failed_ = status;
        }
      } else {
        status = absl::Status(
            failed_.code(),
            absl::StrCat(Where(), ": ", task.what, " not run: an earlier collective failed: ", failed_.message()));
      }
      task.done.set_value(status);
    }
  }

  void StopWorker() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
  }

  // Kept for the communicator's life: on rank 0 the TCPStore is the rendezvous server, which
  // must outlive the other ranks' rendezvous.
  c10::intrusive_ptr<c10d::Store> store_;
  std::shared_ptr<gloo::Context> context_;
  std::chrono::milliseconds timeout_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> queue_;  // guarded by mu_
  bool stopping_ = false;   // guarded by mu_
  absl::Status failed_;     // worker thread only
  bool shut_down_ = false;
  std::thread worker_;
};

// The address this rank's Gloo device listens on.  GLOO_SOCKET_IFNAME picks an interface (as in
// PyTorch); a job on one node uses loopback; otherwise the host name must resolve to an address
// the other nodes reach.
gloo::transport::tcp::attr DeviceAttr(const RankInfo& info) {
  gloo::transport::tcp::attr attr;
  if (const char* iface = std::getenv("GLOO_SOCKET_IFNAME"); iface != nullptr && *iface != '\0') {
    attr.iface = iface;
  } else if (info.local_world_size >= info.world_size) {
    attr.hostname = "127.0.0.1";
  } else {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    attr.hostname = host;
  }
  return attr;
}

}  // namespace

// Declared in communicator.h; defined here because every side channel is a Gloo communicator.
absl::StatusOr<std::unique_ptr<Communicator>> Communicator::CpuChannelOver(const c10::intrusive_ptr<c10d::Store>& store,
                                                                           const std::string& name,
                                                                           std::chrono::milliseconds timeout) {
  if (!store) return absl::FailedPreconditionError(absl::StrCat(Where(), ": no store for a side channel"));
  CommOptions o;
  o.rank = info_;
  o.backend = CommBackend::kGloo;
  o.timeout = timeout;
  // Ranks reach a side channel mid-job, as far apart as they reach a collective.
  o.rendezvous_timeout = timeout;
  const std::string prefix = absl::StrCat("zt/channel/", name, "/", channels_created_++);
  return CreateGlooCommunicator(o, c10::make_intrusive<c10d::PrefixStore>(prefix, store));
}

// The tag of the barrier that ends the connection; collectives count their tags up from 0.
constexpr uint32_t kConnectedTag = 0xFFFFFFFFu;

absl::StatusOr<std::unique_ptr<Communicator>> CreateGlooCommunicator(const CommOptions& options,
                                                                     c10::intrusive_ptr<c10d::Store> store) {
  const RankInfo& info = options.rank;
  const gloo::transport::tcp::attr attr = DeviceAttr(info);
  const auto started = std::chrono::steady_clock::now();
  try {
    auto device = gloo::transport::tcp::CreateDevice(attr);
    auto context = std::make_shared<gloo::rendezvous::Context>(info.rank, info.world_size);
    // The connection is part of the rendezvous: a rank that never comes fails it within the
    // rendezvous limit.  Collectives pass their own timeout; the context's default is theirs too.
    context->setTimeout(options.rendezvous_timeout);
    C10dStoreAdapter adapter(c10::make_intrusive<c10d::PrefixStore>("zt/gloo", store), options.rendezvous_timeout);
    context->connectFullMesh(adapter, device);
    // Nobody returns before everybody is connected: a rank whose first collectives are no-ops
    // (empty tensors) could otherwise close its sockets while a peer still completes its side
    // of the mesh, which then fails with "Connection closed by peer".
    gloo::BarrierOptions connected(context);
    connected.setTag(kConnectedTag);
    connected.setTimeout(options.rendezvous_timeout);
    gloo::barrier(connected);
    context->setTimeout(options.timeout);
    return std::unique_ptr<Communicator>(
        new GlooCommunicator(info, std::move(store), std::move(context), options.timeout));
  } catch (const std::exception& e) {
    // A store's c10::Error passes through Gloo: its message without LibTorch's backtrace.
    const std::string cause(StatusFromException(e, "").message());
    const std::string listening = attr.iface.empty() ? attr.hostname : "interface " + attr.iface;
    const char* several_nodes = ". On several nodes, set GLOO_SOCKET_IFNAME to the network interface the nodes share.";
    if (IsTimeout(cause, started, options.rendezvous_timeout)) {
      return RendezvousTimeoutError(info, options.rendezvous_timeout, "not every rank arrived",
                                    absl::StrCat("gloo (listening on ", listening, "): ", cause,
                                                 info.local_world_size < info.world_size ? several_nodes : ""));
    }
    return absl::UnavailableError(absl::StrCat("rank ", info.rank, " of ", info.world_size,
                                               " (gloo): cannot connect to the other ranks (listening on ", listening,
                                               "): ", cause, several_nodes));
  }
}

}  // namespace zt
