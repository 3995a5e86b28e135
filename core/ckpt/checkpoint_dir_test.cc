#include "core/ckpt/checkpoint_dir.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/util/crc32c.h"
#include "core/util/status_matchers.h"
#include "core/util/test_files.h"
#include "gmock/gmock.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "gtest/gtest.h"

namespace zt::ckpt {
namespace {

using ::zt::testing::FreshTestDir;
using ::zt::testing::ListDirNames;
using ::zt::testing::Slurp;

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

MATCHER_P(IsOkAndHolds, matcher, "is OK and holds a matching value") {
  if (!arg.ok()) {
    *result_listener << "whose status is " << arg.status();
    return false;
  }
  return ::testing::ExplainMatchResult(matcher, *arg, result_listener);
}

void Spill(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

void FlipBit(const std::string& path, std::size_t byte, int bit) {
  std::string bytes = Slurp(path);
  ASSERT_LT(byte, bytes.size()) << path;
  bytes[byte] = static_cast<char>(bytes[byte] ^ (1 << bit));
  Spill(path, bytes);
}

// Entries of a directory, in byte order.
std::string Bytes(std::size_t n, int seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed * 7919) >> 3);
  return s;
}

TensorEntry Tensor(const std::string& name, const std::string& dtype, std::vector<int64_t> shape,
                   const std::string& file, uint64_t offset, uint64_t nbytes, int32_t rank) {
  TensorEntry t;
  t.set_name(name);
  t.set_dtype(dtype);
  for (int64_t d : shape) t.add_shape(d);
  t.set_file(file);
  t.set_offset(offset);
  t.set_nbytes(nbytes);
  t.set_rank(rank);
  return t;
}

TensorEntry Slice(TensorEntry t, int64_t begin, int64_t end) {
  t.mutable_partition()->set_begin(begin);
  t.mutable_partition()->set_end(end);
  return t;
}

CheckpointWriterOptions TwoRanks() {
  CheckpointWriterOptions options;
  options.world_size = 2;
  options.zero_stage = 2;
  return options;
}

// What a two-rank ZeRO-2 job would save: weights shared, Adam state sharded by rank.
//   model.bin       w  F32 [3, 4] (48 bytes), b BF16 [5] (10 bytes)
//   optim_rank0.bin exp_avg.w elements [0, 7)   (28 bytes)
//   optim_rank1.bin exp_avg.w elements [7, 12)  (20 bytes) + 1000 bytes of other state
absl::Status SaveStep(const std::string& save_dir, int64_t step, int seed = 0,
                      CheckpointWriterOptions options = TwoRanks()) {
  absl::StatusOr<CheckpointWriter> w = CheckpointWriter::Begin(save_dir, step, std::move(options));
  if (!w.ok()) return w.status();
  if (absl::Status s = w->AddFile("model.bin", Bytes(58, seed), -1); !s.ok()) return s;
  if (absl::Status s = w->AddFile("optim_rank0.bin", Bytes(28, seed + 1), 0); !s.ok()) return s;
  absl::StatusOr<FileSink> sink = w->OpenFile("optim_rank1.bin", 1);
  if (!sink.ok()) return sink.status();
  const std::string rank1 = Bytes(1020, seed + 2);
  for (std::size_t at = 0; at < rank1.size(); at += 300) {
    if (absl::Status s = sink->Append(absl::string_view(rank1).substr(at, 300)); !s.ok()) return s;
  }
  if (absl::Status s = w->FinishFile(std::move(*sink)); !s.ok()) return s;
  for (TensorEntry t :
       {Tensor("w", "F32", {3, 4}, "model.bin", 0, 48, -1), Tensor("b", "BF16", {5}, "model.bin", 48, 10, -1),
        Slice(Tensor("exp_avg.w", "F32", {3, 4}, "optim_rank0.bin", 0, 28, 0), 0, 7),
        Slice(Tensor("exp_avg.w", "F32", {3, 4}, "optim_rank1.bin", 0, 20, 1), 7, 12)}) {
    if (absl::Status s = w->AddTensor(std::move(t)); !s.ok()) return s;
  }
  w->SetMeta("seed", std::to_string(seed));
  w->SetMeta("engine", "zerotrain");
  return w->Commit();
}

TEST(CheckpointDirTest, RoundTripsFilesTensorsAndMeta) {
  const std::string save = FreshTestDir() + "/save";  // Begin makes it
  ASSERT_THAT(SaveStep(save, 5, /*seed=*/3), IsOk());

  EXPECT_THAT(ListDirNames(save), ElementsAre("global_step5", "latest"));
  EXPECT_EQ(Slurp(save + "/latest"), "global_step5");  // as DeepSpeed writes it
  EXPECT_THAT(ListDirNames(save + "/global_step5"),
              ElementsAre("manifest.crc32c", "manifest.pb", "model.bin", "optim_rank0.bin", "optim_rank1.bin"));

  for (const std::string& path : {save, save + "/", save + "/global_step5"}) {
    SCOPED_TRACE(path);
    absl::StatusOr<CheckpointReader> r = OpenCheckpoint(path);
    ASSERT_THAT(r.status(), IsOk());
    EXPECT_EQ(r->step_dir(), save + "/global_step5");
    const Manifest& m = r->manifest();
    EXPECT_EQ(m.format_version(), 1u);
    EXPECT_EQ(m.world_size(), 2);
    EXPECT_EQ(m.zero_stage(), 2);
    EXPECT_EQ(r->global_step(), 5);
    EXPECT_GT(m.created_unix_s(), 1700000000);
    EXPECT_EQ(m.meta().at("seed"), "3");
    EXPECT_EQ(m.meta().at("engine"), "zerotrain");
    ASSERT_EQ(m.files_size(), 3);

    EXPECT_THAT(r->ReadFile("model.bin"), IsOkAndHolds(Bytes(58, 3)));
    EXPECT_THAT(r->ReadFile("optim_rank0.bin"), IsOkAndHolds(Bytes(28, 4)));
    const FileEntry* f = r->FindFile("optim_rank1.bin");
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->size(), 1020u);
    EXPECT_EQ(f->rank(), 1);
    EXPECT_EQ(f->crc32c(), crc32c::Value(Bytes(1020, 5)));
    EXPECT_EQ(r->FindFile("model.bin")->rank(), -1);
    EXPECT_EQ(r->FindFile("nope.bin"), nullptr);

    std::string streamed;
    int chunks = 0;
    ASSERT_THAT(r->ReadFileInChunks("optim_rank1.bin", 64,
                                    [&](absl::string_view chunk) {
                                      EXPECT_LE(chunk.size(), 64u);
                                      streamed.append(chunk.data(), chunk.size());
                                      ++chunks;
                                      return absl::OkStatus();
                                    }),
                IsOk());
    EXPECT_EQ(streamed, Bytes(1020, 5));
    EXPECT_EQ(chunks, 16);

    const std::vector<const TensorEntry*> shards = r->FindTensor("exp_avg.w");
    ASSERT_EQ(shards.size(), 2u);
    EXPECT_EQ(shards[1]->partition().begin(), 7);
    EXPECT_EQ(shards[1]->partition().end(), 12);
    EXPECT_THAT(r->ReadTensorBytes(*shards[1]), IsOkAndHolds(Bytes(1020, 5).substr(0, 20)));
    const std::vector<const TensorEntry*> b = r->FindTensor("b");
    ASSERT_EQ(b.size(), 1u);
    EXPECT_FALSE(b[0]->has_partition());
    EXPECT_THAT(b[0]->shape(), ElementsAre(5));
    EXPECT_THAT(r->ReadTensorBytes(*b[0]), IsOkAndHolds(Bytes(58, 3).substr(48, 10)));
    EXPECT_THAT(r->FindTensor("missing"), IsEmpty());
    EXPECT_THAT(r->Verify(), IsOk());
  }
}

