// //tools:zero_to_fp32 streams: converting a 384 MiB checkpoint (24 fp32 tensors of 16 MiB over 2
// ranks) takes no more memory than converting a tiny one, give or take a few tensors' worth —
// DeepSpeed's converter holds the whole model.  The binary runs as a child process; wait4()
// reports its peak RSS (ru_maxrss).  That figure is at least this process's RSS when it forks, so
// this test links no LibTorch and builds the checkpoint a megabyte at a time to keep its own small.
//
// Also the command line's exit codes: 2 for a usage error, 1 for a checkpoint it cannot convert.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/ckpt/checkpoint_dir.h"
#include "core/util/status_matchers.h"
#include "core/util/test_files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt::tools {
namespace {

using ::zt::testing::Slurp;

using ::testing::HasSubstr;

constexpr int kTensors = 24;
constexpr int64_t kMiB = int64_t{1} << 20;

std::string TmpDir() { return std::getenv("TEST_TMPDIR"); }

std::string Binary() {
  return absl::StrCat(std::getenv("TEST_SRCDIR"), "/", std::getenv("TEST_WORKSPACE"), "/tools/zero_to_fp32");
}

// Element j of tensor i: exact in fp32, the same whichever slice carries it.
float Value(int i, int64_t j) { return static_cast<float>((j * 7919 + i * 104729) % 1000003) * 0.25f - 1e5f; }

// This process's resident memory now (VmRSS), in KiB.
long SelfRssKiB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

// A checkpoint of kTensors fp32 tensors [rows, 1024] named t00..t23, their concatenation cut
// into 2 ranks a little off the middle (so one tensor straddles the ranks).
absl::Status WriteCheckpoint(const std::string& save_dir, int64_t rows) {
  const int64_t numel = rows * 1024;
  const int64_t total = numel * kTensors;
  const int64_t cut = total / 2 + 1000;
  ckpt::CheckpointWriterOptions options;
  options.world_size = 2;
  options.zero_stage = 2;
  absl::StatusOr<ckpt::CheckpointWriter> w = ckpt::CheckpointWriter::Begin(save_dir, 1, options);
  if (!w.ok()) return w.status();
  for (int r = 0; r < 2; ++r) {
    const int64_t lo = r == 0 ? 0 : cut, hi = r == 0 ? cut : total;
    const std::string file = absl::StrFormat("zero_rank_%05d_states.bin", r);
    absl::StatusOr<ckpt::FileSink> sink = w->OpenFile(file, r);
    if (!sink.ok()) return sink.status();
    std::string chunk;
    for (int64_t k = lo; k < hi; ++k) {
      const float v = Value(static_cast<int>(k / numel), k % numel);
      chunk.append(reinterpret_cast<const char*>(&v), sizeof(v));
      if (chunk.size() == static_cast<std::size_t>(kMiB) || k + 1 == hi) {
        if (absl::Status s = sink->Append(chunk); !s.ok()) return s;
        chunk.clear();
      }
    }
    if (absl::Status s = w->FinishFile(*std::move(sink)); !s.ok()) return s;
    for (int i = 0; i < kTensors; ++i) {
      const int64_t begin = std::max(lo, i * numel), end = std::min(hi, (i + 1) * numel);
      if (begin >= end) continue;
      ckpt::TensorEntry e;
      e.set_name(absl::StrFormat("master/t%02d", i));
      e.set_dtype("F32");
      e.add_shape(rows);
      e.add_shape(1024);
      e.set_file(file);
      e.set_offset((begin - lo) * 4);
      e.set_nbytes((end - begin) * 4);
      e.set_rank(r);
      e.mutable_partition()->set_begin(begin - i * numel);
      e.mutable_partition()->set_end(end - i * numel);
      if (absl::Status s = w->AddTensor(std::move(e)); !s.ok()) return s;
    }
  }
  if (absl::Status s = w->AddFile("config.json", "{}", -1); !s.ok()) return s;
  return w->Commit();
}

struct ToolRun {
  int exit_code = -1;
  long max_rss_kib = 0;
  std::string output;  // stdout and stderr
};

ToolRun RunTool(const std::vector<std::string>& args) {
  const std::string log = TmpDir() + "/tool_output.txt";
  std::vector<std::string> argv_strings = {Binary()};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  ToolRun run;
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ::dup2(fd, 1) < 0 || ::dup2(fd, 2) < 0) ::_exit(127);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  EXPECT_GT(pid, 0) << std::strerror(errno);
  int status = 0;
  struct rusage usage {};
  EXPECT_EQ(::wait4(pid, &status, 0, &usage), pid) << std::strerror(errno);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  run.max_rss_kib = usage.ru_maxrss;
  run.output = Slurp(log);
  return run;
}

