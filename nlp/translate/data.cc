#include "nlp/translate/data.h"

#include <ATen/ops/full.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/util/file_util.h"
#include "nlp/data/gettext_mo.h"

namespace zt::nlp {
namespace {

constexpr char kGettextDir[] = "/usr/share/locale/ro/LC_MESSAGES";

void Cap(std::vector<TranslationPair>& v, std::int64_t max) {
  if (max >= 0 && static_cast<std::int64_t>(v.size()) > max) v.resize(static_cast<std::size_t>(max));
}

std::string LanguageName(const std::string& code) {
  static const std::map<std::string, std::string> names = {
      {"en", "English"}, {"ro", "Romanian"}, {"de", "German"},  {"fr", "French"},  {"es", "Spanish"},
      {"it", "Italian"}, {"cs", "Czech"},    {"ru", "Russian"}, {"fi", "Finnish"}, {"tr", "Turkish"}};
  auto it = names.find(code);
  return it == names.end() ? code : it->second;
}

}  // namespace

std::string DefaultSourcePrefix(const std::string& source_lang, const std::string& target_lang) {
  return absl::StrCat("translate ", LanguageName(source_lang), " to ", LanguageName(target_lang), ": ");
}

absl::StatusOr<TranslationData> LoadTranslationData(const TranslateArgs& a) {
  TranslationData d;
  const bool files = !a.train_file.empty() || !a.validation_file.empty() || !a.test_file.empty();
  auto read = [&](const std::string& path, std::int64_t max, std::vector<TranslationPair>& out) -> absl::Status {
    if (path.empty()) return absl::OkStatus();
    absl::StatusOr<std::vector<TranslationPair>> p =
        ReadTranslationJsonl(UserPath(path), a.source_lang, a.target_lang, max);
    if (!p.ok()) return p.status();
    out = *std::move(p);
    return absl::OkStatus();
  };
  if (files || !a.dataset_name.empty()) {
    std::string train = a.train_file, validation = a.validation_file, test = a.test_file;
    if (!a.dataset_name.empty()) {
      // A local copy of the HF dataset: <dir>/{train,validation,test}.json in the JSON-lines layout;
      // a split given as a file (--train_file, ...) replaces the copy's.
      std::vector<std::string> langs = absl::StrSplit(a.dataset_config_name, '-');
      std::vector<std::string> dirs;
      const std::string n = a.dataset_name, c = a.dataset_config_name;
      std::vector<std::string> names = {absl::StrCat(n, "/", c), absl::StrCat(n, "_", absl::StrJoin(langs, "_"))};
      if (langs.size() == 2) {
        names.push_back(absl::StrCat(n, "_", langs[1], "_", langs[0]));
        names.push_back(absl::StrCat(n, "/", langs[1], "-", langs[0]));
      }
      const char* home = std::getenv("HOME");
      for (const std::string& base : {UserPath("data"), UserPath("../shared/data"), UserPath("shared/data"),
                                      home != nullptr ? absl::StrCat(home, "/.cache/zerotrain/datasets") : ""}) {
        if (base.empty()) continue;
        for (const std::string& name : names) dirs.push_back(absl::StrCat(base, "/", name));
      }
      std::string found;
      for (const std::string& dir : dirs) {
        if (IsRegularFile(dir + "/train.json") || IsRegularFile(dir + "/validation.json")) {
          found = dir;
          break;
        }
      }
      if (found.empty() && !files) {
        return absl::NotFoundError(absl::StrCat(
            "--dataset_name ", n, " --dataset_config_name ", c,
            ": no local copy (this machine does not download datasets). Looked for train.json / validation.json in:\n "
            " ",
            absl::StrJoin(dirs, "\n  "),
            "\nPass the files instead: --train_file train.json --validation_file validation.json, one JSON object "
            "a line: {\"translation\": {\"",
            a.source_lang, "\": \"...\", \"", a.target_lang, "\": \"...\"}}"));
      }
      std::vector<std::string> from_files;
      for (auto [path, split] :
           {std::pair<std::string*, const char*>{&train, "train"}, {&validation, "validation"}, {&test, "test"}}) {
        if (!path->empty()) {
          from_files.push_back(absl::StrCat(split, " ", *path));
        } else if (!found.empty() && IsRegularFile(absl::StrCat(found, "/", split, ".json"))) {
          *path = absl::StrCat(found, "/", split, ".json");
        }
      }
      d.description = found.empty() ? absl::StrCat(n, " ", c, ": no local copy")
                                    : absl::StrCat(n, " ", c, " from its local copy in ", found);
      if (!from_files.empty()) absl::StrAppend(&d.description, "; from files: ", absl::StrJoin(from_files, ", "));
    } else {
      d.description = absl::StrCat("files: ", absl::StrJoin({train, validation, test}, " "));
    }
    if (a.do_train && train.empty()) {
      return absl::InvalidArgumentError("--do_train needs training data: pass --train_file (or a local dataset copy)");
    }
    if (absl::Status s = read(train, a.do_train ? a.max_train_samples : 0, d.train); !s.ok()) return s;
    if (absl::Status s = read(validation, a.do_eval ? a.max_eval_samples : 0, d.validation); !s.ok()) return s;
    if (absl::Status s = read(test, a.do_predict ? a.max_predict_samples : 0, d.test); !s.ok()) return s;
    if (a.do_eval && d.validation.empty()) {
      return absl::InvalidArgumentError("--do_eval needs validation data: pass --validation_file");
    }
    if (a.do_predict && d.test.empty()) {
      return absl::InvalidArgumentError("--do_predict needs test data: pass --test_file");
    }
    return d;
  }
  if (!a.demo) {
    return absl::InvalidArgumentError(
        "no data: pass --train_file/--validation_file (JSON lines), or --dataset_name with a local copy");
  }
  int skipped = 0;
  absl::StatusOr<std::vector<TranslationPair>> pairs = ReadMoDirectory(kGettextDir, &skipped);
  if (!pairs.ok() || pairs->size() < 1000) {
    return absl::NotFoundError(absl::StrCat(
        "the embedded default reads English-Romanian pairs from ", kGettextDir,
        " (Debian's translation catalogs), which has too few here; pass --train_file and --validation_file"));
  }
  std::mt19937_64 rng(1234);
  std::vector<TranslationPair> all = *std::move(pairs);
  for (std::size_t i = all.size() - 1; i > 0; --i) std::swap(all[i], all[rng() % (i + 1)]);
  const std::size_t n_val = 500;
  d.validation.assign(all.begin(), all.begin() + n_val);
  d.train.assign(all.begin() + n_val, all.end());
  d.description = absl::StrCat(all.size(), " English->Romanian pairs from the gettext catalogs in ", kGettextDir,
                               " (deduplicated; ", d.train.size(), " train, ", d.validation.size(), " validation)");
  Cap(d.train, a.max_train_samples);
  Cap(d.validation, a.max_eval_samples);
  return d;
}

std::vector<Example> Tokenize(const SentencePiece& sp, const std::vector<TranslationPair>& pairs,
                              const std::string& prefix, std::int64_t max_source_length,
                              std::int64_t max_target_length) {
  auto encode = [&](const std::string& text, std::int64_t max_len) {
    const std::vector<int> ids = sp.Encode(text);
    std::vector<std::int64_t> out(ids.begin(), ids.end());
    if (max_len > 0 && static_cast<std::int64_t>(out.size()) > max_len - 1)
      out.resize(std::max<std::int64_t>(max_len - 1, 0));
    out.push_back(sp.eos_id());
    return out;
  };
  std::vector<Example> out;
  out.reserve(pairs.size());
  for (const TranslationPair& p : pairs) {
    out.push_back({encode(prefix + p.source, max_source_length), encode(p.target, max_target_length)});
  }
  return out;
}

Batch Collate(const std::vector<const Example*>& ex, std::int64_t pad_id, bool pad_to_max_length,
              bool ignore_pad_token_for_loss, std::int64_t max_source_length, std::int64_t max_target_length) {
  std::int64_t s = 0, t = 0;
  for (const Example* e : ex) {
    s = std::max<std::int64_t>(s, e->input_ids.size());
    t = std::max<std::int64_t>(t, e->labels.size());
  }
  if (pad_to_max_length) {
    s = std::max(s, max_source_length);
    t = std::max(t, max_target_length);
  }
  const auto b = static_cast<std::int64_t>(ex.size());
  const std::int64_t label_pad = ignore_pad_token_for_loss ? -100 : pad_id;
  at::Tensor ids = at::full({b, s}, pad_id, at::kLong), mask = at::full({b, s}, 0, at::kLong);
  at::Tensor labels = at::full({b, t}, label_pad, at::kLong);
  auto* pi = ids.data_ptr<std::int64_t>();
  auto* pm = mask.data_ptr<std::int64_t>();
  auto* pl = labels.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < b; ++i) {
    const Example& e = *ex[i];
    for (std::size_t j = 0; j < e.input_ids.size(); ++j) {
      pi[i * s + j] = e.input_ids[j];
      pm[i * s + j] = 1;
    }
    for (std::size_t j = 0; j < e.labels.size(); ++j) pl[i * t + j] = e.labels[j];
  }
  return {{"input_ids", ids}, {"attention_mask", mask}, {"labels", labels}};
}

std::int64_t ShardRows(std::int64_t n, std::int64_t batch_size, int world) {
  const std::int64_t batches = (n + batch_size - 1) / batch_size;
  return (batches + world - 1) / world * batch_size;
}

std::vector<std::vector<int>> Unshard(const at::Tensor& gathered, std::int64_t n, std::int64_t batch_size) {
  const std::int64_t world = gathered.size(0);
  const at::Tensor all = gathered.to(at::kLong).contiguous();
  const auto* p = all.data_ptr<std::int64_t>();
  const std::int64_t rows = all.size(1), length = all.size(2);
  std::vector<std::vector<int>> out;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t j = i / batch_size;  // its batch
    const std::int64_t row = (j / world) * batch_size + i % batch_size;
    const std::int64_t* seq = p + ((j % world) * rows + row) * length;
    std::vector<int>& toks = out.emplace_back();
    for (std::int64_t c = 0; c < length && seq[c] >= 0; ++c) toks.push_back(static_cast<int>(seq[c]));
  }
  return out;
}

}  // namespace zt::nlp
