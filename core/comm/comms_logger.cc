#include "core/comm/comms_logger.h"

#include <c10/core/Device.h>
#include <c10/core/DeviceType.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/util/logging.h"
#include "core/util/spelling.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"

namespace zt {
namespace {

// The work of a profiled op: it already finished when the wrapper returns it.
class CompletedWork : public CommWork {
 public:
  explicit CompletedWork(absl::Status status) : status_(std::move(status)) {}
  absl::Status Wait() override { return status_; }

 private:
  absl::Status status_;
};

// Blocks until every stream of t's CUDA device is idle; nothing for other devices.  Through
// c10's device-guard registry, so this file needs no CUDA headers and links in CPU builds.
absl::Status SyncDevice(const at::Tensor& t) {
  if (!t.defined() || !t.is_cuda()) return absl::OkStatus();
  return CallTorch("comms_logger: synchronize the CUDA device", [&] {
    const c10::impl::DeviceGuardImplInterface* impl = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA);
    c10::DeviceIndex index = t.device().index();
    if (index < 0) index = impl->getDevice().index();
    impl->synchronizeDevice(index);
  });
}

// 1024-based, as DeepSpeed's convert_size: "512 B", "11.72 KB", "8.0 MB".
std::string HumanSize(std::int64_t bytes) {
  static const char* const kUnits[] = {"B", "KB", "MB", "GB", "TB", "PB", "EB"};
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  double v = static_cast<double>(bytes);
  int i = 0;
  while (v >= 1024.0 && i < 6) {
    v /= 1024.0;
    ++i;
  }
  // Python's repr of round(v, 2): at most two decimals, at least one.
  std::string s = absl::StrFormat("%.2f", std::round(v * 100.0) / 100.0);
  while (s.size() > 1 && s.back() == '0' && s[s.size() - 2] != '.') s.pop_back();
  return absl::StrCat(s, " ", kUnits[i]);
}

double GBps(std::int64_t bytes, double seconds) {
  return seconds > 0 ? static_cast<double>(bytes) / seconds / 1e9 : 0.0;
}

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

const char* LoggingCommunicator::OpName(Op op) {
  switch (op) {
    case kAllReduce:
      return "all_reduce";
    case kReduce:
      return "reduce";
    case kReduceScatter:
      return "reduce_scatter";
    case kAllGather:
      return "all_gather";
    case kBroadcast:
      return "broadcast";
    case kBarrier:
      return "barrier";
    case kNumOps:
      break;
  }
  return "?";
}

double LoggingCommunicator::BusFactor(Op op) const {
  const double n = world_size();
  switch (op) {
    case kAllReduce:
      return 2.0 * (n - 1) / n;
    case kReduceScatter:
    case kAllGather:
      return (n - 1) / n;
    case kReduce:
    case kBroadcast:
      return 1.0;
    case kBarrier:
    case kNumOps:
      break;
  }
  return 0.0;
}

absl::StatusOr<std::unique_ptr<LoggingCommunicator>> LoggingCommunicator::Create(std::shared_ptr<Communicator> inner,
                                                                                 const Options& options) {
  if (inner == nullptr) return absl::InvalidArgumentError("comms_logger: no communicator to wrap");
  // deepspeed.comm's timed function names, and the shorter names of the same ops.  Its ops this
  // communicator never runs (all-to-all, point-to-point, gather, scatter) are accepted so that
  // DeepSpeed's configs load unchanged; they have nothing to record (kNumOps).
  static const std::vector<std::pair<std::string, Op>> kNames = {
      {"all_reduce", kAllReduce},
      {"all_reduce_coalesced", kAllReduce},
      {"inference_all_reduce", kAllReduce},
      {"reduce", kReduce},
      {"reduce_scatter", kReduceScatter},
      {"reduce_scatter_tensor", kReduceScatter},
      {"reduce_scatter_fn", kReduceScatter},
      {"all_gather", kAllGather},
      {"all_gather_into_tensor", kAllGather},
      {"allgather_fn", kAllGather},
      {"all_gather_coalesced", kAllGather},
      {"broadcast", kBroadcast},
      {"barrier", kBarrier},
      {"monitored_barrier", kBarrier},
      {"all_to_all_single", kNumOps},
      {"all_to_all", kNumOps},
      {"send", kNumOps},
      {"recv", kNumOps},
      {"isend", kNumOps},
      {"irecv", kNumOps},
      {"gather", kNumOps},
      {"scatter", kNumOps},
  };
  std::array<bool, kNumOps> profiled{};
  for (const std::string& name : options.prof_ops) {
    auto it = std::find_if(kNames.begin(), kNames.end(), [&](const auto& p) { return p.first == name; });
    if (it == kNames.end()) {
      std::vector<std::string> valid;
      for (const auto& p : kNames) valid.push_back(p.first);
      std::string message =
          absl::StrCat("comms_logger.prof_ops: \"", name, "\" is not a collective of this communicator");
      if (std::string near = ClosestMatch(name, valid); !near.empty()) {
        absl::StrAppend(&message, " (did you mean ", near, "?)");
      }
      absl::StrAppend(&message, "; valid names: ", absl::StrJoin(valid, ", "));
      return absl::InvalidArgumentError(message);
    }
    if (it->second != kNumOps) profiled[it->second] = true;
  }
  if (options.prof_all) profiled.fill(true);
  if (!options.enabled) profiled.fill(false);
  return std::unique_ptr<LoggingCommunicator>(new LoggingCommunicator(std::move(inner), options, profiled));
}

LoggingCommunicator::LoggingCommunicator(std::shared_ptr<Communicator> inner, const Options& options,
                                         std::array<bool, kNumOps> profiled)
    : Communicator(inner->rank_info()), inner_(std::move(inner)), verbose_(options.verbose), profiled_(profiled) {}

template <typename Start>
absl::StatusOr<std::unique_ptr<CommWork>> LoggingCommunicator::Run(Op op, const at::Tensor& device_of,
                                                                   std::int64_t bytes, std::atomic<std::int64_t>& kind,
                                                                   Start start) {
  if (!profiled_[op]) {
    absl::StatusOr<std::unique_ptr<CommWork>> work = start();
    if (work.ok()) Count(kind, bytes);
    return work;
  }
  // Work queued before the op (compute, earlier collectives) must not be charged to it.
  RETURN_IF_ERROR(SyncDevice(device_of));
  const auto t0 = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(std::unique_ptr<CommWork> work, start());
  Count(kind, bytes);
  absl::Status status = work->Wait();               // CUDA: only orders the current stream after the op...
  if (status.ok()) status = SyncDevice(device_of);  // ...so wait for the device itself
  const double seconds = SecondsSince(t0);
  if (status.ok()) RecordOp(op, bytes, seconds);
  return std::unique_ptr<CommWork>(new CompletedWork(std::move(status)));
}

absl::StatusOr<std::unique_ptr<CommWork>> LoggingCommunicator::AllReduce(at::Tensor t, ReduceOp op) {
  const std::int64_t bytes = t.defined() ? t.nbytes() : 0;
  return Run(kAllReduce, t, bytes, stats_.all_reduce_bytes, [&] { return inner_->AllReduce(t, op); });
}

absl::StatusOr<std::unique_ptr<CommWork>> LoggingCommunicator::Reduce(at::Tensor t, int root, ReduceOp op) {
  const std::int64_t bytes = t.defined() ? t.nbytes() : 0;
  return Run(kReduce, t, bytes, stats_.reduce_bytes, [&] { return inner_->Reduce(t, root, op); });
}

absl::StatusOr<std::unique_ptr<CommWork>> LoggingCommunicator::ReduceScatter(at::Tensor out, at::Tensor in,
                                                                             ReduceOp op) {
  const std::int64_t bytes = in.defined() ? in.nbytes() : 0;
  return Run(kReduceScatter, out, bytes, stats_.reduce_scatter_bytes,
             [&] { return inner_->ReduceScatter(out, in, op); });
}

absl::StatusOr<std::unique_ptr<CommWork>> LoggingCommunicator::AllGather(at::Tensor out, at::Tensor in) {
  const std::int64_t bytes = out.defined() ? out.nbytes() : 0;
  return Run(kAllGather, out, bytes, stats_.all_gather_bytes, [&] { return inner_->AllGather(out, in); });
}

absl::StatusOr<std::unique_ptr<CommWork>> LoggingCommunicator::Broadcast(at::Tensor t, int root) {
  const std::int64_t bytes = t.defined() ? t.nbytes() : 0;
  return Run(kBroadcast, t, bytes, stats_.broadcast_bytes, [&] { return inner_->Broadcast(t, root); });
}

absl::Status LoggingCommunicator::Barrier() {
  if (!profiled_[kBarrier]) return inner_->Barrier();
  const auto t0 = std::chrono::steady_clock::now();
  absl::Status status = inner_->Barrier();
  const double seconds = SecondsSince(t0);
  if (status.ok()) RecordOp(kBarrier, 0, seconds);
  return status;
}

absl::StatusOr<std::unique_ptr<Communicator>> LoggingCommunicator::CreateCpuChannel(const std::string& name) {
  return inner_->CreateCpuChannel(name);
}

absl::Status LoggingCommunicator::Shutdown() { return inner_->Shutdown(); }

void LoggingCommunicator::RecordOp(Op op, std::int64_t bytes, double seconds) {
  {
    absl::MutexLock lock(&mu_);
    Cell& c = cells_[op][bytes];
    c.min_s = c.count == 0 ? seconds : std::min(c.min_s, seconds);
    c.max_s = c.count == 0 ? seconds : std::max(c.max_s, seconds);
    ++c.count;
    c.total_s += seconds;
    total_s_ += seconds;
    untaken_s_ += seconds;
  }
  if (!verbose_) return;
  if (op == kBarrier) {
    ZT_LOG(INFO) << absl::StrFormat("rank=%d | comm op: barrier | time (ms): %.2f", rank(), seconds * 1e3);
    return;
  }
  const double algbw = GBps(bytes, seconds);
  ZT_LOG(INFO) << absl::StrFormat(
      "rank=%d | comm op: %s | time (ms): %.2f | msg size: %s | algbw (GB/s): %.2f | busbw (GB/s): %.2f", rank(),
      OpName(op), seconds * 1e3, HumanSize(bytes), algbw, algbw * BusFactor(op));
}

double LoggingCommunicator::TotalSeconds() const {
  absl::MutexLock lock(&mu_);
  return total_s_;
}

double LoggingCommunicator::TakeSeconds() {
  absl::MutexLock lock(&mu_);
  return std::exchange(untaken_s_, 0.0);
}

std::vector<LoggingCommunicator::Record> LoggingCommunicator::Records() const {
  std::vector<Record> rows;
  absl::MutexLock lock(&mu_);
  for (int i = 0; i < kNumOps; ++i) {
    const Op op = static_cast<Op>(i);
    for (const auto& [bytes, c] : cells_[i]) {
      Record r;
      r.op = OpName(op);
      r.bytes = bytes;
      r.count = c.count;
      r.total_s = c.total_s;
      r.min_s = c.min_s;
      r.max_s = c.max_s;
      if (op != kBarrier) {
        r.algbw_gbps = GBps(bytes, c.total_s / c.count);
        r.busbw_gbps = r.algbw_gbps * BusFactor(op);
      }
      rows.push_back(std::move(r));
    }
  }
  return rows;
}

std::string LoggingCommunicator::Summary() const {
  static constexpr int kWidths[] = {16, 14, 14, 8, 19, 17, 10, 10, 14, 14};
  auto row = [](std::string* out, const std::vector<std::string>& cells) {
    std::string line;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      line += cells[i];
      // At least one space between columns, even when a value outgrows its column.
      if (i + 1 < cells.size())
        line.append(std::max<std::size_t>(kWidths[i], cells[i].size() + 1) - cells[i].size(), ' ');
    }
    absl::StrAppend(out, line, "\n");
  };
  std::string out = absl::StrFormat(
      "comms_logger summary, rank %d of %d (%s): sizes in 1024-based units, bandwidth in GB/s (1e9 bytes/s), "
      "busbw as nccl-tests defines it\n",
      rank(), world_size(), CommBackendName(backend()));
  row(&out, {"Comm. Op", "Message Size", "Bytes", "Count", "Total Latency(ms)", "Avg Latency(ms)", "Min(ms)", "Max(ms)",
             "algbw (GB/s)", "busbw (GB/s)"});
  const std::vector<Record> rows = Records();
  if (rows.empty()) absl::StrAppend(&out, "(no profiled collectives)\n");
  auto ms = [](double s) { return absl::StrFormat("%.2f", s * 1e3); };
  for (const Record& r : rows) {
    const bool barrier = r.op == OpName(kBarrier);
    row(&out,
        {r.op, barrier ? "-" : HumanSize(r.bytes), barrier ? "-" : absl::StrCat(r.bytes), absl::StrCat(r.count),
         ms(r.total_s), ms(r.total_s / r.count), ms(r.min_s), ms(r.max_s),
         barrier ? "-" : absl::StrFormat("%.2f", r.algbw_gbps), barrier ? "-" : absl::StrFormat("%.2f", r.busbw_gbps)});
  }
  return out;
}

}  // namespace zt
