// Trains a SentencePiece unigram model on raw text, for jobs whose model directory has no
// spiece.model (t5_translate --tokenizer_vocab_size).  The result is a model file that
// SentencePiece::Parse (and PyPI's sentencepiece / HF's T5Tokenizer) load: T5's layout (<pad> 0,
// </s> 1, <unk> 2), the identity normaliser with whitespace collapsed and "▁" word prefixes.
//
// The recipe follows sentencepiece's unigram trainer in outline, simplified: text split into
// whitespace-separated words; the characters covering `character_coverage` of the text are
// kept (the rest become <unk>); seed pieces are the most frequent substrings of words
// (frequency x length); then rounds of EM (expected piece counts by forward-backward over each
// word's segmentations, scores = log relative counts) and pruning of the pieces whose removal
// costs the least likelihood, until vocab_size pieces remain.  Not byte-identical to
// sentencepiece's trainer; deterministic for the same input.
#ifndef ZEROTRAIN_NLP_DATA_SENTENCEPIECE_TRAINER_H_
#define ZEROTRAIN_NLP_DATA_SENTENCEPIECE_TRAINER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace zt::nlp {

struct UnigramTrainerOptions {
  int vocab_size = 8000;  // pieces in the model, the three special ones included
  double character_coverage = 0.9995;
  int max_piece_chars = 16;
  int seed_pieces = 100000;
  int em_iterations = 2;  // EM rounds between two prunings
  double shrinking_factor = 0.75;
};

// The serialized model (what spiece.model holds).  kInvalidArgument for an empty corpus or a
// vocab_size below the character set's needs.
absl::StatusOr<std::string> TrainUnigram(const std::vector<std::string>& texts, const UnigramTrainerOptions& options);

}  // namespace zt::nlp

#endif  // ZEROTRAIN_NLP_DATA_SENTENCEPIECE_TRAINER_H_
