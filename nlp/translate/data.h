// Translation data for t5_translate: where the pairs come from (files, a local copy of an HF
// dataset, or the embedded default), their tokenisation as run_translation.py does it, and
// padded batches.
#ifndef ZEROTRAIN_NLP_TRANSLATE_DATA_H_
#define ZEROTRAIN_NLP_TRANSLATE_DATA_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/engine/model.h"
#include "nlp/data/sentencepiece.h"
#include "nlp/data/translation_jsonl.h"
#include "nlp/translate/args.h"

namespace zt::nlp {

struct TranslationData {
  std::vector<TranslationPair> train, validation, test;
  std::string description;  // one line: where they came from
};

// --train_file/--validation_file/--test_file; else --dataset_name/--dataset_config_name from a
// local copy (the error lists where it looked and what to pass instead: there is no download);
// else (demo) English->Romanian pairs from /usr/share/locale/ro/LC_MESSAGES/*.mo.
// max_*_samples applied.
absl::StatusOr<TranslationData> LoadTranslationData(const TranslateArgs& args);

// run_translation.py's default prefix for T5: "translate English to Romanian: ".
std::string DefaultSourcePrefix(const std::string& source_lang, const std::string& target_lang);

struct Example {
  std::vector<std::int64_t> input_ids;  // prefix + source, truncated, </s>
  std::vector<std::int64_t> labels;     // target, truncated, </s>
};

std::vector<Example> Tokenize(const SentencePiece& sp, const std::vector<TranslationPair>& pairs,
                              const std::string& prefix, std::int64_t max_source_length,
                              std::int64_t max_target_length);

// input_ids / attention_mask padded with pad_id, labels with -100 (or pad_id when
// !ignore_pad_token_for_loss), to the longest in the batch or to the max lengths.
Batch Collate(const std::vector<const Example*>& examples, std::int64_t pad_id, bool pad_to_max_length,
              bool ignore_pad_token_for_loss, std::int64_t max_source_length, std::int64_t max_target_length);

// Evaluation split across ranks: `n` examples in batches of `batch_size`, batch j on rank
// j % world.  ShardRows is how many rows each rank sends (the most any rank makes);
// Unshard turns what every rank made, [world, ShardRows, length] with -1 after each sequence
// and in unused rows, back into one token sequence per example, in the examples' order.
std::int64_t ShardRows(std::int64_t n, std::int64_t batch_size, int world);
std::vector<std::vector<int>> Unshard(const at::Tensor& gathered, std::int64_t n, std::int64_t batch_size);

}  // namespace zt::nlp

#endif  // ZEROTRAIN_NLP_TRANSLATE_DATA_H_
