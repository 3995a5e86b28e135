// Rendezvous from the environment, as launchers do it: this test starts WORLD processes of
// itself with RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT set; each one builds a
// communicator with Communicator::FromEnv() (c10d TCPStore) and all-reduces.
//
// With ZT_COMM_CHILD=1 the binary is such a worker of any world size, so a launcher can start it:
//   ZT_COMM_CHILD=1 torchrun --standalone --nproc_per_node=2 --no-python <this binary>
#include <ATen/ATen.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "core/comm/communicator.h"
#include "core/comm/free_port.h"
#include "core/comm/rank_env.h"
#include "gtest/gtest.h"

extern char** environ;

namespace zt {
namespace {

constexpr int kWorld = 3;

int ChildMain() {
  auto comm = Communicator::FromEnv(CommBackend::kGloo);  // timeout from ZT_COMM_TIMEOUT_S
  if (!comm.ok()) {
    std::fprintf(stderr, "child: %s\n", std::string(comm.status().message()).c_str());
    return 3;
  }
  const RankInfo* info = &(*comm)->rank_info();
  at::Tensor t = at::full({1 << 16}, static_cast<float>(info->rank + 1));
  absl::Status s = AllReduceSync(**comm, t);
  const float want = info->world_size * (info->world_size + 1) / 2.0f;
  const bool ok = s.ok() && t.eq(want).all().item<bool>() && (*comm)->Barrier().ok() && (*comm)->Shutdown().ok();
  if (!ok) std::fprintf(stderr, "child %d: %s\n", info->rank, std::string(s.message()).c_str());
  if (ok) {
    std::printf("rank %d of %d: all-reduce gave %g (from %s)\n", info->rank, info->world_size, want,
                info->source.c_str());
  }
  return ok ? 0 : 4;
}

using ::zt::testing::FreePort;

// Starts kWorld children with the launcher variables and `extra`, and waits for them.
void RunChildren(int port, const std::vector<std::string>& extra) {
  std::vector<pid_t> pids;
  for (int r = 0; r < kWorld; ++r) {
    std::vector<std::string> env = {"ZT_COMM_CHILD=1",
                                    "ZT_COMM_TIMEOUT_S=20",
                                    "RANK=" + std::to_string(r),
                                    "WORLD_SIZE=" + std::to_string(kWorld),
                                    "LOCAL_RANK=" + std::to_string(r),
                                    "MASTER_ADDR=127.0.0.1",
                                    "MASTER_PORT=" + std::to_string(port)};
    env.insert(env.end(), extra.begin(), extra.end());
    for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
    std::vector<char*> envp;
    for (auto& s : env) envp.push_back(s.data());
    envp.push_back(nullptr);
    char self[] = "/proc/self/exe";
    char* argv[] = {self, nullptr};
    pid_t pid = 0;
    ASSERT_EQ(posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, envp.data()), 0);
    pids.push_back(pid);
  }
  for (int r = 0; r < kWorld; ++r) {
    int status = 0;
    ASSERT_EQ(waitpid(pids[r], &status, 0), pids[r]);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "rank " << r << " status " << status;
  }
}

TEST(CommunicatorFromEnv, ProcessesRendezvousThroughTcpStore) { RunChildren(FreePort(), {}); }

// torchrun's elastic agent serves the store at MASTER_ADDR:MASTER_PORT itself; here this process
// plays the agent.  Rank 0 serving a second store on that port would fail ("address in use").
TEST(CommunicatorFromEnv, EveryRankIsAClientOfTorchrunsAgentStore) {
  c10d::TCPStoreOptions opts;
  opts.port = 0;  // any free port
  opts.isServer = true;
  opts.waitWorkers = false;
  auto agent = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", opts);
  RunChildren(agent->getPort(),
              {"TORCHELASTIC_USE_AGENT_STORE=True", "TORCHELASTIC_RUN_ID=test", "TORCHELASTIC_RESTART_COUNT=1"});
  // The store outlives this attempt: its keys are all under the attempt's prefix.
  const std::vector<std::string> keys = agent->listKeys();
  EXPECT_FALSE(keys.empty()) << "the ranks wrote nothing into the agent's store";
  for (const std::string& key : keys) EXPECT_EQ(key.rfind("zt/test/1/", 0), 0u) << key;
}

}  // namespace
}  // namespace zt

int main(int argc, char** argv) {
  if (std::getenv("ZT_COMM_CHILD") != nullptr) return zt::ChildMain();
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
