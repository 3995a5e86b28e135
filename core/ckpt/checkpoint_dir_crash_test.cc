// Issue 11's crash test: a writer killed (SIGKILL) at every step that changes the disk, in turn,
// never leaves a save directory that fails to load or loads half a checkpoint.
//
// For k = 0, 1, 2, ... a forked child saves a checkpoint and kills itself just before its k-th
// write step (the writer's before_each_write_step hook: create, write, fsync, rename, exchange,
// remove), until a child gets through with no kill.  The child reports each step on a pipe
// before taking it, so the parent knows exactly where it died.  After each kill the parent
//   - opens the save directory: it must load, verified, the checkpoint `latest` named before the
//     save, or the new one once the kill came after `latest` (or the directory) was switched;
//   - checks every global_stepN left there is complete and verifies;
//   - lets a new writer begin and abort: the debris must be gone and the checkpoint still load;
//   - then puts the save directory back as it was for the next k.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "core/ckpt/checkpoint_dir.h"
#include "core/util/status_matchers.h"
#include "core/util/test_files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt::ckpt {
namespace {

using ::zt::testing::ListDirNames;

using ::testing::HasSubstr;

std::string Bytes(std::size_t n, int seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed * 7919) >> 3);
  return s;
}

// Sizes of the files a save writes; the rank-1 shard is streamed in 300-byte pieces.
constexpr std::size_t kModelBytes = 48, kRank0Bytes = 24, kRank1Bytes = 1000;

// A two-rank save whose contents depend on `seed`, so the parent can tell which one it loaded.
absl::Status Save(const std::string& save_dir, int64_t step, int seed, CheckpointWriterOptions options) {
  options.world_size = 2;
  options.zero_stage = 1;
  absl::StatusOr<CheckpointWriter> w = CheckpointWriter::Begin(save_dir, step, std::move(options));
  if (!w.ok()) return w.status();
  if (absl::Status s = w->AddFile("model.bin", Bytes(kModelBytes, seed), -1); !s.ok()) return s;
  if (absl::Status s = w->AddFile("optim_rank0.bin", Bytes(kRank0Bytes, seed + 1), 0); !s.ok()) return s;
  absl::StatusOr<FileSink> sink = w->OpenFile("optim_rank1.bin", 1);
  if (!sink.ok()) return sink.status();
  const std::string rank1 = Bytes(kRank1Bytes, seed + 2);
  for (std::size_t at = 0; at < rank1.size(); at += 300) {
    if (absl::Status s = sink->Append(absl::string_view(rank1).substr(at, 300)); !s.ok()) return s;
  }
  if (absl::Status s = w->FinishFile(std::move(*sink)); !s.ok()) return s;
  TensorEntry t;
  t.set_name("w");
  t.set_dtype("F32");
  t.add_shape(12);
  t.set_file("model.bin");
  t.set_nbytes(48);
  t.set_rank(-1);
  if (absl::Status s = w->AddTensor(t); !s.ok()) return s;
  w->SetMeta("seed", std::to_string(seed));
  return w->Commit();
}

// Checks `r` is exactly the checkpoint Save(step, seed) wrote.
void ExpectSaved(const CheckpointReader& r, int64_t step, int seed) {
  EXPECT_EQ(r.global_step(), step);
  EXPECT_EQ(r.manifest().meta().at("seed"), std::to_string(seed));
  EXPECT_EQ(r.ReadFile("model.bin").value_or("<error>"), Bytes(kModelBytes, seed));
  EXPECT_EQ(r.ReadFile("optim_rank0.bin").value_or("<error>"), Bytes(kRank0Bytes, seed + 1));
  EXPECT_EQ(r.ReadFile("optim_rank1.bin").value_or("<error>"), Bytes(kRank1Bytes, seed + 2));
}

struct ChildRun {
  bool killed = false;
  std::vector<std::string> steps;  // the write steps it reached; if killed, it died before the last
};

