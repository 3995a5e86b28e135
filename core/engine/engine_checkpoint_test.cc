// Engine::SaveCheckpoint / LoadCheckpoint: an interrupted run resumed from its checkpoint gives
// the uninterrupted run's losses and parameters bit for bit (stages 0-3, offload to host memory
// and to NVMe, world 1 and 2, bf16), a checkpoint loads at another world size and stage, a
// corrupt one loads nothing, rotation keeps the newest, and a writer SIGKILLed at any of its
// write steps leaves a checkpoint that loads and resumes exactly.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/ckpt/checkpoint_dir.h"
#include "core/comm/local_group.h"
#include "core/engine/engine.h"
#include "core/engine/test_models.h"
#include "core/util/status_macros.h"
#include "core/util/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr int kSteps = 6;  // the uninterrupted run; the interrupted one saves after kSteps / 2

std::string TempDir() { return std::getenv("TEST_TMPDIR"); }

struct Case {
  int stage = 0;
  int world = 1;
  std::string dtype = "fp32";  // fp32 | bf16
  std::string offload;         // "" | cpu | nvme (the optimizer; nvme also puts parameters there)
  int gas = 1;
  bool block = false;  // the transformer block instead of the MLP
  std::string Name() const {
    return absl::StrCat("stage", stage, "_world", world, "_", dtype, offload.empty() ? "" : "_offload_", offload,
                        gas > 1 ? absl::StrCat("_gas", gas) : "", block ? "_block" : "");
  }
};

Config MakeConfig(const Case& c, const std::string& swap_dir) {
  std::string zero = absl::StrCat(R"("stage": )", c.stage);
  if (c.stage == 3) {
    zero += R"(, "stage3_param_persistence_threshold": 10, "stage3_prefetch_bucket_size": 200,
               "stage3_max_live_parameters": 3000)";
  }
  if (c.offload == "cpu") zero += R"(, "offload_optimizer": {"device": "cpu"})";
  if (c.offload == "nvme") {
    zero += absl::StrCat(R"(, "sub_group_size": 100, "offload_optimizer": {"device": "nvme", "nvme_path": ")", swap_dir,
                         R"("}, "offload_param": {"device": "nvme", "nvme_path": ")", swap_dir, R"("})");
  }
  const std::string json = absl::StrCat(
      R"({"train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": )", c.gas,
      R"(, "gradient_clipping": 1.0, "optimizer": {"type": "AdamW", "params": {"lr": 0.01, "weight_decay": 0.01}},
      "scheduler": {"type": "WarmupDecayLR", "params": {"warmup_num_steps": 2, "total_num_steps": 10}},
      "bf16": {"enabled": )",
      c.dtype == "bf16" ? "true" : "false", R"(}, "zero_optimization": {)", zero, "}}");
  absl::StatusOr<Config> config = Config::FromJson(json, c.Name() + ".json", {});
  EXPECT_THAT(config, IsOk());
  return *config;
}

// The batches come from the default generator (seeded once per run), so a resumed run gets the
// same data only if the generator's state was restored.  Ranks are threads here and share that
// generator, so at world 2 they draw under a lock in rank order.
class Batches {
 public:
  explicit Batches(int world) : world_(world) {}
  Batch Next(int rank, bool block) {
    std::unique_lock<std::mutex> lock(mu_);
    turn_.wait(lock, [&] { return next_ == rank; });
    Batch b = block ? Batch{{"x", at::randn({2, 3, 8})}, {"y", at::randn({2, 3, 8})}}
                    : Batch{{"x", at::randn({2, 8})}, {"y", at::randn({2, 4})}};
    next_ = (next_ + 1) % world_;
    turn_.notify_all();
    return b;
  }

 private:
  int world_;
  std::mutex mu_;
  std::condition_variable turn_;
  int next_ = 0;
};

struct RunResult {
  std::vector<double> losses;      // rank 0's, per micro-step
  std::vector<at::Tensor> params;  // rank 0's whole parameters (fp32) at the end
  std::vector<double> lrs;         // per optimizer step
};

struct RunSpec {
  std::string load;  // a checkpoint to resume from
  std::string save;  // a save directory: save after `save_after` optimizer steps
  int save_after = -1;
  int steps = kSteps;            // run until global_steps() reaches this
  std::uint64_t model_seed = 1;  // the resumed run starts from other weights: the load must replace them
  SaveCheckpointOptions save_options;
};

// Trains `steps` optimizer steps and saves there.
RunSpec TrainAndSave(const std::string& dir, int steps) {
  RunSpec spec;
  spec.save = dir;
  spec.save_after = steps;
  spec.steps = steps;
  return spec;
}