std::string DeterministicBytes(const Manifest& m) {
  std::string bytes;
  google::protobuf::io::StringOutputStream out(&bytes);
  google::protobuf::io::CodedOutputStream coded(&out);
  coded.SetSerializationDeterministic(true);
  EXPECT_TRUE(m.SerializeToCodedStream(&coded));
  coded.Trim();
  return bytes;
}

// The same checkpoint gives the same manifest bytes (meta is a map, serialized in key order).
TEST(CheckpointDirTest, ManifestBytesAreDeterministic) {
  const std::string dir = FreshTestDir();
  ASSERT_THAT(SaveStep(dir + "/a", 1), IsOk());
  ASSERT_THAT(SaveStep(dir + "/b", 1), IsOk());
  const std::string a_bytes = Slurp(dir + "/a/global_step1/manifest.pb");
  Manifest a, b;
  ASSERT_TRUE(a.ParseFromString(a_bytes));
  ASSERT_TRUE(b.ParseFromString(Slurp(dir + "/b/global_step1/manifest.pb")));
  b.set_created_unix_s(a.created_unix_s());  // the clock may tick between the two
  EXPECT_EQ(DeterministicBytes(a), a_bytes);
  EXPECT_EQ(DeterministicBytes(b), a_bytes);
  EXPECT_EQ(Slurp(dir + "/a/global_step1/manifest.crc32c"),
            absl::StrFormat("%08x %d\n", crc32c::Value(a_bytes), a_bytes.size()));
}

