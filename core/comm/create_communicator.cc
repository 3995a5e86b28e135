// Communicator::Create: rendezvous and backend choice.
#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/comm/communicator.h"
#include "core/comm/gloo_communicator.h"
#include "core/util/logging.h"
#include "core/util/torch_status.h"
#ifdef ZT_CUDA
#include <ATen/Context.h>

#include "core/comm/nccl_communicator.h"
#endif

namespace zt {
namespace {

absl::StatusOr<CommOptions> WithEnvTimeout(CommOptions options) {
  if (const char* t = std::getenv("ZT_COMM_TIMEOUT_S"); t != nullptr && *t != '\0') {
    double seconds = 0;
    if (!absl::SimpleAtod(t, &seconds) || !(seconds > 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("ZT_COMM_TIMEOUT_S='", t, "' is not a positive number of seconds"));
    }
    options.timeout = std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
  }
  return options;
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

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::Create(const CommOptions& options) {
  const RankInfo& info = options.rank;
  if (info.world_size == 1) return Create(options, c10::make_intrusive<c10d::HashStore>());
  // Rank 0 serves the store, unless a launcher does (torchrun's agent); every rank (rank 0
  // included) connects to it.  Only the store's own server waits for the workers: the agent's
  // store counts no ranks for us, and the backend's connection waits for every rank anyway.
  auto store =
      CallTorch(absl::StrCat("rank ", info.rank, ": rendezvous at ", info.master_addr, ":", info.master_port), [&] {
        c10d::TCPStoreOptions opts;
        opts.port = static_cast<std::uint16_t>(info.master_port);
        opts.isServer = info.rank == 0 && !info.store_is_external;
        opts.numWorkers = info.world_size;
        opts.waitWorkers = !info.store_is_external;
        opts.timeout = options.timeout;
        c10::intrusive_ptr<c10d::Store> tcp = c10::make_intrusive<c10d::TCPStore>(info.master_addr, opts);
        if (info.store_prefix.empty()) return tcp;
        return c10::intrusive_ptr<c10d::Store>(c10::make_intrusive<c10d::PrefixStore>(info.store_prefix, tcp));
      });
  if (!store.ok()) return store.status();
  return Create(options, *std::move(store));
}

absl::StatusOr<std::unique_ptr<Communicator>> Communicator::Create(const CommOptions& given,
                                                                   c10::intrusive_ptr<c10d::Store> store) {
  auto options = WithEnvTimeout(given);
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
