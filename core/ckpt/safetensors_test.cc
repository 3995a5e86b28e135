#include "core/ckpt/safetensors.h"

#include <ATen/ops/arange.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/randn.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "core/util/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt::ckpt {
namespace {

using ::testing::HasSubstr;

std::string TmpPath(const std::string& name) { return std::string(std::getenv("TEST_TMPDIR")) + "/" + name; }

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

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