TEST(CheckpointDirTest, OpensTheStepLatestNamesNotTheNewest) {
  const std::string save = FreshTestDir();
  ASSERT_THAT(SaveStep(save, 1, 1), IsOk());
  ASSERT_THAT(SaveStep(save, 2, 2), IsOk());
  CheckpointWriterOptions no_latest = TwoRanks();
  no_latest.update_latest = false;
  ASSERT_THAT(SaveStep(save, 3, 3, no_latest), IsOk());
  EXPECT_EQ(Slurp(save + "/latest"), "global_step2");
  absl::StatusOr<CheckpointReader> r = OpenCheckpoint(save);
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_EQ(r->global_step(), 2);
  EXPECT_THAT(r->ReadFile("model.bin"), IsOkAndHolds(Bytes(58, 2)));
  absl::StatusOr<CheckpointReader> three = OpenCheckpoint(save + "/global_step3");
  ASSERT_THAT(three.status(), IsOk());
  EXPECT_EQ(three->global_step(), 3);
  EXPECT_THAT(ListCheckpointSteps(save), IsOkAndHolds(ElementsAre(1, 2, 3)));
  // DeepSpeed may leave a newline after the tag; it is not part of the name.
  Spill(save + "/latest", "global_step1\n");
  EXPECT_THAT(OpenCheckpoint(save), IsOkAndHolds(::testing::Property(&CheckpointReader::global_step, 1)));
}

TEST(CheckpointDirTest, ResavingAStepReplacesItWhole) {
  const std::string save = FreshTestDir();
  ASSERT_THAT(SaveStep(save, 7, /*seed=*/1), IsOk());
  ASSERT_THAT(SaveStep(save, 7, /*seed=*/2), IsOk());
  EXPECT_THAT(ListDirNames(save), ElementsAre("global_step7", "latest"));  // the old one deleted, no debris
  absl::StatusOr<CheckpointReader> r = OpenCheckpoint(save);
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_EQ(r->manifest().meta().at("seed"), "2");
  EXPECT_THAT(r->ReadFile("model.bin"), IsOkAndHolds(Bytes(58, 2)));
}

// ---- corruption: each one is an error naming the file, and nothing is returned -------------

class CorruptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    save_ = FreshTestDir();
    ASSERT_THAT(SaveStep(save_, 1, 1), IsOk());
    ASSERT_THAT(SaveStep(save_, 2, 2), IsOk());
    step_ = save_ + "/global_step2";
  }
  // Opening by the save directory and by the step directory both fail this way.
  void ExpectBroken(absl::StatusCode code, const std::string& what) {
    const absl::StatusOr<CheckpointReader> by_save = OpenCheckpoint(save_);
    EXPECT_THAT(by_save.status(), StatusIs(code, AllOf(HasSubstr(what), HasSubstr(save_ + "/latest"))));
    EXPECT_FALSE(by_save.ok());
    EXPECT_THAT(OpenCheckpoint(step_).status(), StatusIs(code, HasSubstr(what)));
  }
  std::string save_, step_;
};

TEST_F(CorruptionTest, TruncatedFile) {
  Spill(step_ + "/optim_rank1.bin", Bytes(1020, 4).substr(0, 1000));
  ExpectBroken(absl::StatusCode::kDataLoss, step_ + "/optim_rank1.bin: 1000 bytes, but manifest.pb says 1020");
}

TEST_F(CorruptionTest, GrownFile) {
  Spill(step_ + "/model.bin", Bytes(58, 2) + "x");
  ExpectBroken(absl::StatusCode::kDataLoss, step_ + "/model.bin: longer than the 58 bytes manifest.pb says");
}

