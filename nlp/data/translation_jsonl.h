// Reads translation pairs in run_translation.py's JSON-lines layout (--train_file,
// --validation_file, HF datasets' wmt16 export): one object a line,
//   {"translation": {"en": "Resumption of the session", "ro": "Reluarea sesiunii"}}
//
//   ASSIGN_OR_RETURN(std::vector<zt::nlp::TranslationPair> pairs,
//                    zt::nlp::ReadTranslationJsonl("train.json", "en", "ro", /*max_samples=*/500));
//
// Blank lines are skipped.  A line that is not JSON, lacks the "translation" object or one of
// the two languages, or holds a non-string text is an error naming the file and line.  Empty
// texts are kept, as run_translation.py keeps them.
#ifndef ZEROTRAIN_NLP_DATA_TRANSLATION_JSONL_H_
#define ZEROTRAIN_NLP_DATA_TRANSLATION_JSONL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace zt::nlp {

struct TranslationPair {
  std::string source;
  std::string target;
};

// Reads at most `max_samples` pairs (all when max_samples < 0), in file order.
absl::StatusOr<std::vector<TranslationPair>> ReadTranslationJsonl(const std::string& path,
                                                                  const std::string& source_lang,
                                                                  const std::string& target_lang,
                                                                  std::int64_t max_samples = -1);

}  // namespace zt::nlp

#endif  // ZEROTRAIN_NLP_DATA_TRANSLATION_JSONL_H_