absl::StatusOr<RunResult> Train(const Case& c, const RunSpec& spec) {
  RunResult out;
  std::mutex mu;
  const std::string swap = absl::StrCat(TempDir(), "/swap_", c.Name());
  ::mkdir(swap.c_str(), 0755);
  const Config config = MakeConfig(c, swap);
  Batches batches(c.world);
  std::shared_ptr<Model> first =
      c.block ? MakeTransformerBlock(spec.model_seed, 8, 2, 16) : MakeMlp(spec.model_seed, 8, 16, 4);
  at::manual_seed(1234 + spec.model_seed);  // the data generator (overwritten by a load)
  absl::Status s = RunOnRanks(c.world, [&](Communicator& comm) -> absl::Status {
    std::shared_ptr<Communicator> borrowed(&comm, [](Communicator*) {});
    std::shared_ptr<Model> model = comm.rank() == 0 ? first
                                                    : (c.block ? MakeTransformerBlock(spec.model_seed, 8, 2, 16)
                                                               : MakeMlp(spec.model_seed, 8, 16, 4));
    ASSIGN_OR_RETURN(auto engine, Engine::Create(model, config, borrowed));
    if (!spec.load.empty()) RETURN_IF_ERROR(engine->LoadCheckpoint(spec.load).status());
    while (engine->global_steps() < spec.steps) {
      const Batch b = batches.Next(comm.rank(), c.block);
      ASSIGN_OR_RETURN(at::Tensor loss, engine->Forward(b));
      RETURN_IF_ERROR(engine->Backward(loss));
      const std::int64_t before = engine->global_steps();
      RETURN_IF_ERROR(engine->Step());
      if (comm.rank() == 0) {
        out.losses.push_back(loss.item<double>());
        if (engine->global_steps() != before) out.lrs.push_back(engine->lr());
      }
      if (engine->global_steps() != before && engine->global_steps() == spec.save_after) {
        RETURN_IF_ERROR(engine->SaveCheckpoint(spec.save, spec.save_options));
      }
    }
    ASSIGN_OR_RETURN(auto scope, engine->GatherParameters());
    if (comm.rank() == 0) {
      std::lock_guard<std::mutex> lock(mu);
      for (const auto& p : model->parameters()) out.params.push_back(p.detach().to(at::kFloat).clone());
    }
    RETURN_IF_ERROR(scope->Release());
    return engine->Shutdown();
  });
  if (!s.ok()) return s;
  return out;
}

void ExpectIdentical(const RunResult& want, const RunResult& got, const std::string& what) {
  ASSERT_EQ(want.params.size(), got.params.size()) << what;
  for (std::size_t i = 0; i < want.params.size(); ++i) {
    EXPECT_TRUE(at::equal(want.params[i], got.params[i]))
        << what << ": parameter " << i << " differs by " << (want.params[i] - got.params[i]).abs().max().item<double>();
  }
}

class EngineCheckpoint : public ::testing::TestWithParam<Case> {
 protected:
  static void SetUpTestSuite() { at::set_num_threads(1); }
};

// Interrupted after 3 of 6 steps and resumed in a fresh engine (other initial weights, another
// generator state): the losses of steps 4-6 and the final parameters are the uninterrupted
// run's, bit for bit.
TEST_P(EngineCheckpoint, ResumeIsExact) {
  const Case c = GetParam();
  const std::string dir = absl::StrCat(TempDir(), "/resume_", c.Name());
  ASSERT_OK_AND_ASSIGN(RunResult whole, Train(c, {}));
  ASSERT_OK_AND_ASSIGN(RunResult head, Train(c, TrainAndSave(dir, kSteps / 2)));
  RunSpec second;
  second.load = dir;
  second.model_seed = 99;
  ASSERT_OK_AND_ASSIGN(RunResult tail, Train(c, second));

  ASSERT_EQ(head.losses.size() + tail.losses.size(), whole.losses.size());
  for (std::size_t i = 0; i < whole.losses.size(); ++i) {
    const double got = i < head.losses.size() ? head.losses[i] : tail.losses[i - head.losses.size()];
    EXPECT_EQ(got, whole.losses[i]) << "micro-step " << i;
  }
  for (std::size_t i = 0; i < tail.lrs.size(); ++i) EXPECT_EQ(tail.lrs[i], whole.lrs[head.lrs.size() + i]);
  ExpectIdentical(whole, tail, c.Name());

  // The manifest says what was saved and by whom.
  ASSERT_OK_AND_ASSIGN(ckpt::CheckpointReader r, ckpt::OpenCheckpoint(dir));
  EXPECT_EQ(r.global_step(), kSteps / 2);
  EXPECT_EQ(r.manifest().world_size(), c.world);
  EXPECT_EQ(r.manifest().zero_stage(), c.stage);
  EXPECT_EQ(r.FindTensor("param/fc1.module.weight").empty(), c.block || c.dtype == "fp32");
  EXPECT_FALSE(
      r.FindTensor(c.block ? "master/block0.attention.module.qkv.weight" : "master/fc1.module.weight").empty());
}