TEST_F(CorruptionTest, OneFlippedBitInAFile) {
  FlipBit(step_ + "/optim_rank0.bin", 17, 3);
  ExpectBroken(absl::StatusCode::kDataLoss, step_ + "/optim_rank0.bin: crc32c 0x");
  EXPECT_THAT(OpenCheckpoint(save_).status(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("nothing was loaded")));
}

TEST_F(CorruptionTest, EveryBadFileIsNamed) {
  FlipBit(step_ + "/model.bin", 0, 0);
  ASSERT_EQ(std::remove((step_ + "/optim_rank1.bin").c_str()), 0);
  ExpectBroken(absl::StatusCode::kDataLoss, "model.bin: crc32c");
  EXPECT_THAT(OpenCheckpoint(save_).status(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr(step_ + "/optim_rank1.bin: missing (manifest.pb "
                                                                      "lists it)")));
}

TEST_F(CorruptionTest, DeletedFile) {
  ASSERT_EQ(std::remove((step_ + "/optim_rank0.bin").c_str()), 0);
  ExpectBroken(absl::StatusCode::kDataLoss, step_ + "/optim_rank0.bin: missing");
}

TEST_F(CorruptionTest, FlippedBitInTheManifest) {
  FlipBit(step_ + "/manifest.pb", 20, 6);
  ExpectBroken(absl::StatusCode::kDataLoss, step_ + "/manifest.pb: crc32c 0x");
  EXPECT_THAT(OpenCheckpoint(step_).status(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("but " + step_ + "/manifest.crc32c says")));
}

// A bit flip anywhere in the manifest is caught before it is parsed.
TEST_F(CorruptionTest, EveryBitOfTheManifestIsProtected) {
  const std::string good = Slurp(step_ + "/manifest.pb");
  for (std::size_t bit = 0; bit < good.size() * 8; bit += 7) {
    std::string bad = good;
    bad[bit / 8] = static_cast<char>(bad[bit / 8] ^ (1 << (bit % 8)));
    Spill(step_ + "/manifest.pb", bad);
    ASSERT_THAT(OpenCheckpoint(save_).status(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("manifest.pb")))
        << "bit " << bit;
  }
}

TEST_F(CorruptionTest, TruncatedManifest) {
  Spill(step_ + "/manifest.pb", Slurp(step_ + "/manifest.pb").substr(0, 30));
  ExpectBroken(absl::StatusCode::kDataLoss, step_ + "/manifest.pb: 30 bytes, but " + step_ + "/manifest.crc32c says");
}

TEST_F(CorruptionTest, GarbledManifestChecksumFile) {
  Spill(step_ + "/manifest.crc32c", "not a checksum\n");
  ExpectBroken(absl::StatusCode::kDataLoss, step_ + "/manifest.crc32c: holds \"not a checksum\\n\"");
}

TEST_F(CorruptionTest, MissingManifest) {
  ASSERT_EQ(std::remove((step_ + "/manifest.pb").c_str()), 0);
  ExpectBroken(absl::StatusCode::kDataLoss, step_ + ": an incomplete checkpoint: " + step_ + "/manifest.pb is missing");
}

TEST_F(CorruptionTest, GarbageInLatest) {
  Spill(save_ + "/latest", "global_step2\x01garbage");
  EXPECT_THAT(
      OpenCheckpoint(save_).status(),
      StatusIs(absl::StatusCode::kDataLoss,
               HasSubstr(save_ + "/latest: holds \"global_step2\\x01garbage\", not the name of a step directory")));
  for (const char* bad : {"", "global_step", "global_step-1", "global_step01", "../global_step1", "global_step1/x"}) {
    Spill(save_ + "/latest", bad);
    EXPECT_THAT(OpenCheckpoint(save_).status(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("/latest: holds")))
        << bad;
  }
}

TEST_F(CorruptionTest, LatestNamesAMissingDirectory) {
  Spill(save_ + "/latest", "global_step9");
  EXPECT_THAT(OpenCheckpoint(save_).status(),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr(save_ + "/latest names global_step9, but " + save_ + "/global_step9 does not exist")));
}

