// io_bench: sequential read and write GB/s of zerotrain's io_uring engine (io/io_engine.h), the
// role of DeepSpeed's ds_io, beside fio running the same workload.
//
//   bazel run -c opt //tools:io_bench -- --dir /local_nvme --file_size 2G --block_size 1M --queue_depth 32
//
// The workload: one file of --file_size, written then read front to back in --block_size
// pieces with --queue_depth pieces in flight on each of --threads workers (rings), O_DIRECT
// unless --direct=false, through one host buffer of --buffer_size bytes (mlocked and
// registered with the rings unless --lock=false / --register=false; --buffer_size set to the
// file size is DeepSpeed ds_io's workload).  The data is validated first (written, read back, compared), then each
// direction is timed --repeats times and the best run counts.  When fio is on PATH the same
// workload runs through `fio --ioengine=io_uring` and `--ioengine=libaio` (--numjobs=threads,
// each job its 1/threads of the file, --iodepth=queue_depth, --direct), taking turns with the
// engine run by run, best run each.  The last line reads
//   read_gbps=<r> write_gbps=<w> fio_read_gbps=<fr> fio_write_gbps=<fw> read_ratio=<r/fr> write_ratio=<w/fw>
// (fio figures are those of io_uring; "nan" without fio).  GB is 1e9 bytes.
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "io/aligned_buffer.h"
#include "io/io_engine.h"
#include "io/swap_file.h"
#include "nlohmann/json.hpp"
#include "tools/machine.h"

ABSL_FLAG(std::string, dir, "", "directory on the disk to measure (required)");
ABSL_FLAG(std::string, file_size, "1G", "bytes in the file (K, M, G suffixes: powers of 1024)");
ABSL_FLAG(std::string, block_size, "1M", "bytes per request piece (aio.block_size)");
ABSL_FLAG(int, queue_depth, 32, "pieces in flight per worker (aio.queue_depth)");
ABSL_FLAG(int, threads, 1, "workers, each with its own ring (aio.thread_count)");
ABSL_FLAG(bool, direct, true, "O_DIRECT");
ABSL_FLAG(bool, single_submit, false, "aio.single_submit");
ABSL_FLAG(bool, overlap_events, true, "aio.overlap_events");
ABSL_FLAG(bool, io_uring, true, "false: the pread/pwrite workers");
ABSL_FLAG(int, repeats, 3, "timed runs per direction");
ABSL_FLAG(bool, fio, true, "run fio beside, when it is on PATH");
ABSL_FLAG(bool, lock, true, "mlock the host buffer (page-locked, as pinned buffers are in training)");
ABSL_FLAG(bool, register, true, "register the host buffer with the rings (io_uring fixed buffers) where possible");
ABSL_FLAG(std::string, buffer_size, "64M",
          "host buffer and request size (the file size: one request over a buffer as large as the file, as "
          "DeepSpeed's ds_io does)");

namespace {

using Clock = std::chrono::steady_clock;
namespace io = zt::io;

absl::StatusOr<std::uint64_t> ParseBytes(const std::string& flag, std::string s) {
  std::uint64_t mult = 1;
  if (!s.empty()) {
    const char c = static_cast<char>(std::toupper(static_cast<unsigned char>(s.back())));
    if (c == 'K' || c == 'M' || c == 'G' || c == 'T') {
      mult = c == 'K' ? 1ull << 10 : c == 'M' ? 1ull << 20 : c == 'G' ? 1ull << 30 : 1ull << 40;
      s.pop_back();
    }
  }
  std::uint64_t v = 0;
  if (!absl::SimpleAtoi(s, &v) || v == 0) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, "=", s, ": expected a positive size such as 1M or 2G"));
  }
  return v * mult;
}

// The byte a validated file holds at `offset`.
std::uint8_t Pattern(std::uint64_t offset) {
  return static_cast<std::uint8_t>((offset * 2654435761u) >> 13 ^ (offset >> 20));
}

struct Workload {
  const io::File* file;
  std::uint64_t file_size;
  std::size_t chunk;  // bytes per request
};