std::vector<Case> ResumeCases() {
  std::vector<Case> out;
  for (int world : {1, 2}) {
    for (int stage : {0, 1, 2, 3}) out.push_back({stage, world});
    out.push_back({2, world, "bf16"});
    out.push_back({3, world, "bf16"});
    out.push_back({2, world, "fp32", "cpu"});
    out.push_back({3, world, "bf16", "cpu"});
    out.push_back({3, world, "fp32", "nvme"});
  }
  out.push_back({1, 2, "fp32", "", 2});
  out.push_back({3, 2, "bf16", "", 1, true});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, EngineCheckpoint, ::testing::ValuesIn(ResumeCases()),
                         [](const ::testing::TestParamInfo<Case>& i) { return i.param.Name(); });

class EngineCheckpointUniversal : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { at::set_num_threads(1); }
};

// Saved by 2 ranks at stage 3, loaded by 1 at stage 0 (which then holds the same weights), saved
// again and loaded by 2 at stage 3: the round trip changes nothing, so the continuation is the
// uninterrupted run's bit for bit.
TEST_F(EngineCheckpointUniversal, TwoRanksStage3ToOneRankStage0AndBack) {
  const Case two = {3, 2, "bf16", "", 1, true};
  const Case one = {0, 1, "bf16", "", 1, true};
  const std::string a = TempDir() + "/universal_a", b = TempDir() + "/universal_b";
  ASSERT_OK_AND_ASSIGN(RunResult whole, Train(two, {}));
  ASSERT_OK_AND_ASSIGN(RunResult head, Train(two, TrainAndSave(a, kSteps / 2)));
  // 1 x stage 0 loads it (no training: the steps are reached) and holds the same weights.
  RunSpec through;
  through.load = a;
  through.steps = kSteps / 2;
  through.model_seed = 5;
  ASSERT_OK_AND_ASSIGN(RunResult mid, Train(one, through));
  ExpectIdentical(head, mid, "2 x stage 3 -> 1 x stage 0");
  {
    // Loaded and saved again by one rank at stage 0, without a step between.
    const std::string swap = TempDir();
    const Config config = MakeConfig(one, swap);
    ASSERT_OK(RunOnRanks(1, [&](Communicator& comm) -> absl::Status {
      std::shared_ptr<Communicator> borrowed(&comm, [](Communicator*) {});
      ASSIGN_OR_RETURN(auto engine, Engine::Create(MakeTransformerBlock(7, 8, 2, 16), config, borrowed));
      RETURN_IF_ERROR(engine->LoadCheckpoint(a).status());
      RETURN_IF_ERROR(engine->SaveCheckpoint(b));
      return engine->Shutdown();
    }));
  }
  ASSERT_OK_AND_ASSIGN(ckpt::CheckpointReader rb, ckpt::OpenCheckpoint(b));
  EXPECT_EQ(rb.manifest().world_size(), 1);
  EXPECT_EQ(rb.manifest().zero_stage(), 0);
  RunSpec back;
  back.load = b;
  back.model_seed = 11;
  ASSERT_OK_AND_ASSIGN(RunResult tail, Train(two, back));
  ASSERT_EQ(tail.losses.size(), kSteps / 2);
  for (std::size_t i = 0; i < tail.losses.size(); ++i) {
    EXPECT_EQ(tail.losses[i], whole.losses[kSteps / 2 + i]) << "micro-step " << kSteps / 2 + i;
  }
  ExpectIdentical(whole, tail, "2 x stage 3 -> 1 x stage 0 -> 2 x stage 3");
}

// Another model's checkpoint, or one with a parameter of another shape, is refused by name.
TEST_F(EngineCheckpointUniversal, AnotherModelIsRefused) {
  const Case mlp = {2, 1};
  const std::string dir = TempDir() + "/other_model";
  ASSERT_OK(Train(mlp, TrainAndSave(dir, 1)).status());
  Case block = mlp;
  block.block = true;
  RunSpec load;
  load.load = dir;
  EXPECT_THAT(Train(block, load).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("saved from another model"), HasSubstr("fc1.module.weight"))));
}

class EngineCheckpointFiles : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { at::set_num_threads(1); }
};

