#include "nlp/data/gettext_mo.h"

#include <dirent.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/util/file_util.h"

namespace zt::nlp {
namespace {

constexpr std::uint32_t kMagic = 0x950412de;

std::uint32_t Swap(std::uint32_t v) { return (v >> 24) | ((v >> 8) & 0xff00) | ((v << 8) & 0xff0000) | (v << 24); }

}  // namespace

absl::StatusOr<std::vector<TranslationPair>> ParseMo(absl::string_view b, absl::string_view source) {
  auto bad = [&](absl::string_view what) {
    return absl::DataLossError(absl::StrCat(source, ": not a gettext .mo catalog: ", what));
  };
  if (b.size() < 28) return bad("shorter than its header");
  bool swap = false;
  auto u32 = [&](std::size_t at) {
    std::uint32_t v;
    std::memcpy(&v, b.data() + at, 4);
    return swap ? Swap(v) : v;
  };
  const std::uint32_t magic = u32(0);
  if (magic != kMagic) {
    if (Swap(magic) != kMagic) return bad("wrong magic number");
    swap = true;
  }
  const std::uint64_t n = u32(8), originals = u32(12), translations = u32(16);
  if (originals + n * 8 > b.size() || translations + n * 8 > b.size()) return bad("string tables outside the file");
  auto str = [&](std::uint64_t table, std::uint64_t i, absl::string_view& out) {
    const std::uint64_t len = u32(table + i * 8), off = u32(table + i * 8 + 4);
    if (off + len > b.size()) return false;
    out = b.substr(off, len);
    return true;
  };
  std::vector<TranslationPair> pairs;
  for (std::uint64_t i = 0; i < n; ++i) {
    absl::string_view id, tr;
    if (!str(originals, i, id) || !str(translations, i, tr))
      return bad(absl::StrCat("string ", i, " outside the file"));
    if (const std::size_t ctx = id.find('\x04'); ctx != absl::string_view::npos) id = id.substr(ctx + 1);
    id = id.substr(0, id.find('\0'));
    tr = tr.substr(0, tr.find('\0'));
    if (id.empty() || tr.empty()) continue;
    pairs.push_back({std::string(id), std::string(tr)});
  }
  return pairs;
}

absl::StatusOr<std::vector<TranslationPair>> ReadMoFile(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadFileToString(path);
  if (!bytes.ok()) return bytes.status();
  return ParseMo(*bytes, path);
}

absl::StatusOr<std::vector<TranslationPair>> ReadMoDirectory(const std::string& dir, int* skipped) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return absl::NotFoundError(absl::StrCat("cannot open directory ", dir));
  std::vector<std::string> files;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (absl::EndsWith(name, ".mo")) files.push_back(name);
  }
  ::closedir(d);
  std::sort(files.begin(), files.end());
  std::vector<TranslationPair> out;
  std::set<std::pair<std::string, std::string>> seen;
  int bad = 0;
  auto clean = [](const std::string& s) {
    std::string t = absl::StrReplaceAll(s, {{"\n", " "}, {"\t", " "}, {"\r", " "}});
    return std::string(absl::StripAsciiWhitespace(t));
  };
  for (const std::string& f : files) {
    absl::StatusOr<std::vector<TranslationPair>> pairs = ReadMoFile(dir + "/" + f);
    if (!pairs.ok()) {
      ++bad;
      continue;
    }
    for (const TranslationPair& p : *pairs) {
      TranslationPair c{clean(p.source), clean(p.target)};
      const bool letters =
          std::any_of(c.source.begin(), c.source.end(), [](char ch) { return absl::ascii_isalpha(ch); });
      if (c.source.empty() || c.target.empty() || !letters) continue;
      if (seen.insert({c.source, c.target}).second) out.push_back(std::move(c));
    }
  }
  if (skipped != nullptr) *skipped = bad;
  return out;
}

}  // namespace zt::nlp