// Forks a child that runs `save` with a hook killing it before its kill_at-th write step.
ChildRun RunChild(int kill_at, const std::function<absl::Status(CheckpointWriterOptions)>& save) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  std::cout.flush();
  std::cerr.flush();
  const pid_t pid = ::fork();
  if (pid == 0) {  // the child: no gtest assertions here, only an exit status
    ::close(fds[0]);
    int reached = 0;
    CheckpointWriterOptions options;
    options.before_each_write_step = [&](absl::string_view step) {
      const std::string line = absl::StrCat(step, "\n");
      if (::write(fds[1], line.data(), line.size()) != static_cast<ssize_t>(line.size())) ::_exit(3);
      if (reached++ == kill_at) ::raise(SIGKILL);
    };
    const absl::Status status = save(std::move(options));
    if (!status.ok()) {
      const std::string line = absl::StrCat("ERROR ", status.ToString(), "\n");
      (void)!::write(fds[1], line.data(), line.size());
    }
    ::_exit(status.ok() ? 0 : 1);
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int wstatus = 0;
  EXPECT_EQ(::waitpid(pid, &wstatus, 0), pid);
  ChildRun run;
  run.killed = WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL;
  run.steps = absl::StrSplit(out, '\n', absl::SkipEmpty());
  if (!run.killed) {
    EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << "child failed: " << out;
  }
  return run;
}

// The index in `steps` of the first one starting with `verb` and ending with `suffix`, or -1.
int FindStep(const std::vector<std::string>& steps, absl::string_view verb, absl::string_view suffix) {
  for (int i = 0; i < static_cast<int>(steps.size()); ++i) {
    if (absl::StartsWith(steps[i], verb) && absl::EndsWith(steps[i], suffix)) return i;
  }
  return -1;
}

int FindStepContaining(const std::vector<std::string>& steps, absl::string_view part) {
  for (int i = 0; i < static_cast<int>(steps.size()); ++i) {
    if (absl::StrContains(steps[i], part)) return i;
  }
  return -1;
}

// Every global_stepN in save_dir loads and verifies; nothing else is there but `latest` and
// *.tmp-* debris.
void ExpectOnlyCompleteCheckpointsAndDebris(const std::string& save_dir) {
  for (const std::string& name : ListDirNames(save_dir)) {
    if (name == "latest" || absl::StrContains(name, ".tmp-")) continue;
    ASSERT_TRUE(ParseStepDirName(name).has_value()) << "unexpected " << name;
    EXPECT_THAT(OpenCheckpoint(save_dir + "/" + name).status(), IsOk()) << name << " is not complete";
  }
}

class CrashTest : public ::testing::Test {
 protected:
  void SetUp() override { save_ = std::string(std::getenv("TEST_TMPDIR")) + "/save"; }
  void Reset() {
    ASSERT_EQ(std::system(absl::StrCat("rm -rf '", save_, "'").c_str()), 0);
    ASSERT_THAT(Save(save_, 1, /*seed=*/1, {}), IsOk());
  }
  // After the checks on the state a kill left, a new writer cleans the debris.
  void ExpectNextWriterCleansUp(int64_t step, int seed) {
    absl::StatusOr<CheckpointWriter> next = CheckpointWriter::Begin(save_, 99);
    ASSERT_THAT(next.status(), IsOk());
    ASSERT_THAT(next->Abort(), IsOk());
    for (const std::string& name : ListDirNames(save_))
      EXPECT_FALSE(absl::StrContains(name, ".tmp-")) << name << " stays";
    absl::StatusOr<CheckpointReader> r = OpenCheckpoint(save_);
    ASSERT_THAT(r.status(), IsOk());
    ExpectSaved(*r, step, seed);
  }
  void Report(const std::string& what, const std::vector<std::string>& steps) {
    RecordProperty("kill_points", static_cast<int>(steps.size()));
    std::cout << what << ": killed at each of " << steps.size() << " write steps in turn (paths under " << save_
              << "):\n";
    for (const std::string& step : steps) std::cout << "  " << absl::StrReplaceAll(step, {{save_ + "/", ""}}) << "\n";
  }
  std::string save_;
};

