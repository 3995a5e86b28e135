#include "nlp/data/sentencepiece_trainer.h"

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "core/util/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlp/data/sentencepiece.h"
#include "nlp/data/translation_jsonl.h"

namespace zt::nlp {
namespace {

std::vector<std::string> Wmt16Text(int pairs) {
  absl::StatusOr<std::vector<TranslationPair>> p = ReadTranslationJsonl(
      std::string(std::getenv("TEST_SRCDIR")) + "/shared_data/wmt16_en_ro/train.json", "en", "ro", pairs);
  EXPECT_THAT(p.status(), IsOk());
  std::vector<std::string> out;
  for (const auto& x : *p) {
    out.push_back(x.source);
    out.push_back(x.target);
  }
  return out;
}

TEST(UnigramTrainerTest, TrainsAModelThatRoundTripsText) {
  const std::string train = std::string(std::getenv("TEST_SRCDIR")) + "/shared_data/wmt16_en_ro/train.json";
  if (!std::ifstream(train)) {
    GTEST_SKIP() << "wmt16_en_ro not present: set ZT_SHARED_DATA or put the data at ../shared/data";
  }
  const std::vector<std::string> text = Wmt16Text(2000);
  UnigramTrainerOptions o;
  o.vocab_size = 1000;
  absl::StatusOr<std::string> model = TrainUnigram(text, o);
  ASSERT_THAT(model.status(), IsOk());
  absl::StatusOr<SentencePiece> sp = SentencePiece::Parse(*model, "trained");
  ASSERT_THAT(sp.status(), IsOk());
  EXPECT_LE(sp->vocab_size(), 1000);
  EXPECT_GT(sp->vocab_size(), 900);
  EXPECT_EQ(sp->IdToPiece(0), "<pad>");
  EXPECT_EQ(sp->IdToPiece(1), "</s>");
  EXPECT_EQ(sp->unk_id(), 2);
  // Text of the training distribution comes back as it went in, in far fewer pieces than bytes.
  std::size_t bytes = 0, ids = 0;
  for (int i = 0; i < 200; ++i) {
    const std::vector<int> enc = sp->Encode(text[i]);
    bytes += text[i].size();
    ids += enc.size();
    std::string collapsed;
    for (char c : text[i]) {
      if (c == ' ' && (collapsed.empty() || collapsed.back() == ' ')) continue;
      collapsed += c;
    }
    while (!collapsed.empty() && collapsed.back() == ' ') collapsed.pop_back();
    if (std::find(enc.begin(), enc.end(), sp->unk_id()) == enc.end()) {
      EXPECT_EQ(sp->Decode(enc), collapsed);
    }
  }
  EXPECT_LT(ids * 3, bytes);  // > 3 bytes per piece
  // Deterministic.
  absl::StatusOr<std::string> again = TrainUnigram(text, o);
  ASSERT_THAT(again.status(), IsOk());
  EXPECT_EQ(*again, *model);
}

TEST(UnigramTrainerTest, RefusesWhatCannotWork) {
  EXPECT_THAT(TrainUnigram({"", "   "}, {}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("empty")));
  UnigramTrainerOptions tiny;
  tiny.vocab_size = 5;
  EXPECT_THAT(TrainUnigram({"abcdefgh"}, tiny).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("vocab_size 5")));
}

}  // namespace
}  // namespace zt::nlp
