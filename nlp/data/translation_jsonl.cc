#include "nlp/data/translation_jsonl.h"

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace zt::nlp {
namespace {

absl::Status LineError(const std::string& path, std::int64_t line, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ":", line, ": ", what));
}

}  // namespace

absl::StatusOr<std::vector<TranslationPair>> ReadTranslationJsonl(const std::string& path,
                                                                  const std::string& source_lang,
                                                                  const std::string& target_lang,
                                                                  std::int64_t max_samples) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  std::vector<TranslationPair> pairs;
  std::string text;
  for (std::int64_t line = 1; std::getline(in, text); ++line) {
    if (max_samples >= 0 && static_cast<std::int64_t>(pairs.size()) >= max_samples) break;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json row = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (row.is_discarded()) return LineError(path, line, "not a JSON object");
    auto tr = row.find("translation");
    if (!row.is_object() || tr == row.end() || !tr->is_object()) {
      return LineError(path, line, "expected {\"translation\": {\"<lang>\": \"text\", ...}}");
    }
    TranslationPair pair;
    for (auto [lang, out] : {std::pair{&source_lang, &pair.source}, std::pair{&target_lang, &pair.target}}) {
      auto it = tr->find(*lang);
      if (it == tr->end()) return LineError(path, line, absl::StrCat("no \"", *lang, "\" text in \"translation\""));
      if (!it->is_string()) return LineError(path, line, absl::StrCat("\"", *lang, "\" is not a string"));
      *out = it->get<std::string>();
    }
    pairs.push_back(std::move(pair));
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat("read error in ", path, ": ", std::strerror(errno)));
  return pairs;
}

}  // namespace zt::nlp
