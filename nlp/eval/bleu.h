// Corpus BLEU exactly as sacreBLEU 2.x computes it with its defaults (what HF's
// run_translation.py reports as eval_bleu): 13a tokenisation, n-grams up to 4, exponential
// smoothing, one reference per hypothesis, scores in 0..100.
//
//   ASSIGN_OR_RETURN(zt::nlp::Bleu b, zt::nlp::CorpusBleu(hypotheses, references));
//   std::printf("BLEU %.2f\n", b.score);
#ifndef ZEROTRAIN_NLP_EVAL_BLEU_H_
#define ZEROTRAIN_NLP_EVAL_BLEU_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace zt::nlp {

struct Bleu {
  double score = 0;
  std::array<std::int64_t, 4> counts{};  // matched n-grams, n = 1..4
  std::array<std::int64_t, 4> totals{};  // hypothesis n-grams
  std::array<double, 4> precisions{};    // percent, smoothed where no n-gram matched
  double bp = 1;                         // brevity penalty
  std::int64_t sys_len = 0, ref_len = 0;
};

// mteval-v13a's tokenisation as sacreBLEU implements it (the line is not right-stripped here;
// CorpusBleu does that first, as sacreBLEU does).
std::string Tokenize13a(absl::string_view line);

// kInvalidArgument when the two lists differ in length.
absl::StatusOr<Bleu> CorpusBleu(const std::vector<std::string>& hypotheses, const std::vector<std::string>& references);

}  // namespace zt::nlp

#endif  // ZEROTRAIN_NLP_EVAL_BLEU_H_
