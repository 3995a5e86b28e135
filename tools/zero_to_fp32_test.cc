// zero_to_fp32 on checkpoints built slice by slice with CheckpointWriter, laid out as the engine
// lays them out (core/engine/engine_checkpoint.cc): each rank's file holds its part of every
// kind, "master/<name>" entries with partition slices, meta "export_names", shared files.
#include "tools/zero_to_fp32_lib.h"

#include <ATen/ATen.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/ckpt/checkpoint_dir.h"
#include "core/ckpt/safetensors.h"
#include "core/util/status_matchers.h"
#include "core/util/test_files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace zt::tools {
namespace {

using ::zt::testing::FreshTestDir;
using ::zt::testing::Slurp;

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string Bytes(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.nbytes());
}

struct Synthetic {
  std::vector<std::pair<std::string, at::Tensor>> params;  // fp32, in the engine's order
  std::map<std::string, std::string> export_names;
  std::map<std::string, std::string> shared_files;  // rank -1
  int world = 2;
};

// The usual case: three parameters, one renamed, cut unevenly over 2 ranks (the bias lies wholly
// on rank 1, as small parameters do in a flat partition), and a config.json.
Synthetic MakeSynthetic() {
  Synthetic s;
  at::manual_seed(7);
  s.params = {
      {"layers.0.weight", at::randn({4, 6})}, {"layers.0.bias", at::randn({6})}, {"embed", at::randn({5, 3}) * 1e3}};
  s.export_names = {{"embed", "shared.weight"}, {"not.a.param", "ignored"}};
  s.shared_files = {{"config.json", R"({"model_type": "mlp", "d_model": 6})"}};
  return s;
}

// Writes a checkpoint of `s` at `step` into save_dir: the parameters flattened end to end and
// cut into `world` equal ranges, rank r's file its range of the master weights then its range of
// exp_avg (so a master slice does not start at its file's beginning).
absl::Status WriteCheckpoint(const Synthetic& s, const std::string& save_dir, int64_t step) {
  ckpt::CheckpointWriterOptions options;
  options.world_size = s.world;
  options.zero_stage = 2;
  absl::StatusOr<ckpt::CheckpointWriter> w = ckpt::CheckpointWriter::Begin(save_dir, step, options);
  if (!w.ok()) return w.status();
  int64_t total = 0;
  for (const auto& [name, t] : s.params) total += t.numel();
  for (int r = 0; r < s.world; ++r) {
    const int64_t lo = total * r / s.world, hi = total * (r + 1) / s.world;
    const std::string file = absl::StrFormat("zero_rank_%05d_states.bin", r);
    std::string master, exp_avg;
    std::vector<ckpt::TensorEntry> entries;
    int64_t base = 0;  // the parameter's first element in the flat buffer
    for (const auto& [name, t] : s.params) {
      const int64_t begin = std::max(lo, base), end = std::min(hi, base + t.numel());
      if (begin < end) {
        const at::Tensor flat = t.reshape({-1}).slice(0, begin - base, end - base);
        for (const char* kind : {"master", "exp_avg"}) {
          std::string& into = std::string(kind) == "master" ? master : exp_avg;
          ckpt::TensorEntry e;
          e.set_name(absl::StrCat(kind, "/", name));
          e.set_dtype("F32");
          for (const int64_t d : t.sizes()) e.add_shape(d);
          e.set_file(file);
          e.set_offset(into.size() + (std::string(kind) == "master" ? 0 : (hi - lo) * 4));
          e.set_nbytes((end - begin) * 4);
          e.set_rank(r);
          e.mutable_partition()->set_begin(begin - base);
          e.mutable_partition()->set_end(end - base);
          entries.push_back(e);
          into += Bytes(std::string(kind) == "master" ? flat : flat * 0.5);
        }
      }
      base += t.numel();
    }
    if (absl::Status st = w->AddFile(file, master + exp_avg, r); !st.ok()) return st;
    for (ckpt::TensorEntry& e : entries) {
      if (absl::Status st = w->AddTensor(std::move(e)); !st.ok()) return st;
    }
  }
  for (const auto& [name, bytes] : s.shared_files) {
    if (absl::Status st = w->AddFile(name, bytes, -1); !st.ok()) return st;
  }
  if (!s.export_names.empty()) w->SetMeta("export_names", nlohmann::json(s.export_names).dump());
  w->SetMeta("engine_state", R"({"format": "zerotrain-engine-1"})");
  return w->Commit();
}