TEST_F(CorruptionTest, LatestNamesAnIncompleteDirectory) {
  ::mkdir((save_ + "/global_step3").c_str(), 0755);
  Spill(save_ + "/global_step3/model.bin", "x");
  Spill(save_ + "/latest", "global_step3");
  EXPECT_THAT(OpenCheckpoint(save_).status(),
              StatusIs(absl::StatusCode::kDataLoss, AllOf(HasSubstr(save_ + "/global_step3: an incomplete checkpoint"),
                                                          HasSubstr("(" + save_ + "/latest names this checkpoint)"))));
}

TEST_F(CorruptionTest, LatestNamesADirectoryOfAnotherStep) {
  ASSERT_EQ(std::rename((save_ + "/global_step1").c_str(), (save_ + "/global_step4").c_str()), 0);
  Spill(save_ + "/latest", "global_step4");
  EXPECT_THAT(OpenCheckpoint(save_).status(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("manifest.pb: global_step 1 in a directory for step 4")));
}

// A manifest with a valid checksum that lies (written by a buggy or foreign tool) is refused
// before any file is trusted.
TEST_F(CorruptionTest, InconsistentManifest) {
  Manifest m;
  ASSERT_TRUE(m.ParseFromString(Slurp(step_ + "/manifest.pb")));
  const auto rewrite = [&](const Manifest& changed) {
    std::string bytes;
    ASSERT_TRUE(changed.SerializeToString(&bytes));
    Spill(step_ + "/manifest.pb", bytes);
    Spill(step_ + "/manifest.crc32c", absl::StrFormat("%08x %d\n", crc32c::Value(bytes), bytes.size()));
  };
  Manifest past_end = m;
  past_end.mutable_tensors(1)->set_offset(50);  // b: [50, 60) in a 58-byte file
  rewrite(past_end);
  ExpectBroken(absl::StatusCode::kDataLoss, "tensor \"b\" (rank -1) at [50, 60) runs past the end of \"model.bin\"");

  Manifest gap = m;
  gap.mutable_tensors(3)->mutable_partition()->set_begin(8);
  gap.mutable_tensors(3)->set_nbytes(16);
  rewrite(gap);
  ExpectBroken(absl::StatusCode::kDataLoss, "the slices of tensor \"exp_avg.w\" leave a gap at element 7");

  Manifest escape = m;
  escape.mutable_files(0)->set_name("../../etc/passwd");
  rewrite(escape);
  ExpectBroken(absl::StatusCode::kDataLoss, "file name \"../../etc/passwd\" has a '/'");

  Manifest newer = m;
  newer.set_format_version(2);
  rewrite(newer);
  ExpectBroken(absl::StatusCode::kFailedPrecondition, "format_version 2 is newer than this reader's 1");
}

TEST_F(CorruptionTest, ReadsAfterOpenCheckAgain) {
  absl::StatusOr<CheckpointReader> r = OpenCheckpoint(save_);
  ASSERT_THAT(r.status(), IsOk());
  FlipBit(step_ + "/model.bin", 5, 1);
  EXPECT_THAT(r->Verify(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr(step_ + "/model.bin: crc32c")));
  EXPECT_THAT(r->ReadFile("model.bin").status(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("model.bin")));
  Spill(step_ + "/optim_rank1.bin", "short");
  EXPECT_THAT(r->ReadTensorBytes(*r->FindTensor("exp_avg.w")[1]).status(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("optim_rank1.bin: 5 bytes, but manifest.pb says 1020")));
  EXPECT_THAT(r->ReadFile("nope").status(), StatusIs(absl::StatusCode::kNotFound, HasSubstr("lists no file \"nope\"")));
}

TEST(CheckpointDirTest, NothingCheckpointLikeIsNotFound) {
  const std::string dir = FreshTestDir();
  EXPECT_THAT(OpenCheckpoint(dir + "/missing").status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(dir + "/missing: no such checkpoint")));
  EXPECT_THAT(OpenCheckpoint(dir).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("neither a checkpoint step directory")));
  // Complete steps but no `latest` (a first save that died before writing it): nothing to resume.
  CheckpointWriterOptions no_latest = TwoRanks();
  no_latest.update_latest = false;
  ASSERT_THAT(SaveStep(dir, 4, 0, no_latest), IsOk());
  EXPECT_THAT(
      OpenCheckpoint(dir).status(),
      StatusIs(absl::StatusCode::kNotFound, HasSubstr("no latest file; its complete checkpoints are global_step4")));
  Spill(dir + "/file", "x");
  EXPECT_THAT(OpenCheckpoint(dir + "/file").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a directory")));
}