TEST(ZeroToFp32Memory, PeakRssDoesNotGrowWithTheModel) {
  const std::string dir = TmpDir() + "/memory";
  ASSERT_EQ(std::system(absl::StrCat("rm -rf '", dir, "' && mkdir -p '", dir, "'").c_str()), 0);
  constexpr int64_t kBigRows = 4096;  // 4096 x 1024 fp32: 16 MiB a tensor, 384 MiB in all
  ASSERT_OK(WriteCheckpoint(dir + "/tiny", 1));
  ASSERT_OK(WriteCheckpoint(dir + "/big", kBigRows));
  std::printf("test process RSS before the runs: %.1f MiB\n", SelfRssKiB() / 1024.0);

  for (const std::string dtype : {"fp32", "bf16"}) {
    const ToolRun tiny = RunTool({dir + "/tiny", dir + "/tiny_out", "--dtype", dtype});
    ASSERT_EQ(tiny.exit_code, 0) << tiny.output;
    const ToolRun big = RunTool({dir + "/big", dir + "/big_out", "--dtype", dtype});
    ASSERT_EQ(big.exit_code, 0) << big.output;
    EXPECT_THAT(big.output, HasSubstr(absl::StrCat("24 tensors, ", kTensors * kBigRows * 1024, " parameters")));

    const int64_t element = dtype == "fp32" ? 4 : 2;
    const std::string out = dir + "/big_out/model.safetensors";
    struct stat st {};
    ASSERT_EQ(::stat(out.c_str(), &st), 0);
    EXPECT_GT(st.st_size, kTensors * kBigRows * 1024 * element);
    if (dtype == "fp32") {  // spot checks: the first, the straddling and the last tensor
      std::ifstream in(out, std::ios::binary);
      uint64_t header = 0;
      in.read(reinterpret_cast<char*>(&header), 8);
      for (const auto& [i, j] : std::vector<std::pair<int, int64_t>>{
               {0, 0}, {11, kBigRows * 1024 - 1}, {12, 0}, {12, 999}, {12, 1000}, {23, kBigRows * 1024 - 1}}) {
        float got = 0;
        in.seekg(static_cast<std::streamoff>(8 + header + (i * kBigRows * 1024 + j) * 4));
        in.read(reinterpret_cast<char*>(&got), 4);
        EXPECT_EQ(got, Value(i, j)) << "t" << i << "[" << j << "]";
      }
    }

    const double largest_mib = kBigRows * 1024 * 4 / static_cast<double>(kMiB);
    const double grew_mib = (big.max_rss_kib - tiny.max_rss_kib) / 1024.0;
    std::printf(
        "zero_to_fp32 --dtype %s peak RSS: tiny checkpoint %.1f MiB, 384 MiB checkpoint %.1f MiB: +%.1f MiB "
        "(largest tensor %.0f MiB, limit 4x = %.0f MiB)\n",
        dtype.c_str(), tiny.max_rss_kib / 1024.0, big.max_rss_kib / 1024.0, grew_mib, largest_mib, 4 * largest_mib);
    EXPECT_LT(grew_mib, 4 * largest_mib) << big.output;
    ASSERT_EQ(std::system(absl::StrCat("rm -rf '", dir, "/big_out' '", dir, "/tiny_out'").c_str()), 0);
  }
  ASSERT_EQ(std::system(absl::StrCat("rm -rf '", dir, "'").c_str()), 0);
}

TEST(ZeroToFp32CommandLine, ExitCodes) {
  const std::string dir = TmpDir() + "/cli";
  ASSERT_EQ(std::system(absl::StrCat("rm -rf '", dir, "' && mkdir -p '", dir, "'").c_str()), 0);
  ASSERT_OK(WriteCheckpoint(dir + "/save", 1));

  ToolRun r = RunTool({dir + "/save"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("usage: zero_to_fp32 CHECKPOINT_DIR OUTPUT_DIR"));
  r = RunTool({dir + "/save", dir + "/out", "--dtype", "fp8"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("unknown dtype \"fp8\""));
  r = RunTool({dir + "/save", dir + "/out", "--frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("unknown flag --frobnicate"));
  r = RunTool({dir + "/nowhere", dir + "/out"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("zero_to_fp32: error: " + dir + "/nowhere: no such checkpoint"));
  r = RunTool({dir + "/save", dir + "/out", "--tag", "global_step7"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("tags there: global_step1"));

  r = RunTool({dir + "/save", dir + "/out", "--tag=global_step1", "--dtype=bf16"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("zero_to_fp32: wrote " + dir + "/out/model.safetensors: 24 tensors"));
  EXPECT_THAT(r.output, HasSubstr("copied config.json"));
  ASSERT_EQ(std::system(absl::StrCat("rm -rf '", dir, "'").c_str()), 0);
}

}  // namespace
}  // namespace zt::tools
