// LoggingCommunicator (comms_logger.h): over Gloo with ranks as threads (local_group.h), and
// over a fake inner communicator where the test must see which works were waited for.
#include "core/comm/comms_logger.h"

#include <ATen/ATen.h>

#include <atomic>
#include <cmath>
#include <memory>
#include <string>
#include <thread>
#include <typeinfo>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "core/comm/local_group.h"
#include "core/util/logging.h"
#include "core/util/status_macros.h"
#include "core/util/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using Options = LoggingCommunicator::Options;
using Record = LoggingCommunicator::Record;

absl::Status Expect(bool ok, const std::string& what) { return ok ? absl::OkStatus() : absl::InternalError(what); }

// RunOnRanks owns each rank's communicator; the wrapper only borrows it.
std::shared_ptr<Communicator> Borrow(Communicator& comm) {
  return std::shared_ptr<Communicator>(&comm, [](Communicator*) {});
}

absl::StatusOr<std::unique_ptr<LoggingCommunicator>> Wrap(Communicator& comm, Options o = {}) {
  return LoggingCommunicator::Create(Borrow(comm), o);
}

absl::Status StartAndWait(absl::StatusOr<std::unique_ptr<CommWork>> work) {
  if (!work.ok()) return work.status();
  return (*work)->Wait();
}

std::string Describe(const std::vector<Record>& rows) {
  std::string s;
  for (const Record& r : rows) absl::StrAppend(&s, r.op, "/", r.bytes, "x", r.count, " ");
  return s;
}

// (op, bytes, count) of every row, in order.
absl::Status ExpectRows(const std::vector<Record>& rows,
                        const std::vector<std::tuple<std::string, std::int64_t, std::int64_t>>& want) {
  bool same = rows.size() == want.size();
  for (std::size_t i = 0; same && i < rows.size(); ++i) {
    same = rows[i].op == std::get<0>(want[i]) && rows[i].bytes == std::get<1>(want[i]) &&
           rows[i].count == std::get<2>(want[i]);
  }
  return Expect(same, absl::StrCat("records: ", Describe(rows)));
}

double Factor(const std::string& op, int n) {
  if (op == "all_reduce") return 2.0 * (n - 1) / n;
  if (op == "reduce_scatter" || op == "all_gather") return (n - 1.0) / n;
  return 1.0;  // reduce, broadcast
}

class OverGloo : public ::testing::TestWithParam<int> {
 protected:
  int world() const { return GetParam(); }
};

