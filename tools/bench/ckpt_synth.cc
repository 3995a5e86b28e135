// A synthetic engine checkpoint for tools/bench/peers/zero_to_fp32_peer.py: `tensors` fp32
// parameters t000, t001, ... of [rows, 1024], each rank's file holding its partition's master
// weights and two Adam moments, as Engine::SaveCheckpoint writes them: at --stage 2 the
// parameters' concatenation cut into `world` equal shards, at --stage 3 every parameter cut on
// its own.  Element j of parameter i is Value(i, j) below (the peer script writes the same
// values in DeepSpeed's layout), the moments 0.5 and 0.25.
//
//   ckpt_synth --out DIR --tensors 32 --rows 8192 --world 2 --stage 2
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/ckpt/checkpoint_dir.h"
#include "core/util/status_macros.h"

ABSL_FLAG(std::string, out, "", "save directory to write (global_step1/ and latest)");
ABSL_FLAG(int32_t, tensors, 32, "parameters");
ABSL_FLAG(int64_t, rows, 8192, "rows of 1024 fp32 per parameter");
ABSL_FLAG(int32_t, world, 2, "ranks");
ABSL_FLAG(int32_t, stage, 2, "2: the concatenation is sharded; 3: each parameter is");

namespace {

constexpr int64_t kCols = 1024;

float Value(int64_t i, int64_t j) { return static_cast<float>((j * 7919 + i * 104729) % 1000003) * 0.25f - 1e5f; }

struct Piece {
  int64_t param, begin, end;  // elements [begin, end) of the flattened parameter
};

absl::Status Write() {
  const std::string out = absl::GetFlag(FLAGS_out);
  const int n = absl::GetFlag(FLAGS_tensors), world = absl::GetFlag(FLAGS_world), stage = absl::GetFlag(FLAGS_stage);
  const int64_t numel = absl::GetFlag(FLAGS_rows) * kCols;
  if (out.empty() || n < 1 || world < 1 || numel < 1 || (stage != 2 && stage != 3)) {
    return absl::InvalidArgumentError("--out, --tensors >= 1, --rows >= 1, --world >= 1, --stage 2|3");
  }
  // Each rank's pieces, in the order of its partition.
  std::vector<std::vector<Piece>> parts(world);
  if (stage == 2) {
    const int64_t total = numel * n, shard = (total + world - 1) / world;
    for (int r = 0; r < world; ++r) {
      for (int64_t i = 0; i < n; ++i) {
        const int64_t lo = std::max(i * numel, r * shard), hi = std::min((i + 1) * numel, (r + 1) * shard);
        if (lo < hi) parts[r].push_back({i, lo - i * numel, hi - i * numel});
      }
    }
  } else {
    const int64_t shard = (numel + world - 1) / world;
    for (int r = 0; r < world; ++r) {
      for (int64_t i = 0; i < n; ++i) {
        const int64_t lo = std::min(numel, r * shard), hi = std::min(numel, (r + 1) * shard);
        if (lo < hi) parts[r].push_back({i, lo, hi});
      }
    }
  }
  zt::ckpt::CheckpointWriterOptions options;
  options.world_size = world;
  options.zero_stage = stage;
  ASSIGN_OR_RETURN(zt::ckpt::CheckpointWriter w, zt::ckpt::CheckpointWriter::Begin(out, 1, options));
  std::vector<float> buf;
  for (int r = 0; r < world; ++r) {
    const std::string file = absl::StrFormat("zero_rank_%05d_states.bin", r);
    ASSIGN_OR_RETURN(zt::ckpt::FileSink sink, w.OpenFile(file, r));
    int64_t size = 0;
    for (const Piece& p : parts[r]) size += p.end - p.begin;
    const char* kinds[] = {"master", "exp_avg", "exp_avg_sq"};
    for (int k = 0; k < 3; ++k) {
      int64_t at = 0;
      for (const Piece& p : parts[r]) {
        zt::ckpt::TensorEntry t;
        t.set_name(absl::StrFormat("%s/t%03d", kinds[k], p.param));
        t.set_dtype("F32");
        t.add_shape(absl::GetFlag(FLAGS_rows));
        t.add_shape(kCols);
        t.set_file(file);
        t.set_offset(static_cast<uint64_t>((k * size + at) * 4));
        t.set_nbytes(static_cast<uint64_t>((p.end - p.begin) * 4));
        t.set_rank(r);
        t.mutable_partition()->set_begin(p.begin);
        t.mutable_partition()->set_end(p.end);
        RETURN_IF_ERROR(w.AddTensor(std::move(t)));
        for (int64_t j = p.begin; j < p.end; j += 1 << 20) {
          const int64_t len = std::min<int64_t>(1 << 20, p.end - j);
          buf.resize(len);
          for (int64_t e = 0; e < len; ++e) buf[e] = k == 0 ? Value(p.param, j + e) : (k == 1 ? 0.5f : 0.25f);
          RETURN_IF_ERROR(sink.Append({reinterpret_cast<const char*>(buf.data()), buf.size() * 4}));
        }
        at += p.end - p.begin;
      }
    }
    RETURN_IF_ERROR(w.FinishFile(std::move(sink)));
  }
  return w.Commit();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const absl::Status s = Write();
  if (!s.ok()) {
    std::fprintf(stderr, "ckpt_synth: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