// ---- the writer ------------------------------------------------------------------------------

TEST(CheckpointWriterTest, RefusesBadFilesAndTensors) {
  const std::string save = FreshTestDir();
  absl::StatusOr<CheckpointWriter> w = CheckpointWriter::Begin(save, 1, TwoRanks());
  ASSERT_THAT(w.status(), IsOk());
  for (const char* bad : {"", ".", "..", "a/b", "manifest.pb", "manifest.crc32c", "x.tmp-1"}) {
    EXPECT_THAT(w->AddFile(bad, "x", 0),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("checkpoint file name")))
        << bad;
  }
  EXPECT_THAT(w->AddFile("a", "x", 2),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rank 2 outside [-1, 2)")));
  ASSERT_THAT(w->AddFile("a", "0123456789abcdef", 0), IsOk());
  EXPECT_THAT(w->AddFile("a", "x", 0), StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("/a: written already")));
  absl::StatusOr<FileSink> open = w->OpenFile("b", 1);
  ASSERT_THAT(open.status(), IsOk());
  EXPECT_THAT(w->OpenFile("b", 1).status(),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("\"b\" is being written already")));

  EXPECT_THAT(
      w->AddTensor(Tensor("t", "F33", {2}, "a", 0, 8, 0)),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tensor \"t\" (rank 0) has unknown dtype \"F33\"")));
  EXPECT_THAT(w->AddTensor(Tensor("t", "F32", {2, 2}, "a", 0, 8, 0)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("says nbytes 8, but 4 elements of F32 take 16")));
  EXPECT_THAT(w->AddTensor(Tensor("t", "F32", {-2}, "a", 0, 8, 0)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("negative dimension -2")));
  EXPECT_THAT(w->AddTensor(Slice(Tensor("t", "F32", {4}, "a", 0, 8, 0), 3, 5)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("partition [3, 5) outside its 4 elements")));
  EXPECT_THAT(w->AddTensor(Tensor("t", "F32", {4}, "a", 0, 16, 5)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rank outside [-1, 2)")));

  // Mistakes only the whole manifest shows are refused at Commit, which can be retried.
  ASSERT_THAT(w->AddTensor(Slice(Tensor("t", "F32", {4}, "a", 0, 8, 0), 0, 2)), IsOk());
  EXPECT_THAT(w->Commit(), StatusIs(absl::StatusCode::kInvalidArgument,
                                    HasSubstr("the slices of tensor \"t\" cover 2 of its 4 elements")));
  ASSERT_THAT(w->AddTensor(Slice(Tensor("t", "F32", {4}, "c", 0, 8, 1), 2, 4)), IsOk());
  EXPECT_THAT(w->Commit(), StatusIs(absl::StatusCode::kInvalidArgument,
                                    HasSubstr("tensor \"t\" (rank 1) is in file \"c\", which is not listed")));
  ASSERT_THAT(w->AddFile("c", "01234567", 1), IsOk());
  ASSERT_THAT(open->Append("later"), IsOk());
  ASSERT_THAT(w->FinishFile(std::move(*open)), IsOk());
  ASSERT_THAT(w->Commit(), IsOk());
  EXPECT_THAT(w->Commit(), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("is finished")));
  EXPECT_THAT(w->AddFile("d", "x", 0), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("is finished")));
  absl::StatusOr<CheckpointReader> r = OpenCheckpoint(save);
  ASSERT_THAT(r.status(), IsOk());
  EXPECT_THAT(r->ReadFile("b"), IsOkAndHolds(std::string("later")));
}

TEST(CheckpointWriterTest, RefusesBadArguments) {
  const std::string save = FreshTestDir();
  EXPECT_THAT(CheckpointWriter::Begin(save, -1).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("step -1 is negative")));
  CheckpointWriterOptions options;
  options.zero_stage = 4;
  EXPECT_THAT(CheckpointWriter::Begin(save, 1, options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("zero_stage 4")));
  options.zero_stage = 0;
  options.world_size = 0;
  EXPECT_THAT(CheckpointWriter::Begin(save, 1, options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("world_size 0")));
  // A global_stepN that is not ours is never replaced.
  ::mkdir((save + "/global_step3").c_str(), 0755);
  EXPECT_THAT(CheckpointWriter::Begin(save, 3).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr(save + "/global_step3: exists but is not a complete checkpoint")));
}

