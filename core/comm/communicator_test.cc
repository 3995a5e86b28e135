// Collectives of the Gloo backend, several ranks as threads (local_group.h).
#include "core/comm/communicator.h"

#include <ATen/ATen.h>

#include <atomic>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/comm/local_group.h"
#include "core/util/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt {
namespace {

using ::testing::HasSubstr;

absl::Status Expect(bool ok, const std::string& what) { return ok ? absl::OkStatus() : absl::InternalError(what); }

class Collectives : public ::testing::TestWithParam<int> {
 protected:
  int world() const { return GetParam(); }
};

TEST_P(Collectives, AllReduceSumMaxMinOverDtypes) {
  const int n = world();
  absl::Status s = RunOnRanks(n, [&](Communicator& comm) -> absl::Status {
    const double r = comm.rank();
    for (at::ScalarType type : {at::kFloat, at::kDouble, at::kLong, at::kInt, at::kBFloat16, at::kHalf}) {
      at::Tensor t = at::arange(10, at::TensorOptions().dtype(type)) + r;  // rank r: [r, r+1, ..., r+9]
      RETURN_IF_ERROR(AllReduceSync(comm, t));
      at::Tensor want = (at::arange(10, at::kDouble) * n + n * (n - 1) / 2.0).to(type);
      RETURN_IF_ERROR(Expect(at::equal(t, want), absl::StrCat("sum of ", c10::toString(type))));
      at::Tensor m = at::full({3}, r, at::TensorOptions().dtype(type));
      RETURN_IF_ERROR(AllReduceSync(comm, m, ReduceOp::kMax));
      RETURN_IF_ERROR(Expect(m.eq(n - 1).all().item<bool>(), "max"));
      at::Tensor lo = at::full({3}, r + 1, at::TensorOptions().dtype(type));
      RETURN_IF_ERROR(AllReduceSync(comm, lo, ReduceOp::kMin));
      RETURN_IF_ERROR(Expect(lo.eq(1).all().item<bool>(), "min"));
    }
    return absl::OkStatus();
  });
  EXPECT_TRUE(s.ok()) << s;
}

TEST_P(Collectives, ReduceSumsOnTheRootOnly) {
  const int n = world();
  absl::Status s = RunOnRanks(n, [&](Communicator& comm) -> absl::Status {
    const int root = n - 1;
    at::Tensor t = at::full({1000}, comm.rank() + 1.0f);
    ASSIGN_OR_RETURN(auto w, comm.Reduce(t, root));
    RETURN_IF_ERROR(w->Wait());
    if (comm.rank() == root) RETURN_IF_ERROR(Expect(t.eq(n * (n + 1) / 2.0f).all().item<bool>(), "reduce"));
    return absl::OkStatus();
  });
  EXPECT_TRUE(s.ok()) << s;
}

TEST_P(Collectives, ReduceScatterGivesEachRankItsChunk) {
  const int n = world();
  absl::Status s = RunOnRanks(n, [&](Communicator& comm) -> absl::Status {
    at::Tensor in = at::arange(n * 5, at::kFloat) * (comm.rank() + 1);
    at::Tensor in_copy = in.clone();
    at::Tensor out = at::empty({5});
    ASSIGN_OR_RETURN(auto w, comm.ReduceScatter(out, in));
    RETURN_IF_ERROR(w->Wait());
    at::Tensor want = at::arange(comm.rank() * 5, comm.rank() * 5 + 5, at::kFloat) * (n * (n + 1) / 2.0f);
    RETURN_IF_ERROR(Expect(at::equal(out, want), "chunk"));
    return Expect(at::equal(in, in_copy), "input untouched");
  });
  EXPECT_TRUE(s.ok()) << s;
}

TEST_P(Collectives, AllGatherInPlaceAndFromASeparateInput) {
  const int n = world();
  absl::Status s = RunOnRanks(n, [&](Communicator& comm) -> absl::Status {
    const int r = comm.rank();
    at::Tensor want = at::arange(n, at::kDouble).repeat_interleave(3);
    // separate input
    at::Tensor out = at::zeros({n * 3}, at::kDouble);
    ASSIGN_OR_RETURN(auto w, comm.AllGather(out, at::full({3}, static_cast<double>(r), at::kDouble)));
    RETURN_IF_ERROR(w->Wait());
    RETURN_IF_ERROR(Expect(at::equal(out, want), "separate input"));
    // in place: the input is this rank's own chunk of the output
    at::Tensor buf = at::full({n * 3}, -1.0, at::kDouble);
    at::Tensor mine = buf.narrow(0, r * 3, 3);
    mine.fill_(r);
    ASSIGN_OR_RETURN(auto w2, comm.AllGather(buf, mine));
    RETURN_IF_ERROR(w2->Wait());
    return Expect(at::equal(buf, want), "in place");
  });
  EXPECT_TRUE(s.ok()) << s;
}

TEST_P(Collectives, BroadcastAndBarrier) {
  const int n = world();
  absl::Status s = RunOnRanks(n, [&](Communicator& comm) -> absl::Status {
    at::Tensor t = comm.rank() == 0 ? at::arange(7, at::kLong) : at::zeros({7}, at::kLong);
    ASSIGN_OR_RETURN(auto w, comm.Broadcast(t, 0));
    RETURN_IF_ERROR(w->Wait());
    RETURN_IF_ERROR(Expect(at::equal(t, at::arange(7, at::kLong)), "broadcast"));
    return comm.Barrier();
  });
  EXPECT_TRUE(s.ok()) << s;
}

TEST_P(Collectives, ManyInFlightFinishInOrder) {
  const int n = world();
  absl::Status s = RunOnRanks(n, [&](Communicator& comm) -> absl::Status {
    std::vector<at::Tensor> ts;
    std::vector<std::unique_ptr<CommWork>> works;
    for (int i = 0; i < 20; ++i) {
      ts.push_back(at::full({100 + i}, static_cast<float>(i)));
      ASSIGN_OR_RETURN(auto w, comm.AllReduce(ts.back()));
      works.push_back(std::move(w));
    }
    for (int i = 19; i >= 0; --i) RETURN_IF_ERROR(works[i]->Wait());  // any wait order
    for (int i = 0; i < 20; ++i) RETURN_IF_ERROR(Expect(ts[i].eq(i * n).all().item<bool>(), "value"));
    return absl::OkStatus();
  });
  EXPECT_TRUE(s.ok()) << s;
}

TEST_P(Collectives, EmptyTensorsAreNoOps) {
  absl::Status s = RunOnRanks(world(), [&](Communicator& comm) -> absl::Status {
    RETURN_IF_ERROR(AllReduceSync(comm, at::zeros({0})));
    ASSIGN_OR_RETURN(auto g, comm.AllGather(at::zeros({0}), at::zeros({0})));
    RETURN_IF_ERROR(g->Wait());
    ASSIGN_OR_RETURN(auto b, comm.Broadcast(at::zeros({0}), 0));
    RETURN_IF_ERROR(b->Wait());
    ASSIGN_OR_RETURN(auto r, comm.ReduceScatter(at::zeros({0}), at::zeros({0})));
    return r->Wait();
  });
  EXPECT_TRUE(s.ok()) << s;
}

TEST_P(Collectives, CountsPayloadBytes) {
  const int n = world();
  absl::Status s = RunOnRanks(n, [&](Communicator& comm) -> absl::Status {
    RETURN_IF_ERROR(AllReduceSync(comm, at::zeros({100})));  // 400 bytes
    at::Tensor out = at::zeros({10 * n});
    ASSIGN_OR_RETURN(auto w, comm.AllGather(out, at::zeros({10})));  // 40 n bytes
    RETURN_IF_ERROR(w->Wait());
    RETURN_IF_ERROR(Expect(comm.stats().all_reduce_bytes == 400, "all-reduce bytes"));
    RETURN_IF_ERROR(Expect(comm.stats().all_gather_bytes == 40 * n, "all-gather bytes"));
    RETURN_IF_ERROR(Expect(comm.stats().calls == 2, "calls"));
    return Expect(comm.stats().bytes == 400 + 40 * n, "total");
  });
  EXPECT_TRUE(s.ok()) << s;
}

INSTANTIATE_TEST_SUITE_P(WorldSizes, Collectives, ::testing::Values(1, 2, 3, 4),
                         [](const auto& info) { return absl::StrCat("world", info.param); });

TEST(Communicator, BadArgumentsAreInvalidArgumentNamingTheRank) {
  absl::Status s = RunOnRanks(2, [&](Communicator& comm) -> absl::Status {
    at::Tensor strided = at::zeros({4, 4}).t();
    auto a = comm.AllReduce(strided);
    RETURN_IF_ERROR(Expect(a.status().code() == absl::StatusCode::kInvalidArgument, "non-contiguous"));
    RETURN_IF_ERROR(Expect(absl::StrContains(a.status().message(), absl::StrCat("rank ", comm.rank(), " of 2 (gloo)")),
                           std::string(a.status().message())));
    auto b = comm.Broadcast(at::zeros({2}), 2);
    RETURN_IF_ERROR(Expect(absl::StrContains(b.status().message(), "root 2 is not a rank of 2"), "root"));
    at::Tensor out = at::zeros({5});
    auto c = comm.AllGather(out, at::zeros({3}));
    RETURN_IF_ERROR(Expect(c.status().code() == absl::StatusCode::kInvalidArgument, "sizes"));
    auto d = comm.AllReduce(at::zeros({2}, at::kBool));
    return Expect(d.status().code() == absl::StatusCode::kInvalidArgument, "dtype");
  });
  EXPECT_TRUE(s.ok()) << s;
}

// A rank that never joins a collective makes the others fail after the timeout instead of
// hanging, and later collectives fail fast.
TEST(Communicator, MissingPeerTimesOut) {
  LocalGroupOptions options;
  options.timeout = std::chrono::milliseconds(1500);
  std::atomic<int> deadline{0};
  absl::Status s = RunOnRanks(
      2,
      [&](Communicator& comm) -> absl::Status {
        if (comm.rank() == 1) return absl::OkStatus();  // skips the all-reduce
        absl::Status st = AllReduceSync(comm, at::zeros({4}));
        if (st.code() == absl::StatusCode::kDeadlineExceeded || st.code() == absl::StatusCode::kUnavailable) ++deadline;
        absl::Status again = AllReduceSync(comm, at::zeros({4}));
        if (absl::StrContains(again.message(), "an earlier collective failed")) ++deadline;
        return absl::OkStatus();
      },
      options);
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(deadline.load(), 2);
}

TEST(Communicator, UseAfterShutdownFails) {
  absl::Status s = RunOnRanks(1, [&](Communicator& comm) -> absl::Status {
    RETURN_IF_ERROR(comm.Shutdown());
    auto w = comm.AllReduce(at::zeros({1}));
    return Expect(w.status().code() == absl::StatusCode::kFailedPrecondition, "after shutdown");
  });
  EXPECT_TRUE(s.ok()) << s;
}

}  // namespace
}  // namespace zt