// Every collective gives through the wrapper what it gives on the inner communicator, and each
// (op, size) is recorded with nccl-tests' message size.
TEST_P(OverGloo, ResultsEqualTheInnersAndSizesAreExact) {
  const int n = world();
  absl::Status s = RunOnRanks(n, [&](Communicator& comm) -> absl::Status {
    ASSIGN_OR_RETURN(auto logged, Wrap(comm));
    const int r = comm.rank();
    auto both = [&](auto op) -> absl::Status {  // op(communicator) -> Status; same on both
      RETURN_IF_ERROR(op(comm, /*through_wrapper=*/false));
      return op(*logged, /*through_wrapper=*/true);
    };
    at::Tensor ar[2], red[2], rs[2], ag[2], bc[2];
    RETURN_IF_ERROR(both([&](Communicator& c, bool w) {
      ar[w] = at::arange(1000, at::kFloat) * (r + 1);
      return StartAndWait(c.AllReduce(ar[w]));
    }));
    RETURN_IF_ERROR(both([&](Communicator& c, bool w) {  // a second all-reduce of the same size
      at::Tensor t = at::full({1000}, 1.0f);
      return StartAndWait(c.AllReduce(t, ReduceOp::kMax));
    }));
    RETURN_IF_ERROR(both([&](Communicator& c, bool w) {
      red[w] = at::full({300}, r + 1.0, at::kDouble);
      return StartAndWait(c.Reduce(red[w], n - 1));
    }));
    RETURN_IF_ERROR(both([&](Communicator& c, bool w) {
      rs[w] = at::empty({5});
      return StartAndWait(c.ReduceScatter(rs[w], at::arange(5 * n, at::kFloat) * (r + 1)));
    }));
    RETURN_IF_ERROR(both([&](Communicator& c, bool w) {
      ag[w] = at::empty({1000 * n});
      return StartAndWait(c.AllGather(ag[w], at::full({1000}, static_cast<float>(r))));
    }));
    RETURN_IF_ERROR(both([&](Communicator& c, bool w) {
      bc[w] = r == 0 ? at::arange(7, at::kLong) : at::zeros({7}, at::kLong);
      return StartAndWait(c.Broadcast(bc[w], 0));
    }));
    RETURN_IF_ERROR(both([&](Communicator& c, bool) { return c.Barrier(); }));

    RETURN_IF_ERROR(Expect(at::equal(ar[0], ar[1]), "all_reduce"));
    RETURN_IF_ERROR(Expect(at::equal(ar[1], at::arange(1000, at::kFloat) * (n * (n + 1) / 2)), "all_reduce value"));
    if (r == n - 1) RETURN_IF_ERROR(Expect(at::equal(red[0], red[1]), "reduce"));
    RETURN_IF_ERROR(Expect(at::equal(rs[0], rs[1]), "reduce_scatter"));
    RETURN_IF_ERROR(Expect(at::equal(ag[0], ag[1]), "all_gather"));
    RETURN_IF_ERROR(Expect(at::equal(ag[1], at::arange(n, at::kFloat).repeat_interleave(1000)), "all_gather value"));
    RETURN_IF_ERROR(Expect(at::equal(bc[0], bc[1]), "broadcast"));

    // all_gather: the whole output (1000 float32 x n); reduce_scatter: the whole input (5n float32).
    RETURN_IF_ERROR(ExpectRows(logged->Records(), {{"all_reduce", 4000, 2},
                                                   {"reduce", 2400, 1},
                                                   {"reduce_scatter", 20 * n, 1},
                                                   {"all_gather", 4000 * n, 1},
                                                   {"broadcast", 56, 1},
                                                   {"barrier", 0, 1}}));
    // The wrapper's stats() count what went through it, as the inner's do.
    const CommStats& mine = logged->stats();
    RETURN_IF_ERROR(Expect(mine.calls == 6, absl::StrCat("calls ", mine.calls.load())));
    RETURN_IF_ERROR(Expect(mine.all_gather_bytes == 4000 * n && mine.reduce_scatter_bytes == 20 * n &&
                               mine.all_reduce_bytes == 8000 && mine.reduce_bytes == 2400 && mine.broadcast_bytes == 56,
                           "stats bytes"));
    return Expect(mine.bytes == comm.stats().bytes / 2, "stats total");
  });
  EXPECT_TRUE(s.ok()) << s;
}

TEST_P(OverGloo, BusBandwidthIsAlgbwTimesTheNcclTestsFactor) {
  const int n = world();
  absl::Status s = RunOnRanks(n, [&](Communicator& comm) -> absl::Status {
    ASSIGN_OR_RETURN(auto logged, Wrap(comm));
    for (int i = 0; i < 3; ++i) {
      RETURN_IF_ERROR(StartAndWait(logged->AllReduce(at::ones({4096}))));
      RETURN_IF_ERROR(StartAndWait(logged->Reduce(at::ones({4096}), 0)));
      RETURN_IF_ERROR(StartAndWait(logged->ReduceScatter(at::empty({4096}), at::ones({4096 * n}))));
      RETURN_IF_ERROR(StartAndWait(logged->AllGather(at::empty({4096 * n}), at::ones({4096}))));
      RETURN_IF_ERROR(StartAndWait(logged->Broadcast(at::ones({4096}), n - 1)));
      RETURN_IF_ERROR(logged->Barrier());
    }
    const std::vector<Record> rows = logged->Records();
    RETURN_IF_ERROR(Expect(rows.size() == 6, Describe(rows)));
    for (const Record& r : rows) {
      RETURN_IF_ERROR(Expect(r.count == 3 && r.total_s > 0 && r.min_s > 0 && r.min_s <= r.max_s && r.max_s <= r.total_s,
                             absl::StrCat(r.op, " times")));
      if (r.op == "barrier") {
        RETURN_IF_ERROR(Expect(r.bytes == 0 && r.algbw_gbps == 0 && r.busbw_gbps == 0, "barrier has no bandwidth"));
        continue;
      }
      const double algbw = r.bytes / (r.total_s / r.count) / 1e9;
      RETURN_IF_ERROR(Expect(std::abs(r.algbw_gbps - algbw) <= 1e-9 * algbw, absl::StrCat(r.op, " algbw")));
      const double ratio = r.busbw_gbps / r.algbw_gbps;
      RETURN_IF_ERROR(Expect(std::abs(ratio - Factor(r.op, n)) < 1e-12,
                             absl::StrCat(r.op, " busbw/algbw ", ratio, " at world ", n)));
    }
    return absl::OkStatus();
  });
  EXPECT_TRUE(s.ok()) << s;
}

