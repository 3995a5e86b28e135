#include "core/ckpt/safetensors.h"

#include <ATen/ops/arange.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/randn.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/util/status_matchers.h"
#include "core/util/test_files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt::ckpt {
namespace {

using ::zt::testing::Slurp;

using ::testing::HasSubstr;

std::string TmpPath(const std::string& name) { return std::string(std::getenv("TEST_TMPDIR")) + "/" + name; }

// A file of one tensor per supported dtype.
std::vector<std::pair<std::string, at::Tensor>> AllDtypes() {
  std::vector<std::pair<std::string, at::Tensor>> t;
  const at::Tensor base = at::arange(-6, 6).reshape({3, 4});
  for (at::ScalarType s : {at::kDouble, at::kFloat, at::kHalf, at::kBFloat16, at::kLong, at::kInt, at::kShort,
                           at::kChar, at::kByte, at::kBool}) {
    t.emplace_back(std::string("t.") + c10::toString(s), base.to(s));
  }
  t.emplace_back("empty", at::randn({0, 5}));
  t.emplace_back("scalar", at::randn({}));
  t.emplace_back("strided", at::randn({4, 6}).t());  // non-contiguous
  return t;
}

TEST(SafetensorsTest, RoundTripsEveryDtypeAndMetadata) {
  const std::string path = TmpPath("all.safetensors");
  const auto tensors = AllDtypes();
  ASSERT_THAT(WriteSafetensors(path, tensors, {{"format", "pt"}}), IsOk());
  absl::StatusOr<Safetensors> st = ReadSafetensors(path);
  ASSERT_THAT(st.status(), IsOk());
  EXPECT_EQ(st->metadata.at("format"), "pt");
  ASSERT_EQ(st->tensors.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    const at::Tensor* got = st->Find(name);
    ASSERT_NE(got, nullptr) << name;
    EXPECT_EQ(got->scalar_type(), t.scalar_type()) << name;
    EXPECT_EQ(got->sizes(), t.sizes()) << name;
    EXPECT_TRUE(at::equal(*got, t)) << name;
  }
  // The data starts 8-byte aligned, as HF's writer leaves it.
  const std::string bytes = Slurp(path);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  EXPECT_EQ(n % 8, 0u);
}

TEST(SafetensorsTest, WriterRefusesWhatTheFormatCannotHold) {
  const std::string path = TmpPath("bad.safetensors");
  EXPECT_THAT(WriteSafetensors(path, {{"a", at::randn({2})}, {"a", at::randn({2})}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"a\" is a reserved or repeated name")));
  EXPECT_THAT(WriteSafetensors(path, {{"c", at::randn({2}).to(at::kComplexFloat)}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unsupported dtype")));
  EXPECT_THAT(WriteSafetensors("/nonexistent-dir/x.safetensors", {{"a", at::randn({2})}}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent-dir/x.safetensors.tmp")));
  EXPECT_FALSE(std::ifstream(path).good());  // nothing half-written left behind
}

// SafetensorsWriter: tensors streamed in pieces read back as the tensors, whichever way the
// bytes were cut, with "format": "pt" metadata by default.
TEST(SafetensorsWriterTest, StreamedTensorsRoundTrip) {
  const std::string path = TmpPath("streamed.safetensors");
  const at::Tensor w = at::randn({5, 7});
  const at::Tensor b = at::arange(0, 6).to(at::kBFloat16);
  const at::Tensor i = at::arange(-3, 3).to(at::kLong).reshape({2, 3});
  absl::StatusOr<SafetensorsWriter> writer = SafetensorsWriter::Create(
      path, {{"w", "F32", {5, 7}}, {"empty", "F16", {0, 3}}, {"b", "BF16", {6}}, {"i", "I64", {2, 3}}});
  ASSERT_THAT(writer.status(), IsOk());
  const auto bytes = [](const at::Tensor& t) {
    return std::string(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  };
  const std::string wb = bytes(w);
  for (std::size_t at = 0; at < wb.size(); at += 13) ASSERT_THAT(writer->Append(wb.substr(at, 13)), IsOk());
  ASSERT_THAT(writer->EndTensor(), IsOk());
  ASSERT_THAT(writer->EndTensor(), IsOk());  // "empty": no bytes
  ASSERT_THAT(writer->Append(bytes(b)), IsOk());
  ASSERT_THAT(writer->EndTensor(), IsOk());
  ASSERT_THAT(writer->Append(""), IsOk());
  ASSERT_THAT(writer->Append(bytes(i)), IsOk());
  ASSERT_THAT(writer->EndTensor(), IsOk());
  EXPECT_FALSE(std::ifstream(path).good());  // nothing at the path until Finish
  const std::uint64_t size = writer->file_size();
  ASSERT_THAT(writer->Finish(), IsOk());
  EXPECT_EQ(Slurp(path).size(), size);

  absl::StatusOr<Safetensors> st = ReadSafetensors(path);
  ASSERT_THAT(st.status(), IsOk());
  EXPECT_EQ(st->metadata, (std::map<std::string, std::string>{{"format", "pt"}}));
  ASSERT_EQ(st->tensors.size(), 4u);
  EXPECT_EQ(st->tensors[0].first, "w");  // the data in the specs' order
  EXPECT_EQ(st->tensors[3].first, "i");
  EXPECT_TRUE(at::equal(*st->Find("w"), w));
  EXPECT_TRUE(at::equal(*st->Find("b"), b));
  EXPECT_TRUE(at::equal(*st->Find("i"), i));
  EXPECT_EQ(st->Find("empty")->sizes(), at::IntArrayRef({0, 3}));
  EXPECT_EQ(st->Find("empty")->scalar_type(), at::kHalf);
}

// A tensor given more or fewer bytes than its shape takes fails naming it, the writer stays
// failed, and neither the file nor its temporary is left.
TEST(SafetensorsWriterTest, WrongByteCountsAreRejected) {
  const std::string path = TmpPath("wrong.safetensors");
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  {
    absl::StatusOr<SafetensorsWriter> w = SafetensorsWriter::Create(path, {{"a", "F32", {2}}, {"b", "F32", {1}}});
    ASSERT_THAT(w.status(), IsOk());
    EXPECT_TRUE(std::ifstream(tmp).good());
    ASSERT_THAT(w->Append(std::string(4, 'x')), IsOk());
    EXPECT_THAT(
        w->Append(std::string(5, 'x')),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tensor \"a\" got 9 bytes, but its F32 shape takes 8")));
    EXPECT_FALSE(std::ifstream(tmp).good());
    EXPECT_THAT(w->EndTensor(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"a\" got 9 bytes")));
    EXPECT_THAT(w->Finish(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"a\" got 9 bytes")));
  }
  {
    absl::StatusOr<SafetensorsWriter> w = SafetensorsWriter::Create(path, {{"a", "F32", {2}}, {"b", "F32", {1}}});
    ASSERT_THAT(w.status(), IsOk());
    ASSERT_THAT(w->Append(std::string(4, 'x')), IsOk());
    EXPECT_THAT(w->EndTensor(), StatusIs(absl::StatusCode::kInvalidArgument,
                                         HasSubstr("tensor \"a\" got 4 bytes, but its F32 shape takes 8")));
  }
  {
    absl::StatusOr<SafetensorsWriter> w = SafetensorsWriter::Create(path, {{"a", "F32", {2}}, {"b", "F32", {1}}});
    ASSERT_THAT(w.status(), IsOk());
    ASSERT_THAT(w->Append(std::string(8, 'x')), IsOk());
    ASSERT_THAT(w->EndTensor(), IsOk());
    EXPECT_THAT(w->Finish(), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("after 1 of its 2 tensors")));
  }
  {
    absl::StatusOr<SafetensorsWriter> w = SafetensorsWriter::Create(path, {{"a", "U8", {1}}});
    ASSERT_THAT(w.status(), IsOk());
    ASSERT_THAT(w->Append("x"), IsOk());
    ASSERT_THAT(w->EndTensor(), IsOk());
    EXPECT_THAT(w->Append("y"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("after the last of its 1")));
  }
  {  // dropped unfinished
    absl::StatusOr<SafetensorsWriter> w = SafetensorsWriter::Create(path, {{"a", "U8", {1}}});
    ASSERT_THAT(w.status(), IsOk());
    ASSERT_THAT(w->Append("x"), IsOk());
    ASSERT_THAT(w->EndTensor(), IsOk());
  }
  EXPECT_FALSE(std::ifstream(path).good());
  EXPECT_FALSE(std::ifstream(tmp).good());
}

TEST(SafetensorsWriterTest, RefusesBadSpecs) {
  const std::string path = TmpPath("specs.safetensors");
  EXPECT_THAT(SafetensorsWriter::Create(path, {{"a", "F32", {1}}, {"a", "F32", {1}}}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"a\" is a reserved or repeated name")));
  EXPECT_THAT(SafetensorsWriter::Create(path, {{"__metadata__", "F32", {1}}}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("reserved")));
  EXPECT_THAT(SafetensorsWriter::Create(path, {{"a", "F8_E4M3", {1}}}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unsupported dtype \"F8_E4M3\"")));
  EXPECT_THAT(SafetensorsWriter::Create(path, {{"a", "F32", {2, -1}}}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("negative dimension -1")));
  EXPECT_THAT(SafetensorsWriter::Create(path, {{"a", "F32", {int64_t{1} << 40, int64_t{1} << 40}}}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("too many bytes")));
  EXPECT_FALSE(std::ifstream(path).good());
}

