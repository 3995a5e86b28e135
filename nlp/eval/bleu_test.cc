// Our corpus BLEU against PyPI's sacreBLEU (testdata/make_bleu_fixtures.py recorded its score,
// statistics and 13a tokenisation for 300 damaged WMT16 references).
#include "nlp/eval/bleu.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/util/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "nlp/data/translation_jsonl.h"

namespace zt::nlp {
namespace {

std::string Runfile(const std::string& p) { return std::string(std::getenv("TEST_SRCDIR")) + "/" + p; }

std::vector<std::string> Lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(BleuTest, EqualsSacrebleuOnDamagedWmt16) {
  if (!std::ifstream(Runfile("shared_data/wmt16_en_ro/validation.json"))) {
    GTEST_SKIP() << "wmt16_en_ro not present: set ZT_SHARED_DATA or put the data at ../shared/data";
  }
  const std::vector<std::string> hyps = Lines(Runfile("zerotrain/nlp/eval/testdata/bleu_hyps.txt"));
  const std::vector<std::string> tokenized = Lines(Runfile("zerotrain/nlp/eval/testdata/bleu_tokenized.txt"));
  ASSERT_EQ(hyps.size(), 300u);
  ASSERT_EQ(tokenized.size(), 300u);
  for (std::size_t i = 0; i < hyps.size(); ++i) {
    std::string h = hyps[i];
    while (!h.empty() && h.back() == ' ') h.pop_back();
    EXPECT_EQ(Tokenize13a(h), tokenized[i]) << "line " << i << ": " << hyps[i];
  }
  absl::StatusOr<std::vector<TranslationPair>> pairs =
      ReadTranslationJsonl(Runfile("shared_data/wmt16_en_ro/validation.json"), "en", "ro", 300);
  ASSERT_THAT(pairs.status(), IsOk());
  std::vector<std::string> refs;
  for (const auto& p : *pairs) refs.push_back(p.target);
  absl::StatusOr<Bleu> b = CorpusBleu(hyps, refs);
  ASSERT_THAT(b.status(), IsOk());
  std::ifstream in(Runfile("zerotrain/nlp/eval/testdata/bleu_expected.json"));
  const nlohmann::json want = nlohmann::json::parse(in);
  EXPECT_NEAR(b->score, want["score"].get<double>(), 1e-9);
  EXPECT_NEAR(b->bp, want["bp"].get<double>(), 1e-12);
  EXPECT_EQ(b->sys_len, want["sys_len"].get<std::int64_t>());
  EXPECT_EQ(b->ref_len, want["ref_len"].get<std::int64_t>());
  for (int n = 0; n < 4; ++n) {
    EXPECT_EQ(b->counts[n], want["counts"][n].get<std::int64_t>()) << n + 1 << "-grams";
    EXPECT_EQ(b->totals[n], want["totals"][n].get<std::int64_t>()) << n + 1 << "-grams";
  }
}

TEST(BleuTest, EdgeCases) {
  absl::StatusOr<Bleu> same = CorpusBleu({"the cat sat on the mat ."}, {"the cat sat on the mat ."});
  ASSERT_THAT(same.status(), IsOk());
  EXPECT_NEAR(same->score, 100.0, 1e-9);
  absl::StatusOr<Bleu> none = CorpusBleu({"x y z"}, {"a b c d"});
  ASSERT_THAT(none.status(), IsOk());
  EXPECT_EQ(none->score, 0.0);
  absl::StatusOr<Bleu> empty = CorpusBleu({""}, {"a b"});
  ASSERT_THAT(empty.status(), IsOk());
  EXPECT_EQ(empty->score, 0.0);
  EXPECT_EQ(empty->bp, 0.0);
  // Unigram matches only: higher orders smoothed 1/2, 1/4, 1/8 of a count (sacreBLEU's "exp").
  absl::StatusOr<Bleu> smooth = CorpusBleu({"a c b d"}, {"a b c d"});
  ASSERT_THAT(smooth.status(), IsOk());
  EXPECT_NEAR(smooth->precisions[1], 100.0 / (2 * 3), 1e-12);
  EXPECT_THAT(CorpusBleu({"a"}, {}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("1 hypotheses but 0 references")));
  EXPECT_EQ(Tokenize13a("It costs $3.50, i.e. 1,000-2,000 &quot;units&quot;."),
            "It costs $ 3.50 , i . e . 1,000 - 2,000 \" units \" .");  // as sacreBLEU 2.6 prints it
}

}  // namespace
}  // namespace zt::nlp
