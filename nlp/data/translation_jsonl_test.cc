#include "nlp/data/translation_jsonl.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zt::nlp {
namespace {

using ::testing::HasSubstr;

std::string WriteFile(const std::string& name, const std::string& body) {
  std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  std::ofstream(path) << body;
  return path;
}

TEST(ReadTranslationJsonl, ReadsPairsInOrderAndSkipsBlankLines) {
  std::string path = WriteFile("ok.json",
                               "{\"translation\": {\"en\": \"Hello\", \"ro\": \"Salut\"}}\n"
                               "\n"
                               "{\"translation\": {\"ro\": \"Bun\\u0103 ziua\", \"en\": \"\"}}\n");
  auto pairs = ReadTranslationJsonl(path, "en", "ro");
  ASSERT_TRUE(pairs.ok()) << pairs.status();
  ASSERT_EQ(pairs->size(), 2u);
  EXPECT_EQ((*pairs)[0].source, "Hello");
  EXPECT_EQ((*pairs)[0].target, "Salut");
  EXPECT_EQ((*pairs)[1].source, "");                  // empty texts are kept
  EXPECT_EQ((*pairs)[1].target, "Bun\xc4\x83 ziua");  // UTF-8
}

TEST(ReadTranslationJsonl, SwapsDirectionWithTheLanguages) {
  std::string path = WriteFile("dir.json", "{\"translation\": {\"en\": \"a\", \"ro\": \"b\"}}\n");
  auto pairs = ReadTranslationJsonl(path, "ro", "en");
  ASSERT_TRUE(pairs.ok());
  EXPECT_EQ((*pairs)[0].source, "b");
}

TEST(ReadTranslationJsonl, StopsAtMaxSamples) {
  std::string body;
  for (int i = 0; i < 10; ++i) body += "{\"translation\": {\"en\": \"e\", \"ro\": \"r\"}}\n";
  body += "this line is never read\n";
  auto pairs = ReadTranslationJsonl(WriteFile("max.json", body), "en", "ro", 4);
  ASSERT_TRUE(pairs.ok()) << pairs.status();
  EXPECT_EQ(pairs->size(), 4u);
}

TEST(ReadTranslationJsonl, ErrorsNameFileAndLine) {
  std::string bad_json = WriteFile("bad.json", "{\"translation\": {\"en\": \"a\", \"ro\": \"b\"}}\n{oops\n");
  auto s = ReadTranslationJsonl(bad_json, "en", "ro").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("bad.json:2: not a JSON object"));

  std::string no_lang = WriteFile("nolang.json", "{\"translation\": {\"en\": \"a\", \"de\": \"b\"}}\n");
  EXPECT_THAT(std::string(ReadTranslationJsonl(no_lang, "en", "ro").status().message()),
              HasSubstr("nolang.json:1: no \"ro\" text"));

  std::string not_string = WriteFile("num.json", "{\"translation\": {\"en\": 3, \"ro\": \"b\"}}\n");
  EXPECT_THAT(std::string(ReadTranslationJsonl(not_string, "en", "ro").status().message()),
              HasSubstr("num.json:1: \"en\" is not a string"));

  std::string no_obj = WriteFile("noobj.json", "{\"en\": \"a\", \"ro\": \"b\"}\n");
  EXPECT_THAT(std::string(ReadTranslationJsonl(no_obj, "en", "ro").status().message()),
              HasSubstr("noobj.json:1: expected {\"translation\""));
}

TEST(ReadTranslationJsonl, MissingFileIsNotFound) {
  auto s = ReadTranslationJsonl("/nonexistent/train.json", "en", "ro").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(s.message()), HasSubstr("/nonexistent/train.json"));
}

// The WMT16 sample the project's benchmarks use, when the shared data folder is present.
TEST(ReadTranslationJsonl, ReadsSharedWmt16Validation) {
  const std::string path = std::string(std::getenv("TEST_SRCDIR")) + "/shared_data/wmt16_en_ro/validation.json";
  std::ifstream probe(path);
  if (!probe) GTEST_SKIP() << "wmt16_en_ro not present: set ZT_SHARED_DATA or put the data at ../shared/data";
  auto pairs = ReadTranslationJsonl(path, "en", "ro");
  ASSERT_TRUE(pairs.ok()) << pairs.status();
  EXPECT_EQ(pairs->size(), 1999u);
}

}  // namespace
}  // namespace zt::nlp