TEST(ZeroToFp32, ReassemblesSlicesExactlyUnderExportNames) {
  const std::string dir = FreshTestDir();
  const Synthetic s = MakeSynthetic();
  ASSERT_OK(WriteCheckpoint(s, dir + "/save", 3));
  ASSERT_OK_AND_ASSIGN(ZeroToFp32Result r, ConvertZeroToFp32(dir + "/save", dir + "/out"));
  EXPECT_EQ(r.tensors, 3u);
  EXPECT_EQ(r.parameters, 24 + 6 + 15);
  EXPECT_EQ(r.tensor_bytes, 45u * 4);
  EXPECT_EQ(r.global_step, 3);
  EXPECT_EQ(r.output_file, dir + "/out/model.safetensors");
  EXPECT_THAT(r.copied, ElementsAre("config.json"));
  EXPECT_THAT(r.Summary(), AllOf(HasSubstr("3 tensors, 45 parameters, 180 bytes of fp32"), HasSubstr("global_step3"),
                                 HasSubstr("copied config.json")));

  ASSERT_OK_AND_ASSIGN(ckpt::Safetensors st, ckpt::ReadSafetensors(r.output_file));
  EXPECT_EQ(st.metadata.at("format"), "pt");
  std::vector<std::string> names;
  for (const auto& [name, t] : st.tensors) names.push_back(name);
  EXPECT_THAT(names, ElementsAre("layers.0.bias", "layers.0.weight", "shared.weight"));  // by export name
  EXPECT_EQ(Slurp(r.output_file).size(), r.file_bytes);
  for (const auto& [name, t] : s.params) {
    const at::Tensor* got = st.Find(name == "embed" ? "shared.weight" : name);
    ASSERT_NE(got, nullptr) << name;
    EXPECT_EQ(got->scalar_type(), at::kFloat);
    EXPECT_TRUE(at::equal(*got, t)) << name;
  }
  EXPECT_EQ(Slurp(dir + "/out/config.json"), s.shared_files.at("config.json"));
}

TEST(ZeroToFp32, SixteenBitOutputIsAtensTo) {
  const std::string dir = FreshTestDir();
  const Synthetic s = MakeSynthetic();
  ASSERT_OK(WriteCheckpoint(s, dir + "/save", 1));
  const std::vector<std::pair<ExportDtype, at::ScalarType>> cases = {{ExportDtype::kBF16, at::kBFloat16},
                                                                     {ExportDtype::kF16, at::kHalf}};
  for (const auto& [dtype, type] : cases) {
    ZeroToFp32Options options;
    options.dtype = dtype;
    const std::string out = dir + "/out_" + ExportDtypeName(dtype);
    ASSERT_OK_AND_ASSIGN(ZeroToFp32Result r, ConvertZeroToFp32(dir + "/save/global_step1", out, options));
    EXPECT_EQ(r.tensor_bytes, 45u * 2);
    ASSERT_OK_AND_ASSIGN(ckpt::Safetensors st, ckpt::ReadSafetensors(r.output_file));
    for (const auto& [name, t] : s.params) {
      const at::Tensor* got = st.Find(name == "embed" ? "shared.weight" : name);
      ASSERT_NE(got, nullptr) << name;
      EXPECT_EQ(got->scalar_type(), type);
      EXPECT_TRUE(at::equal(*got, t.to(type))) << name << " " << ExportDtypeName(dtype);
    }
  }
}

// A parameter bigger than one read (kExportChunkBytes) goes through in several pieces, each
// converted on its own: the same values as converting it whole.
TEST(ZeroToFp32, TensorsLargerThanAChunk) {
  const std::string dir = FreshTestDir();
  Synthetic s;
  at::manual_seed(3);
  s.params = {{"big", at::randn({int64_t{5} << 20})}, {"small", at::randn({3})}};
  s.world = 3;
  ASSERT_OK(WriteCheckpoint(s, dir + "/save", 1));
  ZeroToFp32Options options;
  options.dtype = ExportDtype::kBF16;
  ASSERT_OK_AND_ASSIGN(ZeroToFp32Result r, ConvertZeroToFp32(dir + "/save", dir + "/out", options));
  ASSERT_OK_AND_ASSIGN(ckpt::Safetensors st, ckpt::ReadSafetensors(r.output_file));
  EXPECT_TRUE(at::equal(*st.Find("big"), s.params[0].second.to(at::kBFloat16)));
  EXPECT_TRUE(at::equal(*st.Find("small"), s.params[1].second.to(at::kBFloat16)));
}

