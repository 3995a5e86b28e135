// ZeRO-Infinity beyond equivalence (engine_test's Nvme cases): what lives where, the bytes a
// step moves, and every way the swap directory can let a run down; optimizer state and
// parameter shards on NVMe.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
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

constexpr std::int64_t kParams = 8 * 16 + 16 + 16 * 4 + 4;  // MakeMlp(.., 8, 16, 4)

std::string TempDir() { return std::getenv("TEST_TMPDIR"); }

// `more`: members of offload_optimizer; `zero_more`: of zero_optimization.
absl::StatusOr<Config> NvmeConfig(const std::string& path, const std::string& more = "",
                                  const std::string& zero_more = "") {
  return Config::FromJson(
      absl::StrCat(R"({"train_micro_batch_size_per_gpu": 4, "optimizer": {"type": "AdamW"},
      "zero_optimization": {"stage": 3)",
                   zero_more, R"(, "offload_optimizer": {"device": "nvme", "nvme_path": ")", path, "\"", more, "}}}"),
      "nvme.json", {});
}

// One rank trains `steps` steps; `each_step` sees the engine after each.
absl::Status Train(const Config& config, int steps,
                   const std::function<absl::Status(Engine&, int)>& each_step = nullptr,
                   std::vector<at::Tensor>* final_params = nullptr) {
  return RunOnRanks(1, [&](Communicator& comm) -> absl::Status {
    std::shared_ptr<Communicator> borrowed(&comm, [](Communicator*) {});
    std::shared_ptr<Model> model = MakeMlp(1, 8, 16, 4);
    ASSIGN_OR_RETURN(auto engine, Engine::Create(model, config, borrowed));
    for (int step = 0; step < steps; ++step) {
      ASSIGN_OR_RETURN(at::Tensor loss, engine->Forward(MlpBatch(step, 4, 8, 4)));
      RETURN_IF_ERROR(engine->Backward(loss));
      RETURN_IF_ERROR(engine->Step());
      if (each_step) RETURN_IF_ERROR(each_step(*engine, step));
    }
    if (final_params != nullptr) {
      for (const auto& p : model->parameters()) final_params->push_back(p.detach().clone());
    }
    return absl::OkStatus();
  });
}

class EngineNvme : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { at::set_num_threads(1); }
};

