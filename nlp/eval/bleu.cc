#include "nlp/eval/bleu.h"

#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "nlp/data/utf8.h"

namespace zt::nlp {
namespace {

// Python's str.isspace().
bool IsSpace(std::uint32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

// Python's str.split(): words between runs of whitespace.
std::vector<absl::string_view> SplitWords(absl::string_view s) {
  std::vector<absl::string_view> words;
  std::size_t i = 0, start = std::string::npos;
  while (i < s.size()) {
    const std::size_t at = i;
    const bool space = IsSpace(NextCodePoint(s, i));
    if (space && start != std::string::npos) {
      words.push_back(s.substr(start, at - start));
      start = std::string::npos;
    } else if (!space && start == std::string::npos) {
      start = at;
    }
  }
  if (start != std::string::npos) words.push_back(s.substr(start));
  return words;
}

absl::string_view RStrip(absl::string_view s) {
  std::size_t end = 0, i = 0;
  while (i < s.size()) {
    if (!IsSpace(NextCodePoint(s, i))) end = i;
  }
  return s.substr(0, end);
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsDotComma(char c) { return c == '.' || c == ','; }
// [\{-\~\[-\` -\&\(-\+\:-\@\/]
bool IsSymbol(char c) {
  return (c >= '{' && c <= '~') || (c >= '[' && c <= '`') || (c >= ' ' && c <= '&') || (c >= '(' && c <= '+') ||
         (c >= ':' && c <= '@') || c == '/';
}

// The four substitutions of sacreBLEU's TokenizerRegexp, each a left-to-right pass of
// non-overlapping matches as re.sub makes them.  They only test ASCII bytes, and a multi-byte
// UTF-8 character never holds one, so bytes stand in for characters.
std::string Substitute(const std::string& s) {
  std::string a;
  for (char c : s) {
    if (IsSymbol(c))
      absl::StrAppend(&a, " ", std::string(1, c), " ");
    else
      a += c;
  }
  auto pairs = [](const std::string& in, auto match, auto emit) {
    std::string out;
    std::size_t i = 0;
    while (i < in.size()) {
      if (i + 1 < in.size() && match(in[i], in[i + 1])) {
        emit(out, in[i], in[i + 1]);
        i += 2;
      } else {
        out += in[i++];
      }
    }
    return out;
  };
  std::string b = pairs(
      a, [](char x, char y) { return !IsDigit(x) && IsDotComma(y); },
      [](std::string& o, char x, char y) { o += x, o += ' ', o += y, o += ' '; });
  std::string c = pairs(
      b, [](char x, char y) { return IsDotComma(x) && !IsDigit(y); },
      [](std::string& o, char x, char y) { o += ' ', o += x, o += ' ', o += y; });
  return pairs(
      c, [](char x, char y) { return IsDigit(x) && y == '-'; },
      [](std::string& o, char x, char y) { o += x, o += ' ', o += y, o += ' '; });
}

using Ngrams = std::map<std::vector<absl::string_view>, std::int64_t>;

Ngrams Count(const std::vector<absl::string_view>& words) {
  Ngrams out;
  for (std::size_t n = 1; n <= 4; ++n) {
    for (std::size_t i = 0; i + n <= words.size(); ++i) ++out[{words.begin() + i, words.begin() + i + n}];
  }
  return out;
}

}  // namespace

std::string Tokenize13a(absl::string_view line) {
  std::string s = absl::StrReplaceAll(line, {{"<skipped>", ""}});
  s = absl::StrReplaceAll(s, {{"-\n", ""}});
  s = absl::StrReplaceAll(s, {{"\n", " "}});
  if (s.find('&') != std::string::npos) {
    // One pass per entity, in sacreBLEU's order ("&amp;quot;" becomes "&quot;", not '"').
    s = absl::StrReplaceAll(s, {{"&quot;", "\""}});
    s = absl::StrReplaceAll(s, {{"&amp;", "&"}});
    s = absl::StrReplaceAll(s, {{"&lt;", "<"}});
    s = absl::StrReplaceAll(s, {{"&gt;", ">"}});
  }
  const std::string sub = Substitute(absl::StrCat(" ", s, " "));
  return absl::StrJoin(SplitWords(sub), " ");
}

absl::StatusOr<Bleu> CorpusBleu(const std::vector<std::string>& hypotheses,
                                const std::vector<std::string>& references) {
  if (hypotheses.size() != references.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("BLEU: ", hypotheses.size(), " hypotheses but ", references.size(), " references"));
  }
  Bleu b;
  for (std::size_t k = 0; k < hypotheses.size(); ++k) {
    const std::string h = Tokenize13a(RStrip(hypotheses[k]));
    const std::string r = Tokenize13a(RStrip(references[k]));
    const std::vector<absl::string_view> hw = SplitWords(h), rw = SplitWords(r);
    b.sys_len += static_cast<std::int64_t>(hw.size());
    b.ref_len += static_cast<std::int64_t>(rw.size());
    const Ngrams hn = Count(hw), rn = Count(rw);
    for (const auto& [gram, count] : hn) {
      const std::size_t n = gram.size() - 1;
      b.totals[n] += count;
      const auto it = rn.find(gram);
      if (it != rn.end()) b.counts[n] += std::min(count, it->second);
    }
  }
  if (b.sys_len < b.ref_len) b.bp = b.sys_len > 0 ? std::exp(1.0 - static_cast<double>(b.ref_len) / b.sys_len) : 0.0;
  bool any = false;
  for (std::int64_t c : b.counts) any = any || c > 0;
  if (!any) return b;
  double smooth = 1, log_sum = 0;
  for (int n = 0; n < 4; ++n) {
    if (b.totals[n] == 0) break;
    if (b.counts[n] == 0) {
      smooth *= 2;
      b.precisions[n] = 100.0 / (smooth * b.totals[n]);
    } else {
      b.precisions[n] = 100.0 * b.counts[n] / b.totals[n];
    }
  }
  for (double p : b.precisions) log_sum += p == 0 ? -9999999999.0 : std::log(p);
  b.score = b.bp * std::exp(log_sum / 4);
  return b;
}

}  // namespace zt::nlp