// The whole file in requests of `chunk` bytes, all submitted at once (the engine keeps
// queue_depth pieces in flight per worker), from/into one buffer the requests share.
absl::Status Pass(io::IoEngine& engine, const Workload& w, io::AlignedBuffer& buf, bool write) {
  std::vector<io::IoHandle> handles;
  for (std::uint64_t off = 0; off < w.file_size; off += w.chunk) {
    const std::size_t len = static_cast<std::size_t>(std::min<std::uint64_t>(w.chunk, w.file_size - off));
    handles.push_back(write ? engine.Write(*w.file, buf.data(), len, off) : engine.Read(*w.file, buf.data(), len, off));
  }
  for (const io::IoHandle& h : handles) {
    if (absl::Status s = h.Wait(); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status Validate(io::IoEngine& engine, const Workload& w, io::AlignedBuffer& buf) {
  for (std::uint64_t off = 0; off < w.file_size; off += w.chunk) {
    const std::size_t len = static_cast<std::size_t>(std::min<std::uint64_t>(w.chunk, w.file_size - off));
    for (std::size_t i = 0; i < len; ++i) buf.data()[i] = Pattern(off + i);
    if (absl::Status s = engine.Write(*w.file, buf.data(), len, off).Wait(); !s.ok()) return s;
  }
  for (std::uint64_t off = 0; off < w.file_size; off += w.chunk) {
    const std::size_t len = static_cast<std::size_t>(std::min<std::uint64_t>(w.chunk, w.file_size - off));
    std::memset(buf.data(), 0, len);
    if (absl::Status s = engine.Read(*w.file, buf.data(), len, off).Wait(); !s.ok()) return s;
    for (std::size_t i = 0; i < len; ++i) {
      if (buf.data()[i] != Pattern(off + i)) {
        return absl::DataLossError(absl::StrCat("validation: byte ", off + i, " of ", w.file->path(), " reads back ",
                                                buf.data()[i], ", wrote ", Pattern(off + i)));
      }
    }
  }
  return absl::OkStatus();
}

// Best GB/s of `repeats` timed passes.
absl::StatusOr<double> Time(io::IoEngine& engine, const Workload& w, io::AlignedBuffer& buf, bool write, int repeats) {
  double best = 0;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = Clock::now();
    if (absl::Status s = Pass(engine, w, buf, write); !s.ok()) return s;
    const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::max(best, static_cast<double>(w.file_size) / sec / 1e9);
  }
  return best;
}

// fio's GB/s for `rw` (read|write) through `ioengine`; NaN when fio fails (its output is shown).
double Fio(const std::string& ioengine, const std::string& rw, const std::string& path, std::uint64_t size,
           std::uint64_t block, int depth, int threads, bool direct) {
  const std::uint64_t per_job = size / static_cast<std::uint64_t>(threads) / block * block;
  const std::string cmd =
      absl::StrCat("fio --name=zt_io_bench --filename=", path, " --ioengine=", ioengine, " --rw=", rw, " --bs=", block,
                   " --iodepth=", depth, " --numjobs=", threads, " --size=", per_job, " --offset_increment=", per_job,
                   " --direct=", direct ? 1 : 0, " --group_reporting --output-format=json 2>&1");
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return std::nan("");
  std::string out;
  char chunk[4096];
  std::size_t n;
  while ((n = std::fread(chunk, 1, sizeof(chunk), p)) > 0) out.append(chunk, n);
  const int rc = ::pclose(p);
  const std::size_t brace = out.find('{');
  if (rc != 0 || brace == std::string::npos) {
    std::fprintf(stderr, "fio %s %s failed (status %d):\n%s\n", ioengine.c_str(), rw.c_str(), rc, out.c_str());
    return std::nan("");
  }
  const nlohmann::json j = nlohmann::json::parse(out.substr(brace), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.contains("jobs") || j["jobs"].empty()) {
    std::fprintf(stderr, "fio %s %s: unreadable output:\n%s\n", ioengine.c_str(), rw.c_str(), out.c_str());
    return std::nan("");
  }
  return j["jobs"][0][rw]["bw_bytes"].get<double>() / 1e9;
}

bool OnPath(const char* tool) {
  return std::system(absl::StrCat("command -v ", tool, " >/dev/null 2>&1").c_str()) == 0;
}

absl::Status Run() {
  const std::string dir = absl::GetFlag(FLAGS_dir);
  if (dir.empty()) return absl::InvalidArgumentError("--dir is required: a directory on the disk to measure");
  auto file_size = ParseBytes("file_size", absl::GetFlag(FLAGS_file_size));
  if (!file_size.ok()) return file_size.status();
  auto block = ParseBytes("block_size", absl::GetFlag(FLAGS_block_size));
  if (!block.ok()) return block.status();
  const int depth = absl::GetFlag(FLAGS_queue_depth);
  const int threads = absl::GetFlag(FLAGS_threads);
  const bool direct = absl::GetFlag(FLAGS_direct);
  const bool fio = absl::GetFlag(FLAGS_fio) && OnPath("fio");
  const std::uint64_t size = io::AlignUp(*file_size);

  auto info = io::PreflightSwapDir(dir, fio ? 2 * size : size, "--dir");
  if (!info.ok()) return info.status();
  io::AioOptions aio;
  aio.block_size = *block;
  aio.queue_depth = depth;
  aio.thread_count = threads;
  aio.single_submit = absl::GetFlag(FLAGS_single_submit);
  aio.overlap_events = absl::GetFlag(FLAGS_overlap_events);
  aio.use_io_uring = absl::GetFlag(FLAGS_io_uring);
  auto engine = io::IoEngine::Create(aio);
  if (!engine.ok()) return engine.status();
  auto file = io::SwapFile::Create(dir, absl::StrCat("zt_io_bench.", ::getpid(), ".bin"), size);
  if (!file.ok()) return file.status();
  if (direct && !file->file().direct()) {
    return absl::FailedPreconditionError(absl::StrCat(dir, " has no O_DIRECT; run with --direct=false"));
  }
  io::File buffered;
  const io::File* target = &file->file();
  if (!direct) {
    auto b = io::File::Open(file->path(), io::File::kReadWrite, /*direct=*/false);
    if (!b.ok()) return b.status();
    buffered = std::move(*b);
    target = &buffered;
  }
  // Requests of --buffer_size bytes (at least one full queue of every worker), all from / into
  // one host buffer of that size.
  auto buffer_size = ParseBytes("buffer_size", absl::GetFlag(FLAGS_buffer_size));
  if (!buffer_size.ok()) return buffer_size.status();
  const std::size_t chunk = static_cast<std::size_t>(
      std::min<std::uint64_t>(size, io::AlignUp(std::max<std::uint64_t>(*buffer_size, *block * depth * threads))));
  auto buf = io::AlignedBuffer::Create(chunk);
  if (!buf.ok()) return buf.status();
  if (absl::GetFlag(FLAGS_lock) && ::mlock(buf->data(), buf->size()) != 0) {
    std::printf("mlock of the %zu-byte buffer failed (%s): the buffer stays pageable\n", buf->size(),
                std::strerror(errno));
  }
  const bool fixed = absl::GetFlag(FLAGS_register) && (*engine)->RegisterBuffer(buf->data(), buf->size());
  const Workload w{target, size, chunk};

  std::printf(
      "io_bench: %s, %s, file %.2f GB, block %llu B, queue depth %d, %d thread(s), %s, %s, O_DIRECT %s, host buffer "
      "%.1f "
      "MB%s%s\n",
      zt::tools::CpuModel().c_str(), dir.c_str(), size / 1e9, static_cast<unsigned long long>(*block), depth, threads,
      (*engine)->uses_io_uring() ? "io_uring" : ("pread/pwrite: " + (*engine)->fallback_reason()).c_str(),
      aio.single_submit ? "single submit" : "batched submit", direct ? "on" : "off", chunk / 1e6,
      absl::GetFlag(FLAGS_lock) ? ", locked" : "", fixed ? ", registered" : "");
  if (absl::Status s = Validate(**engine, w, *buf); !s.ok()) return s;
  std::printf("validated: %.2f GB written and read back intact\n", size / 1e9);
  // Engine and fio take turns, run by run, so that drift in the disk (a VM's, a shared one)
  // falls on both alike.
  const int repeats = std::max(1, absl::GetFlag(FLAGS_repeats));
  std::optional<io::SwapFile> fio_file;
  if (fio) {
    auto f = io::SwapFile::Create(dir, absl::StrCat("zt_io_bench_fio.", ::getpid(), ".bin"), size);
    if (!f.ok()) return f.status();
    fio_file.emplace(std::move(*f));
  }
  auto best = [](double a, double b) { return std::isnan(a) ? b : std::max(a, b); };
  const double nan = std::nan("");
  double w_gbps = nan, r_gbps = nan, fw = nan, fr = nan, aw = nan, ar = nan;
  for (int r = 0; r < repeats; ++r) {
    for (bool write : {true, false}) {
      auto g = Time(**engine, w, *buf, write, 1);
      if (!g.ok()) return g.status();
      double& ours = write ? w_gbps : r_gbps;
      ours = best(ours, *g);
      const char* rw = write ? "write" : "read";
      if (!fio) {
        std::printf("run %d %-5s: engine %.3f GB/s\n", r + 1, rw, *g);
        continue;
      }
      const double u = Fio("io_uring", rw, fio_file->path(), size, *block, depth, threads, direct);
      const double a = Fio("libaio", rw, fio_file->path(), size, *block, depth, threads, direct);
      std::printf("run %d %-5s: engine %.3f GB/s, fio io_uring %.3f GB/s, fio libaio %.3f GB/s\n", r + 1, rw, *g, u, a);
      double& uring = write ? fw : fr;
      uring = best(uring, u);
      double& libaio = write ? aw : ar;
      libaio = best(libaio, a);
    }
  }
  std::printf("zerotrain io_uring engine: write %.3f GB/s, read %.3f GB/s (best of %d)\n", w_gbps, r_gbps, repeats);
  if (fio) {
    std::printf("fio --ioengine=io_uring: write %.3f GB/s, read %.3f GB/s (best of %d)\n", fw, fr, repeats);
    std::printf("fio --ioengine=libaio:   write %.3f GB/s, read %.3f GB/s (best of %d)\n", aw, ar, repeats);
  } else {
    std::printf("fio: %s\n", absl::GetFlag(FLAGS_fio) ? "not on PATH, no peer figures" : "skipped (--fio=false)");
  }
  std::printf(
      "read_gbps=%.3f write_gbps=%.3f fio_read_gbps=%.3f fio_write_gbps=%.3f read_ratio=%.3f write_ratio=%.3f\n",
      r_gbps, w_gbps, fr, fw, r_gbps / fr, w_gbps / fw);
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (absl::Status s = Run(); !s.ok()) {
    std::fprintf(stderr, "io_bench: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