std::string WithHeader(const std::string& json, const std::string& data) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(static_cast<std::uint64_t>(json.size()) >> (8 * i));
  return out + json + data;
}

TEST(SafetensorsTest, CorruptFilesNameFileTensorAndFault) {
  const std::string data(16, '\1');
  struct Case {
    std::string bytes, want;
  } cases[] = {
      {"abc", "only 3 bytes"},
      {std::string("\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10), "header length"},
      {WithHeader("{\"a\": ", data), "not a JSON object"},
      {WithHeader("[1,2]", data), "not a JSON object"},
      {WithHeader(R"({"a": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}})", data),
       "tensor \"a\": unsupported dtype \"F8_E4M3\""},
      {WithHeader(R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", data), "non-negative"},
      {WithHeader(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 12]}})", data),
       "span 12 bytes, shape and dtype need 8"},
      {WithHeader(R"({"a": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]}})", data), "outside the 16"},
      {WithHeader(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 4]}})", data), "outside"},
      {WithHeader(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}})", data), "data_offsets"},
      {WithHeader(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                  data),
       "\"a\" and \"b\" overlap"},
      {WithHeader(R"({"a": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})", data),
       "overflows"},
      {WithHeader(R"({"a": {"shape": [2], "data_offsets": [0, 8]}})", data), "\"dtype\" missing"},
      {WithHeader(R"({"__metadata__": {"format": 1}})", data), "metadata \"format\" is not a string"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(ParseSafetensors(c.bytes, "m.safetensors").status(),
                StatusIs(absl::StatusCode::kDataLoss, ::testing::AllOf(HasSubstr("m.safetensors"), HasSubstr(c.want))))
        << c.want;
  }
  EXPECT_THAT(ReadSafetensors(TmpPath("missing.safetensors")).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing.safetensors")));
}