void FlipByte(const std::string& path, long offset) {
  std::FILE* f = std::fopen(path.c_str(), "r+b");
  ASSERT_NE(f, nullptr) << path;
  std::fseek(f, offset, SEEK_SET);
  const int c = std::fgetc(f);
  std::fseek(f, offset, SEEK_SET);
  std::fputc(c ^ 0x10, f);
  std::fclose(f);
}

// A flipped bit in rank 1's shard, a truncated shard or a corrupt manifest: every rank's load
// fails naming the file (rank 1's) or the rank that could not read, and the engines keep their
// own weights.
TEST_F(EngineCheckpointFiles, CorruptionLoadsNothing) {
  const Case c = {2, 2};
  const std::string dir = TempDir() + "/corrupt";
  ASSERT_OK(Train(c, TrainAndSave(dir, 2)).status());
  const std::string step = dir + "/global_step2";
  const std::string shard1 = step + "/zero_rank_00001_states.bin";

  const auto load_fails = [&](const std::string& what, const std::vector<std::string>& message_parts) {
    const Config config = MakeConfig(c, TempDir());
    std::mutex mu;
    std::vector<std::string> messages(2);
    absl::Status s = RunOnRanks(2, [&](Communicator& comm) -> absl::Status {
      std::shared_ptr<Communicator> borrowed(&comm, [](Communicator*) {});
      std::shared_ptr<Model> model = MakeMlp(3, 8, 16, 4);
      const at::Tensor before = model->parameters()[0].detach().clone();
      ASSIGN_OR_RETURN(auto engine, Engine::Create(model, config, borrowed));
      absl::StatusOr<LoadedCheckpoint> loaded = engine->LoadCheckpoint(dir);
      {
        std::lock_guard<std::mutex> lock(mu);
        messages[comm.rank()] = loaded.status().ToString();
      }
      if (loaded.ok()) return absl::InternalError("loaded");
      if (!at::equal(before, model->parameters()[0].detach())) return absl::InternalError("weights changed");
      return engine->Shutdown();
    });
    EXPECT_OK(s) << what;
    for (const std::string& part : message_parts) {
      EXPECT_TRUE(absl::StrContains(messages[0] + messages[1], part))
          << what << ": " << messages[0] << " | " << messages[1];
    }
  };

  FlipByte(shard1, 100);
  load_fails("flipped bit", {"zero_rank_00001_states.bin", "corrupt", "rank 1 could not read"});
  FlipByte(shard1, 100);  // back
  struct stat st {};
  ASSERT_EQ(::stat(shard1.c_str(), &st), 0);
  ASSERT_EQ(::truncate(shard1.c_str(), st.st_size - 8), 0);
  load_fails("truncated", {"zero_rank_00001_states.bin", "truncated"});
  FlipByte(step + "/manifest.pb", 20);
  load_fails("manifest", {"manifest.pb", "corrupt"});
}

// keep 2: after four saves the two newest remain, and `latest` names the newest.
TEST_F(EngineCheckpointFiles, RotationKeepsTheNewest) {
  const Case c = {1, 1};
  const std::string dir = TempDir() + "/rotate";
  const Config config = MakeConfig(c, TempDir());
  ASSERT_OK(RunOnRanks(1, [&](Communicator& comm) -> absl::Status {
    std::shared_ptr<Communicator> borrowed(&comm, [](Communicator*) {});
    ASSIGN_OR_RETURN(auto engine, Engine::Create(MakeMlp(1, 8, 16, 4), config, borrowed));
    SaveCheckpointOptions o;
    o.keep = 2;
    for (int i = 0; i < 4; ++i) {
      ASSIGN_OR_RETURN(at::Tensor loss, engine->Forward(MlpBatch(i, 2, 8, 4)));
      RETURN_IF_ERROR(engine->Backward(loss));
      RETURN_IF_ERROR(engine->Step());
      RETURN_IF_ERROR(engine->SaveCheckpoint(dir, o));
    }
    return engine->Shutdown();
  }));
  ASSERT_OK_AND_ASSIGN(std::vector<std::int64_t> steps, ckpt::ListCheckpointSteps(dir));
  EXPECT_EQ(steps, (std::vector<std::int64_t>{3, 4}));
  ASSERT_OK_AND_ASSIGN(ckpt::CheckpointReader r, ckpt::OpenCheckpoint(dir));
  EXPECT_EQ(r.global_step(), 4);
}