TEST(CheckpointWriterTest, SinkFromAnotherWriterIsRefused) {
  const std::string dir = FreshTestDir();
  absl::StatusOr<CheckpointWriter> a = CheckpointWriter::Begin(dir + "/a", 1);
  absl::StatusOr<CheckpointWriter> b = CheckpointWriter::Begin(dir + "/b", 1);
  ASSERT_THAT(a.status(), IsOk());
  ASSERT_THAT(b.status(), IsOk());
  absl::StatusOr<FileSink> sink = a->OpenFile("x", 0);
  ASSERT_THAT(sink.status(), IsOk());
  EXPECT_THAT(b->FinishFile(std::move(*sink)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("belongs to another checkpoint writer")));
  EXPECT_THAT(a->Abort(), IsOk());
  EXPECT_THAT(b->Abort(), IsOk());
}

TEST(CheckpointWriterTest, UnfinishedWorkLeavesOnlyDebrisThatTheNextWriterRemoves) {
  const std::string save = FreshTestDir();
  ASSERT_THAT(SaveStep(save, 1), IsOk());
  std::string staging;
  {
    absl::StatusOr<CheckpointWriter> w = CheckpointWriter::Begin(save, 2);
    ASSERT_THAT(w.status(), IsOk());
    staging = w->staging_dir();
    EXPECT_EQ(staging, absl::StrCat(save, "/global_step2.tmp-", ::getpid()));
    ASSERT_THAT(w->AddFile("a", "x", 0), IsOk());
    {
      absl::StatusOr<FileSink> dropped = w->OpenFile("b", 0);
      ASSERT_THAT(dropped.status(), IsOk());
      ASSERT_THAT(dropped->Append("partial"), IsOk());
    }  // a dropped sink removes its temporary file
    EXPECT_THAT(ListDirNames(staging), ElementsAre("a"));
  }  // dropped without Commit (it warns)
  Spill(save + "/latest.tmp-99999", "global_step2");
  EXPECT_THAT(ListDirNames(save),
              ElementsAre("global_step1", absl::StrCat("global_step2.tmp-", ::getpid()), "latest", "latest.tmp-99999"));
  EXPECT_THAT(OpenCheckpoint(save), IsOkAndHolds(::testing::Property(&CheckpointReader::global_step, 1)));

  absl::StatusOr<CheckpointWriter> next = CheckpointWriter::Begin(save, 3);
  ASSERT_THAT(next.status(), IsOk());
  EXPECT_THAT(ListDirNames(save), ElementsAre("global_step1", absl::StrCat("global_step3.tmp-", ::getpid()), "latest"));
  ASSERT_THAT(next->Abort(), IsOk());
  EXPECT_THAT(ListDirNames(save), ElementsAre("global_step1", "latest"));
}

// Replacing a step by two renames (where RENAME_EXCHANGE is missing) has a moment when the old
// directory has been moved aside and the new one is not in place; a writer that dies then leaves
// the only copy as debris, which the next writer (or rotation) puts back instead of deleting.
TEST(CheckpointWriterTest, PutsBackAStepLeftAsideByAHalfDoneReplacement) {
  const std::string save = FreshTestDir();
  ASSERT_THAT(SaveStep(save, 1, 1), IsOk());
  ASSERT_EQ(std::rename((save + "/global_step1").c_str(), (save + "/global_step1.old.tmp-4242").c_str()), 0);
  ::mkdir((save + "/global_step1.tmp-4242").c_str(), 0755);  // the half-built replacement
  EXPECT_THAT(OpenCheckpoint(save).status(),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("latest names global_step1, but")));
  absl::StatusOr<CheckpointWriter> w = CheckpointWriter::Begin(save, 2);
  ASSERT_THAT(w.status(), IsOk());
  ASSERT_THAT(w->Abort(), IsOk());
  EXPECT_THAT(ListDirNames(save), ElementsAre("global_step1", "latest"));
  EXPECT_THAT(OpenCheckpoint(save), IsOkAndHolds(::testing::Property(&CheckpointReader::global_step, 1)));

  // Once the new one is in place, the old one is only debris.
  ASSERT_THAT(SaveStep(save, 1, 2), IsOk());
  ::mkdir((save + "/global_step1.old.tmp-4242").c_str(), 0755);
  Spill(save + "/global_step1.old.tmp-4242/model.bin", "old");
  ASSERT_THAT(RotateCheckpoints(save, 1), IsOk());
  EXPECT_THAT(ListDirNames(save), ElementsAre("global_step1", "latest"));
  EXPECT_THAT(OpenCheckpoint(save), IsOkAndHolds(::testing::Property(&CheckpointReader::manifest,
                                                                     ::testing::Property(&Manifest::global_step, 1))));
}