// Only the listed ops are profiled (under either of DeepSpeed's names); the others pass
// through as the inner communicator's own asynchronous work.
TEST_P(OverGloo, ProfOpsFiltersAndLeavesOtherOpsAsync) {
  const int n = world();
  absl::Status s = RunOnRanks(n, [&](Communicator& comm) -> absl::Status {
    Options o;
    o.prof_all = false;
    o.prof_ops = {"all_gather_into_tensor", "barrier"};
    ASSIGN_OR_RETURN(auto logged, Wrap(comm, o));
    ASSIGN_OR_RETURN(auto inner_work, comm.AllReduce(at::ones({10})));
    RETURN_IF_ERROR(inner_work->Wait());
    ASSIGN_OR_RETURN(auto passed, logged->AllReduce(at::ones({10})));
    ASSIGN_OR_RETURN(auto profiled, logged->AllGather(at::empty({3 * n}), at::ones({3})));
    RETURN_IF_ERROR(Expect(typeid(*passed) == typeid(*inner_work), "unprofiled work is the inner's"));
    RETURN_IF_ERROR(Expect(typeid(*profiled) != typeid(*inner_work), "profiled work is already complete"));
    RETURN_IF_ERROR(passed->Wait());
    RETURN_IF_ERROR(profiled->Wait());
    RETURN_IF_ERROR(StartAndWait(logged->Broadcast(at::ones({4}), 0)));
    RETURN_IF_ERROR(logged->Barrier());
    return ExpectRows(logged->Records(), {{"all_gather", 12 * n, 1}, {"barrier", 0, 1}});
  });
  EXPECT_TRUE(s.ok()) << s;
}

TEST_P(OverGloo, SummaryHasARowPerOpAndSize) {
  const int n = world();
  absl::Status s = RunOnRanks(n, [&](Communicator& comm) -> absl::Status {
    ASSIGN_OR_RETURN(auto logged, Wrap(comm));
    RETURN_IF_ERROR(Expect(absl::StrContains(logged->Summary(), "(no profiled collectives)"), "empty summary"));
    for (int i = 0; i < 4; ++i) RETURN_IF_ERROR(StartAndWait(logged->AllReduce(at::ones({128}))));  // 512 B
    RETURN_IF_ERROR(StartAndWait(logged->AllReduce(at::ones({2 * 1024 * 1024}))));                  // 8 MiB
    RETURN_IF_ERROR(StartAndWait(logged->AllGather(at::empty({1000 * n}), at::ones({1000}))));
    RETURN_IF_ERROR(logged->Barrier());
    RETURN_IF_ERROR(logged->Barrier());
    const std::string summary = logged->Summary();
    if (comm.rank() == 0) ZT_LOG(INFO) << "\n" << summary;  // to read it in the test log
    // Rows are whitespace-separated cells; a human size is two of them ("8.0 MB").
    std::vector<std::vector<std::string>> rows;
    for (absl::string_view line : absl::StrSplit(summary, '\n')) {
      std::vector<std::string> cells = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (!cells.empty() && (cells[0] == "all_reduce" || cells[0] == "all_gather" || cells[0] == "barrier")) {
        rows.push_back(cells);
      }
    }
    const std::string gathered = std::to_string(4000 * n);
    const std::string gathered_human = n == 2 ? "7.81" : "11.72";  // 8000 and 12000 bytes in KB
    bool ok = rows.size() == 4 && rows[0].size() >= 6 && rows[0][1] == "512" && rows[0][2] == "B" &&
              rows[0][3] == "512" && rows[0][4] == "4" && rows[1][1] == "8.0" && rows[1][2] == "MB" &&
              rows[1][3] == "8388608" && rows[1][4] == "1" && rows[2][0] == "all_gather" &&
              rows[2][1] == gathered_human && rows[2][2] == "KB" && rows[2][3] == gathered && rows[2][4] == "1" &&
              rows[3][0] == "barrier" && rows[3][1] == "-" && rows[3][2] == "-" && rows[3][3] == "2";
    RETURN_IF_ERROR(Expect(ok, summary));
    return Expect(absl::StrContains(summary, "Total Latency(ms)") && absl::StrContains(summary, "busbw (GB/s)") &&
                      absl::StrContains(summary, absl::StrCat("rank ", comm.rank(), " of ", n, " (gloo)")),
                  summary);
  });
  EXPECT_TRUE(s.ok()) << s;
}