// The state is in the swap file only, and a step reads and writes each sub-group once: 12
// bytes per parameter (fp32 master, exp_avg, exp_avg_sq) each way, in 4 KiB aligned regions.
TEST_F(EngineNvme, TheStateLivesInTheSwapFileAndEachStepMovesItOnce) {
  auto config = NvmeConfig(TempDir(), "", R"(, "sub_group_size": 100)");
  ASSERT_THAT(config, IsOk());
  const std::uint64_t bytes = HostAdam::SwapBytes(kParams, 100);
  EXPECT_EQ(bytes, 3u * 3 * 4096);  // 212 parameters: 3 sub-groups
  std::string path;
  std::uint64_t read = 0, written = 0;
  absl::Status s = Train(*config, 3, [&](Engine& e, int step) -> absl::Status {
    const HostAdam* h = e.host_optimizer();
    if (h == nullptr || !h->swapped() || h->exp_avg().defined() || e.io_engine() == nullptr) {
      return absl::InternalError("the optimizer state is not swapped");
    }
    path = h->swap_file()->path();
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 || static_cast<std::uint64_t>(st.st_size) != bytes) {
      return absl::InternalError(absl::StrCat(path, " is not ", bytes, " bytes"));
    }
    const std::uint64_t r = e.io_engine()->bytes_read() - read, w = e.io_engine()->bytes_written() - written;
    read += r;
    written += w;
    // Creation wrote the file once before step 0.
    const std::uint64_t want_w = step == 0 ? 2 * bytes : bytes;
    if (r != bytes || w != want_w) {
      return absl::InternalError(
          absl::StrCat("step ", step, ": read ", r, ", wrote ", w, "; want ", bytes, ", ", want_w));
    }
    return absl::OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_THAT(path, HasSubstr(TempDir() + "/zerotrain."));
  EXPECT_NE(::access(path.c_str(), F_OK), 0) << "the swap file outlived the engine";
}

// fast_init writes only the master weights at creation and reads only them at the first step.
TEST_F(EngineNvme, FastInitSkipsTheZeroMoments) {
  auto config = NvmeConfig(TempDir(), R"(, "fast_init": true)");
  ASSERT_THAT(config, IsOk());
  std::vector<std::uint64_t> moved;
  absl::Status s = Train(*config, 2, [&](Engine& e, int) -> absl::Status {
    moved.push_back(e.io_engine()->bytes_read());
    moved.push_back(e.io_engine()->bytes_written());
    return absl::OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s;
  // One sub-group of 212: regions of 4096 bytes.  Creation writes 4096, step 0 reads 4096 and
  // writes 12288, step 1 reads and writes 12288.
  EXPECT_THAT(moved, ::testing::ElementsAre(4096u, 4096u + 12288u, 4096u + 12288u, 2 * 12288u + 4096u));
}

// With io_uring refused (ZT_IO_URING=0, as under seccomp) the pread/pwrite pool swaps the same
// bytes and training computes the same parameters, bit for bit.
TEST_F(EngineNvme, ThePreadPoolTrainsExactlyAsIoUring) {
  auto config = NvmeConfig(TempDir(), R"(, "pipeline_read": true, "pipeline_write": true, "buffer_count": 2)");
  ASSERT_THAT(config, IsOk());
  std::vector<at::Tensor> uring, pool;
  bool used_uring = false, used_pool = true;
  ASSERT_TRUE(Train(
                  *config, 4,
                  [&](Engine& e, int) -> absl::Status {
                    used_uring = e.io_engine()->uses_io_uring();
                    return absl::OkStatus();
                  },
                  &uring)
                  .ok());
  ::setenv("ZT_IO_URING", "0", 1);
  absl::Status s = Train(
      *config, 4,
      [&](Engine& e, int) -> absl::Status {
        used_pool = !e.io_engine()->uses_io_uring();
        return absl::OkStatus();
      },
      &pool);
  ::unsetenv("ZT_IO_URING");
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_TRUE(used_uring);
  EXPECT_TRUE(used_pool);
  ASSERT_EQ(uring.size(), pool.size());
  for (std::size_t i = 0; i < uring.size(); ++i) EXPECT_TRUE(at::equal(uring[i], pool[i])) << i;
}

TEST_F(EngineNvme, AMissingOrUnusableNvmePathIsAClearError) {
  const std::string key = "zero_optimization.offload_optimizer.nvme_path";
  auto missing = NvmeConfig(TempDir() + "/not_there");
  ASSERT_THAT(missing, IsOk());
  EXPECT_THAT(Train(*missing, 1),
              StatusIs(absl::StatusCode::kNotFound, AllOf(HasSubstr(key), HasSubstr("/not_there"))));

  const std::string file = TempDir() + "/a_file";
  ASSERT_EQ(::close(::creat(file.c_str(), 0600)), 0);
  auto not_dir = NvmeConfig(file);
  ASSERT_THAT(not_dir, IsOk());
  EXPECT_THAT(Train(*not_dir, 1),
              StatusIs(absl::StatusCode::kFailedPrecondition, AllOf(HasSubstr(key), HasSubstr("is not a directory"))));

  std::string readonly = TempDir() + "/readonly";
  ASSERT_EQ(::mkdir(readonly.c_str(), 0500), 0);
  if (::geteuid() == 0) readonly = "/proc/self";  // root writes through permission bits
  auto unwritable = NvmeConfig(readonly);
  ASSERT_THAT(unwritable, IsOk());
  absl::Status s = Train(*unwritable, 1);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), AllOf(HasSubstr(key), HasSubstr("is not writable")));
}

// A file-size limit (what a full quota or disk looks like to the writer) stops the run when the
// swap file is reserved, naming it, instead of failing mid-step.
TEST_F(EngineNvme, ASwapFileThatCannotBeReservedStopsTheRunAtCreation) {
  auto config = NvmeConfig(TempDir());
  ASSERT_THAT(config, IsOk());
  struct rlimit old;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old;
  small.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  absl::Status s = Train(*config, 1);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old), 0);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), AllOf(HasSubstr("cannot reserve 12288 bytes"), HasSubstr(TempDir()),
                                              HasSubstr(".optimizer.swp"), HasSubstr(std::strerror(EFBIG))));
}

// A swap file cut short under a running job fails the step with the file, offset and reason;
// the parameters are not silently trained on zeros.
TEST_F(EngineNvme, ASwapFileTruncatedUnderUsFailsTheStep) {
  auto config = NvmeConfig(TempDir());
  ASSERT_THAT(config, IsOk());
  std::string path;
  absl::Status s = Train(*config, 2, [&](Engine& e, int step) -> absl::Status {
    path = e.host_optimizer()->swap_file()->path();
    if (step == 0 && ::truncate(path.c_str(), 4096) != 0) return absl::InternalError("truncate");
    return absl::OkStatus();
  });
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kOutOfRange, AllOf(HasSubstr("optimizer state swap"), HasSubstr(path),
                                                               HasSubstr("offset 4096"), HasSubstr("truncated"))));
}