// ---- rotation --------------------------------------------------------------------------------

TEST(RotateCheckpointsTest, KeepsTheNewestAndLatestsAndRemovesDebris) {
  const std::string save = FreshTestDir();
  CheckpointWriterOptions no_latest = TwoRanks();
  no_latest.update_latest = false;
  for (int step : {10, 20}) ASSERT_THAT(SaveStep(save, step), IsOk());
  for (int step : {30, 40, 50}) ASSERT_THAT(SaveStep(save, step, 0, no_latest), IsOk());  // latest stays at 20
  ::mkdir((save + "/global_step60.tmp-12345").c_str(), 0755);                             // a dead writer's
  Spill(save + "/global_step60.tmp-12345/half.bin", "x");
  Spill(save + "/notes.txt", "the user's");         // not ours: left alone
  ::mkdir((save + "/global_step5").c_str(), 0755);  // incomplete, not ours to judge: left alone

  ASSERT_THAT(RotateCheckpoints(save, 2), IsOk());
  EXPECT_THAT(ListDirNames(save),
              ElementsAre("global_step20", "global_step40", "global_step5", "global_step50", "latest", "notes.txt"));
  EXPECT_THAT(OpenCheckpoint(save), IsOkAndHolds(::testing::Property(&CheckpointReader::global_step, 20)));
  ASSERT_THAT(RotateCheckpoints(save, 1), IsOk());
  EXPECT_THAT(ListCheckpointSteps(save), IsOkAndHolds(ElementsAre(20, 50)));
  ASSERT_THAT(RotateCheckpoints(save, 5), IsOk());  // nothing more to do
  EXPECT_THAT(ListCheckpointSteps(save), IsOkAndHolds(ElementsAre(20, 50)));
}

TEST(RotateCheckpointsTest, KeepsExactlyTheNewestWhenLatestIsNewest) {
  const std::string save = FreshTestDir();
  for (int step = 1; step <= 6; ++step) ASSERT_THAT(SaveStep(save, step), IsOk());
  ASSERT_THAT(RotateCheckpoints(save, 3), IsOk());
  EXPECT_THAT(ListCheckpointSteps(save), IsOkAndHolds(ElementsAre(4, 5, 6)));
  EXPECT_THAT(ListDirNames(save), UnorderedElementsAre("global_step4", "global_step5", "global_step6", "latest"));
}

TEST(RotateCheckpointsTest, DeletesNothingWhenLatestIsUnreadable) {
  const std::string save = FreshTestDir();
  for (int step = 1; step <= 3; ++step) ASSERT_THAT(SaveStep(save, step), IsOk());
  Spill(save + "/latest", "garbage");
  EXPECT_THAT(RotateCheckpoints(save, 1),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr(save + "/latest: holds \"garbage\""), HasSubstr("no checkpoint was deleted"))));
  EXPECT_THAT(ListCheckpointSteps(save), IsOkAndHolds(ElementsAre(1, 2, 3)));
  EXPECT_THAT(RotateCheckpoints(save, 0), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("keeps 0")));
  EXPECT_THAT(RotateCheckpoints(save + "/missing", 1),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/missing: no such save directory")));
}

TEST(StepDirNameTest, ParsesOnlyCanonicalNames) {
  EXPECT_EQ(StepDirName(0), "global_step0");
  EXPECT_EQ(StepDirName(1234), "global_step1234");
  EXPECT_EQ(ParseStepDirName("global_step0"), 0);
  EXPECT_EQ(ParseStepDirName("global_step9223372036854775807"), INT64_MAX);
  for (const char* bad : {"global_step", "global_step01", "global_step+1", "global_step-1", "global_step1x",
                          "global_step99999999999999999999", "step1", "global_step1.tmp-5", " global_step1"}) {
    EXPECT_FALSE(ParseStepDirName(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace zt::ckpt