// HF's layout: output_dir/checkpoint-N/ holds `latest` and global_stepN/; --tag picks a step.
TEST(ZeroToFp32, HfCheckpointDirAndTag) {
  const std::string dir = FreshTestDir();
  Synthetic s = MakeSynthetic();
  ASSERT_OK(WriteCheckpoint(s, dir + "/checkpoint-4", 2));
  const at::Tensor old_bias = s.params[1].second.clone();
  s.params[1].second = s.params[1].second + 1;
  ASSERT_OK(WriteCheckpoint(s, dir + "/checkpoint-4", 4));

  ASSERT_OK_AND_ASSIGN(ZeroToFp32Result latest, ConvertZeroToFp32(dir + "/checkpoint-4", dir + "/latest"));
  EXPECT_EQ(latest.global_step, 4);
  ASSERT_OK_AND_ASSIGN(ckpt::Safetensors a, ckpt::ReadSafetensors(latest.output_file));
  EXPECT_TRUE(at::equal(*a.Find("layers.0.bias"), s.params[1].second));

  ZeroToFp32Options options;
  options.tag = "global_step2";
  ASSERT_OK_AND_ASSIGN(ZeroToFp32Result tagged, ConvertZeroToFp32(dir + "/checkpoint-4", dir + "/tagged", options));
  EXPECT_EQ(tagged.global_step, 2);
  ASSERT_OK_AND_ASSIGN(ckpt::Safetensors b, ckpt::ReadSafetensors(tagged.output_file));
  EXPECT_TRUE(at::equal(*b.Find("layers.0.bias"), old_bias));

  options.tag = "global_step3";
  EXPECT_THAT(ConvertZeroToFp32(dir + "/checkpoint-4", dir + "/none", options),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr("checkpoint-4/global_step3"), HasSubstr("global_step2, global_step4"))));
  options.tag = "../x";
  EXPECT_THAT(ConvertZeroToFp32(dir + "/checkpoint-4", dir + "/none", options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"../x\"")));
}

TEST(ZeroToFp32, CorruptShardIsDataLossNamingItAndWritesNothing) {
  const std::string dir = FreshTestDir();
  ASSERT_OK(WriteCheckpoint(MakeSynthetic(), dir + "/save", 1));
  const std::string shard = dir + "/save/global_step1/zero_rank_00001_states.bin";
  std::string bytes = Slurp(shard);
  bytes[10] = static_cast<char>(bytes[10] ^ 0x20);
  std::ofstream(shard, std::ios::binary | std::ios::trunc) << bytes;
  EXPECT_THAT(ConvertZeroToFp32(dir + "/save", dir + "/out"),
              StatusIs(absl::StatusCode::kDataLoss, AllOf(HasSubstr(shard), HasSubstr("corrupt"))));
  EXPECT_FALSE(Exists(dir + "/out/model.safetensors"));
}

TEST(ZeroToFp32, ExportNameCollisionsAreRefused) {
  const std::string dir = FreshTestDir();
  Synthetic s = MakeSynthetic();
  s.export_names = {{"embed", "w"}, {"layers.0.weight", "w"}};
  ASSERT_OK(WriteCheckpoint(s, dir + "/two", 1));
  EXPECT_THAT(ConvertZeroToFp32(dir + "/two", dir + "/out"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("parameters \"embed\" and \"layers.0.weight\" both export as \"w\"")));
  // A renamed parameter onto one that keeps its name.
  s.export_names = {{"embed", "layers.0.bias"}};
  ASSERT_OK(WriteCheckpoint(s, dir + "/onto", 1));
  EXPECT_THAT(ConvertZeroToFp32(dir + "/onto", dir + "/out"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("both export as \"layers.0.bias\"")));
  EXPECT_FALSE(Exists(dir + "/out/model.safetensors"));
}