// A checkpoint is taken between optimizer steps only.
TEST_F(EngineCheckpointFiles, SaveInsideAnAccumulationIsRefused) {
  Case c = {0, 1};
  c.gas = 2;
  const Config config = MakeConfig(c, TempDir());
  ASSERT_OK(RunOnRanks(1, [&](Communicator& comm) -> absl::Status {
    std::shared_ptr<Communicator> borrowed(&comm, [](Communicator*) {});
    ASSIGN_OR_RETURN(auto engine, Engine::Create(MakeMlp(1, 8, 16, 4), config, borrowed));
    ASSIGN_OR_RETURN(at::Tensor loss, engine->Forward(MlpBatch(0, 2, 8, 4)));
    RETURN_IF_ERROR(engine->Backward(loss));
    RETURN_IF_ERROR(engine->Step());
    EXPECT_THAT(engine->SaveCheckpoint(TempDir() + "/inside"),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("inside an accumulation")));
    return engine->Shutdown();
  }));
}

// --- crash safety -------------------------------------------------------------------------------
// The test binary runs itself as the writer (ZT_CRASH_AT=k): it trains 2 steps and saves, trains
// 2 more and saves again, SIGKILLing itself before its k-th write step of that second save.
// Afterwards the save directory must load (step 2 or, once the kill came late enough, step 4)
// and the run resumed from it must end as the uninterrupted one.
constexpr int kCrashSteps = 6;

TEST(EngineCheckpointCrashChild, Run) {
  const char* at_env = std::getenv("ZT_CRASH_AT");
  const char* dir_env = std::getenv("ZT_CRASH_DIR");
  if (at_env == nullptr || dir_env == nullptr) GTEST_SKIP() << "the writer process of EngineCheckpointCrash";
  at::set_num_threads(1);
  const int kill_at = std::atoi(at_env);
  RunSpec spec;
  spec.save = dir_env;
  spec.steps = 4;
  spec.save_after = 2;
  // First save untouched, then the second one with the kill.
  ASSERT_OK(Train({2, 1, "bf16"}, spec).status());
  spec.load = dir_env;
  int points = 0;
  spec.save_options.before_each_write_step = [&](absl::string_view) {
    if (++points == kill_at) ::kill(::getpid(), SIGKILL);
  };
  spec.save_after = 4;
  ASSERT_OK(Train({2, 1, "bf16"}, spec).status());
  std::printf("ZT_CRASH_POINTS %d\n", points);
}

TEST(EngineCheckpointCrash, EveryWritePointLeavesALoadableCheckpoint) {
  at::set_num_threads(1);
  const Case c = {2, 1, "bf16"};
  RunSpec whole_spec;
  whole_spec.steps = kCrashSteps;
  ASSERT_OK_AND_ASSIGN(RunResult whole, Train(c, whole_spec));
  int killed = 0;
  for (int k = 1; k < 200; ++k) {
    const std::string dir = absl::StrCat(TempDir(), "/crash_", k);
    const std::string log = dir + ".log";
    const pid_t pid = ::fork();
    if (pid == 0) {
      // The writer must not touch the parent's test outputs.
      for (const char* v : {"XML_OUTPUT_FILE", "GTEST_OUTPUT", "TEST_PREMATURE_EXIT_FILE", "TEST_SHARD_STATUS_FILE"}) {
        ::unsetenv(v);
      }
      ::setenv("ZT_CRASH_AT", std::to_string(k).c_str(), 1);
      ::setenv("ZT_CRASH_DIR", dir.c_str(), 1);
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execl("/proc/self/exe", "child", "--gtest_filter=EngineCheckpointCrashChild.Run", nullptr);
      ::_exit(127);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    const bool was_killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    if (!was_killed) {
      std::ifstream in(log);
      std::stringstream text;
      text << in.rdbuf();
      ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "writer " << k << ":\n" << text.str();
      ASSERT_THAT(text.str(), HasSubstr("ZT_CRASH_POINTS"));
      break;
    }
    ++killed;
    SCOPED_TRACE(absl::StrCat("killed at write step ", k));
    ASSERT_OK_AND_ASSIGN(ckpt::CheckpointReader r, ckpt::OpenCheckpoint(dir));
    ASSERT_TRUE(r.global_step() == 2 || r.global_step() == 4) << r.global_step();
    RunSpec resume;
    resume.load = dir;
    resume.steps = kCrashSteps;
    resume.model_seed = 42;
    ASSERT_OK_AND_ASSIGN(RunResult tail, Train(c, resume));
    ExpectIdentical(whole, tail,
                    absl::StrCat("resumed after a kill at write step ", k, " from step ", r.global_step()));
  }
  std::printf("the writer was killed at each of its %d write steps in turn\n", killed);
  EXPECT_GE(killed, 20);
}

}  // namespace
}  // namespace zt::testing