TEST_P(OverGloo, TakeSecondsResetsButTotalKeepsCounting) {
  absl::Status s = RunOnRanks(world(), [&](Communicator& comm) -> absl::Status {
    ASSIGN_OR_RETURN(auto logged, Wrap(comm));
    RETURN_IF_ERROR(Expect(logged->TakeSeconds() == 0 && logged->TotalSeconds() == 0, "starts at zero"));
    RETURN_IF_ERROR(StartAndWait(logged->AllReduce(at::ones({1000}))));
    RETURN_IF_ERROR(logged->Barrier());
    const double first = logged->TakeSeconds();
    RETURN_IF_ERROR(Expect(first > 0, "first take"));
    RETURN_IF_ERROR(Expect(logged->TakeSeconds() == 0, "taken"));
    RETURN_IF_ERROR(Expect(logged->TotalSeconds() == first, "total after take"));
    RETURN_IF_ERROR(StartAndWait(logged->AllReduce(at::ones({1000}))));
    const double second = logged->TakeSeconds();
    RETURN_IF_ERROR(Expect(second > 0, "second take"));
    RETURN_IF_ERROR(Expect(std::abs(logged->TotalSeconds() - (first + second)) < 1e-12, "total"));
    double sum = 0;
    for (const Record& r : logged->Records()) sum += r.total_s;
    return Expect(std::abs(sum - logged->TotalSeconds()) < 1e-12, "records add up to the total");
  });
  EXPECT_TRUE(s.ok()) << s;
}

TEST_P(OverGloo, ErrorsOfTheInnerPassThroughAndAreNotRecorded) {
  const int n = world();
  absl::Status s = RunOnRanks(n, [&](Communicator& comm) -> absl::Status {
    ASSIGN_OR_RETURN(auto logged, Wrap(comm));
    auto bad_root = logged->Broadcast(at::ones({2}), n);
    RETURN_IF_ERROR(Expect(bad_root.status().code() == absl::StatusCode::kInvalidArgument &&
                               absl::StrContains(bad_root.status().message(), absl::StrCat("root ", n)) &&
                               absl::StrContains(bad_root.status().message(), absl::StrCat("rank ", comm.rank())),
                           std::string(bad_root.status().message())));
    auto bad_sizes = logged->AllGather(at::empty({5}), at::ones({3}));
    RETURN_IF_ERROR(Expect(bad_sizes.status().code() == absl::StatusCode::kInvalidArgument, "sizes"));
    RETURN_IF_ERROR(Expect(logged->Records().empty() && logged->stats().calls == 0, "nothing recorded"));
    return absl::OkStatus();
  });
  EXPECT_TRUE(s.ok()) << s;
}

TEST_P(OverGloo, DisabledForwardsEverythingUntouched) {
  absl::Status s = RunOnRanks(world(), [&](Communicator& comm) -> absl::Status {
    Options o;
    o.enabled = false;
    ASSIGN_OR_RETURN(auto logged, Wrap(comm, o));
    RETURN_IF_ERROR(Expect(logged->backend() == CommBackend::kGloo && logged->rank() == comm.rank() &&
                               logged->world_size() == comm.world_size(),
                           "rank info"));
    ASSIGN_OR_RETURN(auto inner_work, comm.AllReduce(at::ones({10})));
    RETURN_IF_ERROR(inner_work->Wait());
    ASSIGN_OR_RETURN(auto passed, logged->AllReduce(at::ones({10})));
    RETURN_IF_ERROR(Expect(typeid(*passed) == typeid(*inner_work), "inner's work"));
    RETURN_IF_ERROR(passed->Wait());
    RETURN_IF_ERROR(logged->Barrier());
    // CPU channels come back unwrapped, and work.
    ASSIGN_OR_RETURN(auto channel, logged->CreateCpuChannel("comms_logger_test"));
    at::Tensor t = at::ones({3});
    RETURN_IF_ERROR(AllReduceSync(*channel, t));
    RETURN_IF_ERROR(Expect(at::equal(t, at::full({3}, static_cast<float>(comm.world_size()))), "channel"));
    RETURN_IF_ERROR(channel->Shutdown());
    return Expect(logged->Records().empty() && logged->TotalSeconds() == 0, "nothing recorded");
  });
  EXPECT_TRUE(s.ok()) << s;
}

