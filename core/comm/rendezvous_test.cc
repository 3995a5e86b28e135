// A rank that never arrives: Communicator::Create fails within the rendezvous limit, with an
// error that says who waited where, for how long, and which variable raises the limit.
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/comm/communicator.h"
#include "core/comm/free_port.h"
#include "core/comm/rank_env.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt {
namespace {

using ::testing::HasSubstr;

using ::zt::testing::FreePort;

// Rank `rank` of a world of 2 on this host, whose peer never starts.
CommOptions AloneOfTwo(int rank, int port, std::chrono::milliseconds limit) {
  CommOptions options;
  options.rank.rank = rank;
  options.rank.world_size = 2;
  options.rank.local_rank = rank;
  options.rank.local_world_size = 2;
  options.rank.master_addr = "127.0.0.1";
  options.rank.master_port = port;
  options.backend = CommBackend::kGloo;
  options.rendezvous_timeout = limit;
  return options;
}

// Runs Create(options) (or over `store`) and checks that it timed out, in time and in words.
void ExpectTimesOut(const CommOptions& options, c10::intrusive_ptr<c10d::Store> store, double limit_s,
                    const std::string& what) {
  const auto start = std::chrono::steady_clock::now();
  auto comm = store ? Communicator::Create(options, store) : Communicator::Create(options);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_FALSE(comm.ok()) << "a world of 2 with one rank connected";
  EXPECT_LT(took, limit_s + 8) << comm.status();
  EXPECT_GE(took, limit_s * 0.9) << comm.status();
  const std::string message(comm.status().message());
  EXPECT_EQ(comm.status().code(), absl::StatusCode::kDeadlineExceeded) << message;
  EXPECT_THAT(message, HasSubstr(absl::StrCat("rank ", options.rank.rank, " of 2: rendezvous at 127.0.0.1:",
                                              options.rank.master_port, " timed out after ", limit_s, " s: ", what)));
  EXPECT_THAT(message, HasSubstr("ZT_RENDEZVOUS_TIMEOUT_S"));
}

TEST(Rendezvous, RankZeroTimesOutWhenTheOtherRankNeverArrives) {
  ExpectTimesOut(AloneOfTwo(0, FreePort(), std::chrono::seconds(2)), nullptr, 2, "not every rank arrived");
}

TEST(Rendezvous, ClientTimesOutWhenRankZeroNeverServesTheStore) {
  ExpectTimesOut(AloneOfTwo(1, FreePort(), std::chrono::seconds(1)), nullptr, 1, "rank 0 serves no store there");
}

// Under torchrun the agent serves the store and counts no ranks; Create() counts them.
TEST(Rendezvous, AgentStoreClientTimesOutWhenTheOtherRankNeverArrives) {
  c10d::TCPStoreOptions opts;
  opts.port = 0;
  opts.isServer = true;
  opts.waitWorkers = false;
  auto agent = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", opts);
  CommOptions options = AloneOfTwo(0, agent->getPort(), std::chrono::seconds(1));
  options.rank.store_is_external = true;
  options.rank.store_prefix = "zt/run/0";
  ExpectTimesOut(options, nullptr, 1, "not every rank arrived");
}

// Gloo's own connection (here over a caller's store) is bounded by the same limit.
TEST(Rendezvous, GlooConnectionTimesOutWhenTheOtherRankNeverArrives) {
  CommOptions options = AloneOfTwo(0, 29500, std::chrono::seconds(1));
  ExpectTimesOut(options, c10::make_intrusive<c10d::HashStore>(), 1, "not every rank arrived");
}

TEST(Rendezvous, EnvironmentSetsTheLimit) {
  ASSERT_EQ(setenv("ZT_RENDEZVOUS_TIMEOUT_S", "0.5", 1), 0);
  CommOptions options = AloneOfTwo(0, 29500, std::chrono::minutes(5));
  ExpectTimesOut(options, c10::make_intrusive<c10d::HashStore>(), 0.5, "not every rank arrived");

  ASSERT_EQ(setenv("ZT_RENDEZVOUS_TIMEOUT_S", "soon", 1), 0);
  auto bad = Communicator::Create(options);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("ZT_RENDEZVOUS_TIMEOUT_S='soon'"));
  ASSERT_EQ(unsetenv("ZT_RENDEZVOUS_TIMEOUT_S"), 0);
}

}  // namespace
}  // namespace zt
