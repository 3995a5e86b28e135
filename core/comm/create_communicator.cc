// Communicator::Create: rendezvous and backend choice.
#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/comm/communicator.h"
#include "core/comm/gloo_communicator.h"
#include "core/comm/rendezvous_error.h"
#include "core/util/logging.h"
#include "core/util/torch_status.h"
#ifdef ZT_CUDA
#include <ATen/Context.h>

#include "core/comm/nccl_communicator.h"
#endif

namespace zt {
namespace {

// A positive number of seconds from `name`, if set.
absl::Status ReadSeconds(const char* name, std::chrono::milliseconds& out) {
  const char* t = std::getenv(name);
  if (t == nullptr || *t == '\0') return absl::OkStatus();
  double seconds = 0;
  if (!absl::SimpleAtod(t, &seconds) || !(seconds > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(name, "='", t, "' is not a positive number of seconds"));
  }
  out = std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
  return absl::OkStatus();
}

// Both Create()s apply it: the store's connection needs the rendezvous limit before the backend
// exists.  Applying it twice gives the same options.
absl::StatusOr<CommOptions> WithEnvTimeouts(CommOptions options) {
  if (auto s = ReadSeconds("ZT_COMM_TIMEOUT_S", options.timeout); !s.ok()) return s;
  if (auto s = ReadSeconds("ZT_RENDEZVOUS_TIMEOUT_S", options.rendezvous_timeout); !s.ok()) return s;
  return options;
}

// torchrun's agent store counts no ranks for us (its server is not ours to make wait): count
// them here, as a TCPStore server's waitWorkers does, so that every backend (NCCL connects only
// at its first collective) learns of a missing rank within the rendezvous limit.
absl::Status WaitForEveryRank(const c10::intrusive_ptr<c10d::Store>& store, const CommOptions& options) {
  const RankInfo& info = options.rank;
  const auto started = std::chrono::steady_clock::now();
  absl::Status s = CallTorch("count the ranks in the store", [&] {
    if (store->add("zt/arrived", 1) == info.world_size) store->set("zt/all_arrived", std::vector<uint8_t>{1});
    store->wait({"zt/all_arrived"}, options.rendezvous_timeout);
  });
  if (s.ok() || !IsTimeout(s.message(), started, options.rendezvous_timeout)) return s;
  return RendezvousTimeoutError(info, options.rendezvous_timeout, "not every rank arrived", s.message());
}

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::FromEnv(CommBackend backend) {
  auto info = RankInfoFromEnv();
  if (!info.ok()) return info.status();
  CommOptions options;
  options.rank = *std::move(info);
  options.backend = backend;
  return Create(options);
}

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::Create(const CommOptions& given) {
  auto options = WithEnvTimeouts(given);
  if (!options.ok()) return options.status();
  const RankInfo& info = options->rank;
  if (info.world_size == 1) return Create(*options, c10::make_intrusive<c10d::HashStore>());
  // Rank 0 serves the store, unless a launcher does (torchrun's agent); every rank (rank 0
  // included) connects to it.  Only the store's own server waits for the workers: the agent's
  // store counts no ranks for us (WaitForEveryRank does).  Connecting, and the server's wait,
  // are bounded by the rendezvous limit.
  const std::string where =
      absl::StrCat("rank ", info.rank, ": rendezvous at ", info.master_addr, ":", info.master_port);
  const auto started = std::chrono::steady_clock::now();
  auto tcp = CallTorch(where, [&] {
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(info.master_port);
    opts.isServer = info.rank == 0 && !info.store_is_external;
    opts.numWorkers = info.world_size;
    opts.waitWorkers = !info.store_is_external;
    opts.timeout = options->rendezvous_timeout;
    return c10::make_intrusive<c10d::TCPStore>(info.master_addr, opts);
  });
  if (!tcp.ok()) {
    if (!IsTimeout(tcp.status().message(), started, options->rendezvous_timeout)) return tcp.status();
    const bool serving = info.rank == 0 && !info.store_is_external;
    return RendezvousTimeoutError(info, options->rendezvous_timeout,
                                  serving                  ? "not every rank arrived"
                                  : info.store_is_external ? "torchrun's agent serves no store there"
                                                           : "rank 0 serves no store there",
                                  absl::StripPrefix(tcp.status().message(), where + ": "));
  }
  // What waits on the store from now on (NCCL's first collective, side channels) waits like a
  // collective; Gloo's connection passes the rendezvous limit to each of its waits.
  (*tcp)->setTimeout(options->timeout);
  c10::intrusive_ptr<c10d::Store> store = *std::move(tcp);
  if (!info.store_prefix.empty()) store = c10::make_intrusive<c10d::PrefixStore>(info.store_prefix, store);
  if (info.store_is_external) {
    if (absl::Status s = WaitForEveryRank(store, *options); !s.ok()) return s;
  }
  return Create(*options, std::move(store));
}

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::Create(const CommOptions& given,
                                                                   c10::intrusive_ptr<c10d::Store> store) {
  auto options = WithEnvTimeouts(given);
  if (!options.ok()) return options.status();
  CommBackend backend = options->backend;
#ifdef ZT_CUDA
  if (backend == CommBackend::kAuto) backend = at::hasCUDA() ? CommBackend::kNccl : CommBackend::kGloo;
  if (backend == CommBackend::kNccl) return CreateNcclCommunicator(*options, std::move(store));
#else
  if (backend == CommBackend::kNccl) {
    return absl::FailedPreconditionError("the NCCL backend needs a CUDA build: build with --config=cuda");
  }
#endif
  return CreateGlooCommunicator(*options, std::move(store));
}

}  // namespace zt