TEST_F(CrashTest, KillAtEveryWriteStepOfANewStepLeavesTheLastCheckpointLoadable) {
  std::vector<std::string> all_steps;
  int k = 0;
  for (;; ++k) {
    SCOPED_TRACE(absl::StrCat("killed before write step ", k));
    Reset();
    if (HasFatalFailure()) return;
    const ChildRun run = RunChild(k, [&](CheckpointWriterOptions o) { return Save(save_, 2, 2, std::move(o)); });
    if (!run.killed) {
      ASSERT_EQ(static_cast<int>(run.steps.size()), k) << absl::StrJoin(run.steps, "\n");
      all_steps = run.steps;
      break;
    }
    ASSERT_EQ(static_cast<int>(run.steps.size()), k + 1);
    SCOPED_TRACE(absl::StrCat("at \"", run.steps.back(), "\""));
    // `latest` names step 2 once its rename has run, i.e. the kill came at a later step.
    const int switch_at = FindStep(run.steps, "rename ", "/latest");
    const bool switched = switch_at >= 0 && switch_at < k;

    absl::StatusOr<CheckpointReader> r = OpenCheckpoint(save_);
    ASSERT_THAT(r.status(), IsOk());
    ExpectSaved(*r, switched ? 2 : 1, switched ? 2 : 1);
    ExpectOnlyCompleteCheckpointsAndDebris(save_);
    // Step 1 is never touched.
    absl::StatusOr<CheckpointReader> one = OpenCheckpoint(save_ + "/global_step1");
    ASSERT_THAT(one.status(), IsOk());
    ExpectSaved(*one, 1, 1);
    ExpectNextWriterCleansUp(switched ? 2 : 1, switched ? 2 : 1);
  }
  Report("a new step", all_steps);
  // Every kind of step was among those killed at.
  for (const char* verb : {"mkdir ", "create ", "write ", "fsync ", "rename "}) {
    EXPECT_GE(FindStep(all_steps, verb, ""), 0) << verb;
  }
  EXPECT_GE(FindStep(all_steps, "rename ", "/global_step2"), 0);
  EXPECT_EQ(FindStep(all_steps, "rename ", "/latest"), k - 2);  // then only the directory fsync
  // A completed run leaves exactly the two checkpoints, step 2 latest.
  EXPECT_THAT(ListDirNames(save_), ::testing::ElementsAre("global_step1", "global_step2", "latest"));
}

// Re-saving the step `latest` names (a job resumed from it and reached it again): at every kill
// point the save directory holds a complete step 1, the old one or the new one.
TEST_F(CrashTest, KillAtEveryWriteStepOfAReplacementLeavesACompleteStep) {
  std::vector<std::string> all_steps;
  for (int k = 0;; ++k) {
    SCOPED_TRACE(absl::StrCat("killed before write step ", k));
    Reset();
    if (HasFatalFailure()) return;
    const ChildRun run = RunChild(k, [&](CheckpointWriterOptions o) { return Save(save_, 1, 5, std::move(o)); });
    if (!run.killed) {
      ASSERT_EQ(static_cast<int>(run.steps.size()), k);
      all_steps = run.steps;
      break;
    }
    ASSERT_EQ(static_cast<int>(run.steps.size()), k + 1);
    SCOPED_TRACE(absl::StrCat("at \"", run.steps.back(), "\""));
    // The new step 1 is in place once the exchange has run.  Without RENAME_EXCHANGE (the hook
    // still reports the attempt) it is two renames, the old directory set aside first; a kill
    // between them leaves `latest` naming a missing directory until the next writer puts the
    // old one back.
    const int aside_at = FindStepContaining(run.steps, ".old.tmp-");
    const int in_place_at = aside_at >= 0 ? FindStep(run.steps, "rename ", "/global_step1")
                                          : FindStep(run.steps, "exchange ", "/global_step1");
    const bool replaced = in_place_at >= 0 && in_place_at < k;
    const int seed = replaced ? 5 : 1;

    absl::StatusOr<CheckpointReader> r = OpenCheckpoint(save_);
    if (aside_at >= 0 && aside_at < k && !replaced) {
      EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("latest names global_step1, but")));
    } else {
      ASSERT_THAT(r.status(), IsOk());
      ExpectSaved(*r, 1, seed);
    }
    ExpectOnlyCompleteCheckpointsAndDebris(save_);
    ExpectNextWriterCleansUp(1, seed);
  }
  Report("replacing the latest step", all_steps);
  EXPECT_GE(FindStep(all_steps, "exchange ", "/global_step1"), 0) << "this filesystem has no RENAME_EXCHANGE";
  EXPECT_GE(FindStep(all_steps, "remove ", ""), 0);
  EXPECT_THAT(ListDirNames(save_), ::testing::ElementsAre("global_step1", "latest"));
}

}  // namespace
}  // namespace zt::ckpt