TEST(ZeroToFp32, NotACheckpoint) {
  const std::string dir = FreshTestDir();
  EXPECT_THAT(ConvertZeroToFp32(dir, dir + "/out"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("neither a checkpoint step directory")));
  EXPECT_THAT(ConvertZeroToFp32(dir + "/missing", dir + "/out"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing")));
  // A checkpoint, but not the engine's: no master weights.
  absl::StatusOr<ckpt::CheckpointWriter> w = ckpt::CheckpointWriter::Begin(dir + "/other", 1);
  ASSERT_OK(w.status());
  ASSERT_OK(w->AddFile("model_states.bin", "abc", -1));
  ASSERT_OK(w->Commit());
  EXPECT_THAT(ConvertZeroToFp32(dir + "/other", dir + "/out"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no \"master/\" tensors")));
  // Meta export_names the engine would not write.
  Synthetic s = MakeSynthetic();
  ASSERT_OK(WriteCheckpoint(s, dir + "/meta", 1));
  ASSERT_OK_AND_ASSIGN(ckpt::CheckpointReader r, ckpt::OpenCheckpoint(dir + "/meta"));
  ckpt::Manifest m = r.manifest();
  (*m.mutable_meta())["export_names"] = R"({"embed": 3})";
  EXPECT_THAT(PlanExport(m, "m.pb"), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("maps \"embed\" to 3")));
  (*m.mutable_meta())["export_names"] = "[1]";
  EXPECT_THAT(PlanExport(m, "m.pb"), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("not a JSON object")));
}

// OpenCheckpoint already refuses a manifest whose slices do not tile a tensor; the converter
// checks again before it writes a byte (a manifest from elsewhere, a reader with checks off).
TEST(ZeroToFp32, SlicesThatDoNotCoverATensorAreRefused) {
  const std::string dir = FreshTestDir();
  ASSERT_OK(WriteCheckpoint(MakeSynthetic(), dir + "/save", 1));
  ASSERT_OK_AND_ASSIGN(ckpt::CheckpointReader r, ckpt::OpenCheckpoint(dir + "/save"));
  ASSERT_OK_AND_ASSIGN(std::vector<ExportTensor> plan, PlanExport(r.manifest(), "m.pb"));
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_EQ(plan[1].param, "layers.0.weight");
  ASSERT_EQ(plan[1].slices.size(), 2u);  // split over the ranks
  EXPECT_EQ(plan[1].slices[0]->rank(), 0);
  EXPECT_EQ(plan[1].slices[1]->partition().end(), 24);

  const auto with = [&](const std::function<void(ckpt::TensorEntry&)>& change) {
    ckpt::Manifest m = r.manifest();
    for (ckpt::TensorEntry& e : *m.mutable_tensors()) {
      if (e.name() == "master/layers.0.weight" && e.rank() == 1) change(e);
    }
    return PlanExport(m, "m.pb").status();
  };
  const int64_t begin = plan[1].slices[1]->partition().begin();
  EXPECT_THAT(with([&](ckpt::TensorEntry& e) {
                e.mutable_partition()->set_begin(begin + 1);
                e.set_nbytes(e.nbytes() - 4);
              }),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("m.pb: tensor \"master/layers.0.weight\""), HasSubstr("leave a gap"))));
  EXPECT_THAT(with([&](ckpt::TensorEntry& e) {
                e.mutable_partition()->set_begin(begin - 1);
                e.set_nbytes(e.nbytes() + 4);
              }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("overlap")));
  EXPECT_THAT(with([&](ckpt::TensorEntry& e) {
                e.mutable_partition()->set_end(23);
                e.set_nbytes(e.nbytes() - 4);
              }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cover 23 of its 24 elements")));
  EXPECT_THAT(with([&](ckpt::TensorEntry& e) { e.set_nbytes(e.nbytes() + 4); }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bytes")));
  EXPECT_THAT(with([&](ckpt::TensorEntry& e) { e.set_dtype("I32"); }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("disagree")));
}

TEST(ZeroToFp32, OutputDtypeNames) {
  EXPECT_THAT(ParseExportDtype("bf16"), IsOk());
  EXPECT_THAT(ParseExportDtype("fp64"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"fp64\"")));
  for (ExportDtype d : {ExportDtype::kF32, ExportDtype::kBF16, ExportDtype::kF16}) {
    ASSERT_OK_AND_ASSIGN(ExportDtype back, ParseExportDtype(ExportDtypeName(d)));
    EXPECT_EQ(back, d);
  }
}

}  // namespace
}  // namespace zt::tools