INSTANTIATE_TEST_SUITE_P(WorldSizes, OverGloo, ::testing::Values(2, 3),
                         [](const auto& info) { return absl::StrCat("world", info.param); });

// ---- over a fake inner communicator ----------------------------------------------------

class FakeWork : public CommWork {
 public:
  FakeWork(std::atomic<int>* waits, absl::Status status) : waits_(waits), status_(std::move(status)) {}
  absl::Status Wait() override {
    ++*waits_;
    return status_;
  }

 private:
  std::atomic<int>* waits_;
  absl::Status status_;
};

// Does nothing but count: which works were waited for, and whether it was shut down.
class FakeCommunicator : public Communicator {
 public:
  explicit FakeCommunicator(int world) : Communicator(Info(world)) {}
  CommBackend backend() const override { return CommBackend::kGloo; }
  absl::StatusOr<std::unique_ptr<CommWork>> AllReduce(at::Tensor, ReduceOp) override { return Work(); }
  absl::StatusOr<std::unique_ptr<CommWork>> Reduce(at::Tensor, int, ReduceOp) override { return Work(); }
  absl::StatusOr<std::unique_ptr<CommWork>> ReduceScatter(at::Tensor, at::Tensor, ReduceOp) override { return Work(); }
  absl::StatusOr<std::unique_ptr<CommWork>> AllGather(at::Tensor, at::Tensor) override { return Work(); }
  absl::StatusOr<std::unique_ptr<CommWork>> Broadcast(at::Tensor, int) override { return Work(); }
  absl::Status Barrier() override { return absl::OkStatus(); }
  absl::StatusOr<std::unique_ptr<Communicator>> CreateCpuChannel(const std::string&) override {
    return absl::UnimplementedError("fake");
  }
  absl::Status Shutdown() override {
    ++shutdowns;
    return absl::OkStatus();
  }

  std::atomic<int> waits{0};
  std::atomic<int> shutdowns{0};
  absl::Status wait_status;  // what the works' Wait() returns

 private:
  static RankInfo Info(int world) {
    RankInfo info;
    info.world_size = world;
    info.local_world_size = world;
    return info;
  }
  std::unique_ptr<CommWork> Work() { return std::make_unique<FakeWork>(&waits, wait_status); }
};

TEST(LoggingCommunicator, UnknownOpNameIsRejectedNamingIt) {
  Options o;
  o.prof_ops = {"all_reduce", "all_reduse"};
  EXPECT_THAT(LoggingCommunicator::Create(std::make_shared<FakeCommunicator>(2), o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("\"all_reduse\""), HasSubstr("did you mean all_reduce?"),
                             HasSubstr("valid names: all_reduce, all_reduce_coalesced, inference_all_reduce, "
                                       "reduce, reduce_scatter, reduce_scatter_tensor"))));
  // deepspeed.comm ops this communicator never runs load (DeepSpeed's configs list them) and
  // record nothing.
  o.prof_ops = {"all_to_all_single", "send"};
  EXPECT_TRUE(LoggingCommunicator::Create(std::make_shared<FakeCommunicator>(2), o).ok());
  EXPECT_THAT(LoggingCommunicator::Create(nullptr, Options{}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no communicator")));
}

TEST(LoggingCommunicator, ProfiledOpsAreWaitedForAndUnprofiledOnesAreNot) {
  auto fake = std::make_shared<FakeCommunicator>(4);
  Options o;
  o.prof_all = false;
  o.prof_ops = {"reduce_scatter_tensor", "broadcast"};
  ASSERT_OK_AND_ASSIGN(auto logged, LoggingCommunicator::Create(fake, o));
  ASSERT_OK_AND_ASSIGN(auto a, logged->AllReduce(at::ones({8})));
  ASSERT_OK_AND_ASSIGN(auto g, logged->AllGather(at::empty({32}), at::ones({8})));
  ASSERT_OK_AND_ASSIGN(auto r, logged->Reduce(at::ones({8}), 0));
  EXPECT_EQ(fake->waits, 0) << "unprofiled ops are left to the caller";
  EXPECT_NE(dynamic_cast<FakeWork*>(a.get()), nullptr);
  ASSERT_OK_AND_ASSIGN(auto rs, logged->ReduceScatter(at::empty({8}), at::ones({32})));
  EXPECT_EQ(fake->waits, 1) << "a profiled op is finished before it returns";
  EXPECT_EQ(dynamic_cast<FakeWork*>(rs.get()), nullptr);
  EXPECT_OK(rs->Wait());
  EXPECT_EQ(fake->waits, 1) << "its work is already complete";
  ASSERT_OK(logged->Shutdown());
  EXPECT_EQ(fake->shutdowns, 1);
  std::vector<Record> rows = logged->Records();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].op, "reduce_scatter");
  EXPECT_EQ(rows[0].bytes, 128);
  EXPECT_DOUBLE_EQ(rows[0].busbw_gbps, rows[0].algbw_gbps * 3 / 4);
}

