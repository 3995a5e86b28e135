// Reads GNU gettext message catalogs (.mo): the English message ids and their translations,
// which Debian packages ship as human translations (/usr/share/locale/<lang>/LC_MESSAGES).
//
//   ASSIGN_OR_RETURN(std::vector<zt::nlp::TranslationPair> pairs,
//                    zt::nlp::ReadMoFile("/usr/share/locale/ro/LC_MESSAGES/apt.mo"));
//
// The header entry (empty id) and untranslated entries are skipped; message contexts are
// dropped from the id; of plural forms the singular id and the first translation are kept.
// Either byte order; any table or string outside the file is an error naming the file.
#ifndef ZEROTRAIN_NLP_DATA_GETTEXT_MO_H_
#define ZEROTRAIN_NLP_DATA_GETTEXT_MO_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlp/data/translation_jsonl.h"

namespace zt::nlp {

absl::StatusOr<std::vector<TranslationPair>> ParseMo(absl::string_view bytes, absl::string_view source);
absl::StatusOr<std::vector<TranslationPair>> ReadMoFile(const std::string& path);

// Every catalog of `dir` (*.mo, by name), pairs deduplicated, newlines and tabs made spaces,
// markup-only or whitespace-only entries dropped.  Unreadable catalogs are skipped with a
// count in `skipped`.
absl::StatusOr<std::vector<TranslationPair>> ReadMoDirectory(const std::string& dir, int* skipped = nullptr);

}  // namespace zt::nlp

#endif  // ZEROTRAIN_NLP_DATA_GETTEXT_MO_H_