// ---- parameters on NVMe (offload_param device nvme) -----------------------------------------

// A 2-block stack: 4 units with shards of 4,192 (attention) and 8,416 (feedforward) elements.
absl::StatusOr<Config> ParamNvmeConfig(const std::string& more) {
  return Config::FromJson(absl::StrCat(R"({"train_micro_batch_size_per_gpu": 2, "optimizer": {"type": "AdamW"},
      "zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 10,
        "offload_optimizer": {"device": "cpu"},
        "offload_param": {"device": "nvme", "nvme_path": ")",
                                       TempDir(), "\"", more, "}}}"),
                          "params.json", {});
}

TEST_F(EngineNvme, ShardsPastMaxInCpuLiveOnNvmeAndModifiedValuesReachThem) {
  auto config = ParamNvmeConfig(R"(, "max_in_cpu": 5000, "buffer_count": 2)");
  ASSERT_THAT(config, IsOk());
  absl::Status s = RunOnRanks(1, [&](Communicator& comm) -> absl::Status {
    std::shared_ptr<Communicator> borrowed(&comm, [](Communicator*) {});
    auto model = MakeTransformerStack(7, 2, 32, 2, 128);
    ASSIGN_OR_RETURN(auto engine, Engine::Create(model, *config, borrowed));
    const ParamSwap* swap = engine->stage3()->param_swap();
    if (swap == nullptr) return absl::InternalError("no parameter swap");
    // Unit 0 (4,192) fits max_in_cpu; units 1-3 (8,416 + 4,192 + 8,416 fp32) are swapped.
    const std::uint64_t want = ParamSwap::FileBytes({8416, 4192, 8416}, at::kFloat);
    if (swap->file().size() != want || engine->stage3()->params().defined()) {
      return absl::InternalError(absl::StrCat("swap file of ", swap->file().size(), " bytes, want ", want));
    }
    for (int step = 0; step < 2; ++step) {
      ASSIGN_OR_RETURN(at::Tensor loss, engine->Forward(TransformerBatch(step, 2, 4, 32)));
      RETURN_IF_ERROR(engine->Backward(loss));
      RETURN_IF_ERROR(engine->Step());
    }
    // Forward and backward fetch each swapped unit: 3 units x 2 passes x 2 steps at least.
    if (swap->fetches() < 12) return absl::InternalError(absl::StrCat(swap->fetches(), " fetches"));
    {
      ASSIGN_OR_RETURN(auto scope, engine->GatherParameters(/*modifier_rank=*/0));
      at::NoGradGuard g;
      for (auto& p : model->parameters()) p.fill_(0.25);
      RETURN_IF_ERROR(scope->Release());
    }
    ASSIGN_OR_RETURN(auto read, engine->GatherParameters());
    for (const auto& p : model->parameters()) {
      if (!p.eq(0.25).all().item<bool>()) return absl::InternalError("a modified value did not come back");
    }
    RETURN_IF_ERROR(read->Release());
    // The optimizer's master weights took them too (shards end with zero padding).
    ASSIGN_OR_RETURN(HostAdam::State state, engine->host_optimizer()->ReadState());
    if (!(state.master.eq(0.25) | state.master.eq(0)).all().item<bool>()) {
      return absl::InternalError("master weights");
    }
    return engine->Shutdown();
  });
  EXPECT_TRUE(s.ok()) << s;
}

TEST_F(EngineNvme, AShardLargerThanBufferSizeIsNamed) {
  auto config = ParamNvmeConfig(R"(, "max_in_cpu": 0, "buffer_size": 5000)");
  ASSERT_THAT(config, IsOk());
  absl::Status s = RunOnRanks(1, [&](Communicator& comm) -> absl::Status {
    std::shared_ptr<Communicator> borrowed(&comm, [](Communicator*) {});
    return Engine::Create(MakeTransformerStack(7, 2, 32, 2, 128), *config, borrowed).status();
  });
  EXPECT_THAT(
      s, StatusIs(absl::StatusCode::kFailedPrecondition,
                  AllOf(HasSubstr("8416 elements"), HasSubstr("zero_optimization.offload_param.buffer_size (5000)"))));
}

}  // namespace
}  // namespace zt::testing