TEST(LoggingCommunicator, AFailedWaitIsReturnedAndNotRecorded) {
  auto fake = std::make_shared<FakeCommunicator>(2);
  fake->wait_status = absl::DeadlineExceededError("peer gone");
  ASSERT_OK_AND_ASSIGN(auto logged, LoggingCommunicator::Create(fake, Options{}));
  ASSERT_OK_AND_ASSIGN(auto w, logged->AllReduce(at::ones({8})));
  EXPECT_THAT(w->Wait(), StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("peer gone")));
  EXPECT_TRUE(logged->Records().empty());
  EXPECT_EQ(logged->TotalSeconds(), 0);
}

// Collects log lines from every thread.
class CapturingSink : public LogSink {
 public:
  void Write(LogSeverity, const std::string& line) override {
    absl::MutexLock lock(&mu_);
    lines_.push_back(line);
  }
  std::vector<std::string> lines() {
    absl::MutexLock lock(&mu_);
    return lines_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> lines_;
};

TEST(LoggingCommunicator, VerboseLogsOneLinePerProfiledOp) {
  CapturingSink sink;
  const LogSeverity level = MinLogSeverity();
  SetMinLogSeverity(LogSeverity::kInfo);
  LogSink* previous = SetLogSink(&sink);
  auto fake = std::make_shared<FakeCommunicator>(2);
  Options o;
  o.verbose = true;
  o.prof_all = false;
  o.prof_ops = {"all_reduce", "all_gather", "barrier"};
  ASSERT_OK_AND_ASSIGN(auto logged, LoggingCommunicator::Create(fake, o));
  EXPECT_OK(StartAndWait(logged->AllReduce(at::empty({2 * 1024 * 1024}))));  // 8 MiB
  EXPECT_OK(StartAndWait(logged->AllGather(at::empty({128}), at::empty({64}))));
  EXPECT_OK(StartAndWait(logged->Broadcast(at::empty({64}), 0)));  // not profiled: no line
  EXPECT_OK(logged->Barrier());
  SetLogSink(previous);
  SetMinLogSeverity(level);
  std::vector<std::string> lines = sink.lines();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_THAT(lines[0],
              AllOf(HasSubstr("rank=0 | comm op: all_reduce | time (ms): "), HasSubstr("| msg size: 8.0 MB | "),
                    HasSubstr("| algbw (GB/s): "), HasSubstr("| busbw (GB/s): ")));
  EXPECT_THAT(lines[1], HasSubstr("comm op: all_gather | time (ms): "));
  EXPECT_THAT(lines[1], HasSubstr("msg size: 512 B"));
  EXPECT_THAT(lines[2], HasSubstr("rank=0 | comm op: barrier | time (ms): "));
}

// Collectives from one thread (stage 3's backward on autograd's thread) while another reads
// the totals: every op is counted once, and takes add up to the total.
TEST(LoggingCommunicator, TotalsAreSafeToReadFromAnotherThread) {
  auto fake = std::make_shared<FakeCommunicator>(2);
  ASSERT_OK_AND_ASSIGN(auto logged, LoggingCommunicator::Create(fake, Options{}));
  std::atomic<bool> done{false};
  double taken = 0;
  std::thread reader([&] {
    while (!done) {
      taken += logged->TakeSeconds();
      (void)logged->Summary();
    }
  });
  for (int i = 0; i < 2000; ++i) ASSERT_OK(StartAndWait(logged->AllReduce(at::ones({16}))));
  done = true;
  reader.join();
  taken += logged->TakeSeconds();
  std::vector<Record> rows = logged->Records();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].count, 2000);
  EXPECT_NEAR(taken, logged->TotalSeconds(), 1e-9);
}

}  // namespace
}  // namespace zt
