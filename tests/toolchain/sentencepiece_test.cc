// Trains and loads a tiny SentencePiece model.  This binary must not link libprotobuf: Debian's
// libsentencepiece0 embeds and exports protobuf-lite 3.14, which clashes with libprotobuf.so.32
// in one process (the model parser aborts with a version mismatch).
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace {

TEST(SentencePiece, TrainsLoadsAndEncodes) {
  const std::string dir = std::getenv("TEST_TMPDIR");
  {
    std::ofstream f(dir + "/corpus.txt");
    for (int i = 0; i < 200; ++i) f << "the quick brown fox jumps over the lazy dog " << i % 10 << "\n";
  }
  auto trained = sentencepiece::SentencePieceTrainer::Train(
      "--input=" + dir + "/corpus.txt --model_prefix=" + dir +
      "/spm --vocab_size=40 --hard_vocab_limit=false --model_type=char --minloglevel=2 --num_threads=1");
  ASSERT_TRUE(trained.ok()) << trained.ToString();
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(dir + "/spm.model").ok());
  std::vector<std::string> pieces;
  ASSERT_TRUE(sp.Encode("lazy fox", &pieces).ok());
  EXPECT_FALSE(pieces.empty());
  std::string back;
  ASSERT_TRUE(sp.Decode(pieces, &back).ok());
  EXPECT_EQ(back, "lazy fox");
}

}  // namespace