// Random damage to a valid file (bytes flipped, cut short, header length changed) never
// crashes the reader: it fails with kDataLoss or reads tensors whose bytes are inside the file.
TEST(SafetensorsTest, FuzzedFilesFailCleanly) {
  const std::string path = TmpPath("fuzz.safetensors");
  ASSERT_THAT(WriteSafetensors(path, AllDtypes(), {{"format", "pt"}}), IsOk());
  const std::string good = Slurp(path);
  std::mt19937_64 rng(20261128);
  int ok = 0, failed = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string b = good;
    switch (iter % 3) {
      case 0:
        for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k) b[rng() % b.size()] = static_cast<char>(rng());
        break;
      case 1:
        b.resize(rng() % b.size());
        break;
      case 2:
        b[rng() % 8] = static_cast<char>(rng());
        break;
    }
    absl::StatusOr<Safetensors> st = ParseSafetensors(b, "fuzz");
    if (!st.ok()) {
      EXPECT_EQ(st.status().code(), absl::StatusCode::kDataLoss) << st.status();
      ++failed;
      continue;
    }
    ++ok;
    std::size_t bytes = 0;
    for (const auto& [name, t] : st->tensors) bytes += t.numel() * t.element_size();
    EXPECT_LE(bytes, b.size());
  }
  EXPECT_GT(failed, 1000);  // the damage is real
  EXPECT_GT(ok, 0);         // and flips inside the data still read
}

}  // namespace
}  // namespace zt::ckpt
