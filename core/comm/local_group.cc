#include "core/comm/local_group.h"

#include <torch/csrc/distributed/c10d/HashStore.hpp>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace zt {

absl::Status RunOnRanks(int world, const std::function<absl::Status(Communicator&)>& body,
                        const LocalGroupOptions& options) {
  auto store = c10::make_intrusive<c10d::HashStore>();
  std::vector<absl::Status> results(world);
  std::vector<std::thread> threads;
  threads.reserve(world);
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      CommOptions o;
      o.rank.rank = r;
      o.rank.world_size = world;
      o.rank.local_rank = r;
      o.rank.local_world_size = world;
      o.backend = options.backend;
      o.timeout = options.timeout;
      auto comm = Communicator::Create(o, store);
      if (!comm.ok()) {
        results[r] = comm.status();
        return;
      }
      try {
        results[r] = body(**comm);
      } catch (const std::exception& e) {
        results[r] = absl::InternalError(absl::StrCat("rank ", r, " threw: ", e.what()));
      }
      absl::Status s = (*comm)->Shutdown();
      if (results[r].ok()) results[r] = s;
    });
  }
  for (auto& t : threads) t.join();
  std::vector<std::string> errors;
  absl::StatusCode code = absl::StatusCode::kOk;
  for (int r = 0; r < world; ++r) {
    if (results[r].ok()) continue;
    if (code == absl::StatusCode::kOk) code = results[r].code();
    errors.push_back(absl::StrCat("[rank ", r, "] ", results[r].message()));
  }
  if (errors.empty()) return absl::OkStatus();
  return absl::Status(code, absl::StrJoin(errors, "; "));
}

}  // namespace zt
