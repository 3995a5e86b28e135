#include "nlp/data/sentencepiece.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "core/util/file_util.h"
#include "nlp/data/utf8.h"

namespace zt::nlp {
namespace {

constexpr char kSpace[] = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space
constexpr float kUnkPenalty = 10.0f;

// Protobuf wire format, just what a ModelProto needs.
class Wire {
 public:
  explicit Wire(absl::string_view b) : b_(b) {}
  bool done() const { return pos_ >= b_.size(); }
  bool ok() const { return ok_; }
  // Next field: number and wire type; false at the end or on damage.
  bool Next(std::uint32_t& field, std::uint32_t& type) {
    if (done() || !ok_) return false;
    const std::uint64_t key = Varint();
    field = static_cast<std::uint32_t>(key >> 3);
    type = static_cast<std::uint32_t>(key & 7);
    return ok_;
  }
  std::uint64_t Varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= b_.size()) break;
      const auto c = static_cast<unsigned char>(b_[pos_++]);
      v |= static_cast<std::uint64_t>(c & 0x7f) << shift;
      if ((c & 0x80) == 0) return v;
    }
    ok_ = false;
    return 0;
  }
  absl::string_view Bytes() {
    const std::uint64_t n = Varint();
    if (!ok_ || n > b_.size() - pos_) {
      ok_ = false;
      return {};
    }
    absl::string_view s = b_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  float Fixed32Float() {
    if (b_.size() - pos_ < 4) {
      ok_ = false;
      return 0;
    }
    float f;
    std::memcpy(&f, b_.data() + pos_, 4);
    pos_ += 4;
    return f;
  }
  void Skip(std::uint32_t type) {
    switch (type) {
      case 0:
        Varint();
        break;
      case 1:
        Advance(8);
        break;
      case 2:
        Bytes();
        break;
      case 5:
        Advance(4);
        break;
      default:
        ok_ = false;
    }
  }

 private:
  void Advance(std::size_t n) {
    if (b_.size() - pos_ < n)
      ok_ = false;
    else
      pos_ += n;
  }
  absl::string_view b_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

bool ValidUtf8Char(absl::string_view s, std::size_t n) {
  const auto c = static_cast<unsigned char>(s[0]);
  if (c < 0x80) return true;
  if (n == 1) return false;
  std::uint32_t cp = n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
  for (std::size_t i = 1; i < n; ++i) cp = (cp << 6) | (static_cast<unsigned char>(s[i]) & 0x3f);
  const std::uint32_t min = n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
  return cp >= min && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
}

}  // namespace

absl::StatusOr<SentencePiece> SentencePiece::Load(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadFileToString(path);
  if (!bytes.ok()) return bytes.status();
  return Parse(*bytes, path);
}

absl::StatusOr<SentencePiece> SentencePiece::Parse(absl::string_view bytes, absl::string_view source) {
  auto corrupt = [&](absl::string_view what) {
    return absl::DataLossError(absl::StrCat(source, ": not a SentencePiece model: ", what));
  };
  SentencePiece sp;
  std::int64_t model_type = 1;
  bool byte_fallback = false;
  std::int64_t unk = 0, eos = 1, pad = -1;  // sentencepiece's defaults (T5 sets pad 0 eos 1 unk 2)
  absl::string_view charsmap;
  Wire w(bytes);
  std::uint32_t field, type;
  while (w.Next(field, type)) {
    if (field == 1 && type == 2) {  // SentencePiece
      Wire p(w.Bytes());
      Piece piece;
      std::uint32_t f, t;
      while (p.Next(f, t)) {
        if (f == 1 && t == 2)
          piece.piece = std::string(p.Bytes());
        else if (f == 2 && t == 5)
          piece.score = p.Fixed32Float();
        else if (f == 3 && t == 0)
          piece.type = static_cast<Type>(p.Varint());
        else
          p.Skip(t);
      }
      if (!p.ok()) return corrupt(absl::StrCat("piece ", sp.pieces_.size(), " is damaged"));
      const int kind = static_cast<int>(piece.type);
      if (kind < 1 || kind > 6) return corrupt(absl::StrCat("piece ", sp.pieces_.size(), " has type ", kind));
      sp.pieces_.push_back(std::move(piece));
    } else if (field == 2 && type == 2) {  // TrainerSpec
      Wire t(w.Bytes());
      std::uint32_t f, tt;
      while (t.Next(f, tt)) {
        if (tt == 0 && (f == 3 || f == 35 || f == 40 || f == 42 || f == 43)) {
          const auto v = static_cast<std::int64_t>(static_cast<std::int32_t>(t.Varint()));
          if (f == 3) model_type = v;
          if (f == 35) byte_fallback = v != 0;
          if (f == 40) unk = v;
          if (f == 42) eos = v;
          if (f == 43) pad = v;
        } else if (f == 44 && tt == 2) {
          sp.unk_surface_ = std::string(t.Bytes());
        } else {
          t.Skip(tt);
        }
      }
      if (!t.ok()) return corrupt("the trainer spec is damaged");
    } else if (field == 3 && type == 2) {  // NormalizerSpec
      Wire n(w.Bytes());
      std::uint32_t f, t;
      while (n.Next(f, t)) {
        if (f == 2 && t == 2)
          charsmap = n.Bytes();
        else if (f == 3 && t == 0)
          sp.add_dummy_prefix_ = n.Varint() != 0;
        else if (f == 4 && t == 0)
          sp.remove_extra_whitespaces_ = n.Varint() != 0;
        else if (f == 5 && t == 0)
          sp.escape_whitespaces_ = n.Varint() != 0;
        else
          n.Skip(t);
      }
      if (!n.ok()) return corrupt("the normalizer spec is damaged");
    } else {
      w.Skip(type);
    }
  }
  if (!w.ok()) return corrupt("damaged or truncated");
  if (sp.pieces_.empty()) return corrupt("it has no pieces");
  if (model_type != 1) {
    return absl::UnimplementedError(
        absl::StrCat(source, ": SentencePiece model type ", model_type, " is not supported (only unigram, T5's type)"));
  }
  if (byte_fallback) {
    return absl::UnimplementedError(absl::StrCat(source, ": byte_fallback models are not supported"));
  }
  const auto n = static_cast<std::int64_t>(sp.pieces_.size());
  if (unk < 0 || unk >= n || sp.pieces_[unk].type != Type::kUnknown) {
    return corrupt(absl::StrCat("unk_id ", unk, " is not an <unk> piece"));
  }
  sp.unk_id_ = static_cast<int>(unk);
  sp.eos_id_ = eos >= 0 && eos < n ? static_cast<int>(eos) : -1;
  sp.pad_id_ = pad >= 0 && pad < n ? static_cast<int>(pad) : -1;
  sp.min_score_ = std::numeric_limits<float>::max();
  sp.max_score_ = std::numeric_limits<float>::min();
  for (int i = 0; i < static_cast<int>(n); ++i) {
    const Piece& p = sp.pieces_[i];
    if (p.type == Type::kNormal) {
      sp.min_score_ = std::min(sp.min_score_, p.score);
      sp.max_score_ = std::max(sp.max_score_, p.score);
    }
    if (p.type == Type::kNormal || p.type == Type::kUserDefined || p.type == Type::kUnused) {
      if (p.piece.empty()) return corrupt(absl::StrCat("piece ", i, " is empty"));
      sp.index_.emplace(p.piece, i);
      sp.max_piece_bytes_ = std::max(sp.max_piece_bytes_, p.piece.size());
    }
  }
  if (!charsmap.empty()) {
    if (charsmap.size() < 4) return corrupt("the character map is truncated");
    std::uint32_t trie_bytes;
    std::memcpy(&trie_bytes, charsmap.data(), 4);
    if (trie_bytes % 4 != 0 || trie_bytes > charsmap.size() - 4 || trie_bytes == 0) {
      return corrupt(
          absl::StrCat("the character map's trie size ", trie_bytes, " does not fit its ", charsmap.size(), " bytes"));
    }
    sp.trie_.resize(trie_bytes / 4);
    std::memcpy(sp.trie_.data(), charsmap.data() + 4, trie_bytes);
    sp.replacements_ = std::string(charsmap.substr(4 + trie_bytes));
    sp.replacements_.push_back('\0');  // every value ends inside the buffer
  }
  return sp;
}

std::pair<absl::string_view, std::size_t> SentencePiece::NormalizePrefix(absl::string_view in) const {
  // darts-clone's commonPrefixSearch, keeping the longest match.
  std::size_t longest = 0;
  std::uint32_t value = 0;
  if (!trie_.empty()) {
    auto offset = [](std::uint32_t u) -> std::size_t { return (u >> 10) << ((u & (1u << 9)) >> 6); };
    std::size_t node = 0;
    std::uint32_t unit = trie_[0];
    node ^= offset(unit);
    for (std::size_t i = 0; i < in.size(); ++i) {
      const auto c = static_cast<unsigned char>(in[i]);
      node ^= c;
      if (node >= trie_.size()) break;
      unit = trie_[node];
      if ((unit & ((1u << 31) | 0xff)) != c) break;
      node ^= offset(unit);
      if (node >= trie_.size()) break;
      if ((unit >> 8) & 1) {
        longest = i + 1;
        value = trie_[node] & ((1u << 31) - 1);
      }
    }
  }
  if (longest == 0 || value >= replacements_.size()) {
    const std::size_t n = Utf8CharLen(in);
    if (!ValidUtf8Char(in, n)) return {"\xEF\xBF\xBD", 1};  // U+FFFD for a malformed byte
    return {in.substr(0, n), n};
  }
  return {absl::string_view(replacements_.c_str() + value), longest};
}

std::string SentencePiece::Normalize(absl::string_view in) const {
  std::string out;
  if (remove_extra_whitespaces_) {
    while (!in.empty()) {
      const auto [s, n] = NormalizePrefix(in);
      if (s != " ") break;
      in.remove_prefix(n);
    }
  }
  if (in.empty()) return out;
  const absl::string_view space = escape_whitespaces_ ? absl::string_view(kSpace) : absl::string_view(" ");
  if (add_dummy_prefix_) out.append(space.data(), space.size());
  bool prev_space = remove_extra_whitespaces_;
  while (!in.empty()) {
    auto [s, n] = NormalizePrefix(in);
    while (prev_space && absl::ConsumePrefix(&s, " ")) {
    }
    if (!s.empty()) {
      for (char c : s) {
        if (escape_whitespaces_ && c == ' ')
          out += kSpace;
        else
          out += c;
      }
      prev_space = absl::EndsWith(s, " ");
    }
    in.remove_prefix(n);
    if (!remove_extra_whitespaces_) prev_space = false;
  }
  if (remove_extra_whitespaces_) {
    while (absl::EndsWith(out, space)) out.resize(out.size() - space.size());
  }
  return out;
}

std::vector<int> SentencePiece::Encode(absl::string_view text) const {
  const std::string s = Normalize(text);
  const std::size_t size = s.size();
  struct Node {
    int id = -1;
    float score = 0;
    std::int64_t start = -1;
  };
  std::vector<Node> best(size + 1);
  best[0].start = 0;
  const float unk_score = min_score_ - kUnkPenalty;
  std::string key;
  for (std::size_t start = 0; start < size;) {
    const float here = best[start].score;
    const std::size_t mblen = std::min(Utf8CharLen(absl::string_view(s).substr(start)), size - start);
    bool single = false;
    for (std::size_t end = start + 1; end <= size && end - start <= max_piece_bytes_; ++end) {
      key.assign(s, start, end - start);
      const auto it = index_.find(key);
      if (it == index_.end()) continue;
      const int id = it->second;
      const Piece& p = pieces_[id];
      if (p.type == Type::kUnused) continue;
      const std::size_t length = end - start;
      const float score = (p.type == Type::kUserDefined ? length * max_score_ - 0.1f : p.score) + here;
      Node& target = best[end];
      if (target.start == -1 || score > target.score) target = {id, score, static_cast<std::int64_t>(start)};
      if (length == mblen) single = true;
    }
    if (!single) {
      Node& target = best[start + mblen];
      const float score = unk_score + here;
      if (target.start == -1 || score > target.score) target = {unk_id_, score, static_cast<std::int64_t>(start)};
    }
    start += mblen;
  }
  std::vector<int> ids;
  for (std::int64_t end = static_cast<std::int64_t>(size); end > 0; end = best[end].start) ids.push_back(best[end].id);
  std::reverse(ids.begin(), ids.end());
  // Runs of unknown characters become one <unk>, as sentencepiece emits them.
  std::vector<int> merged;
  for (int id : ids) {
    if (id == unk_id_ && !merged.empty() && merged.back() == unk_id_) continue;
    merged.push_back(id);
  }
  return merged;
}

std::string SentencePiece::Decode(const std::vector<int>& ids) const {
  std::string out;
  bool at_start = true;
  for (int id : ids) {
    if (id < 0 || id >= vocab_size()) continue;
    const Piece& p = pieces_[id];
    if (p.type == Type::kControl) continue;
    std::string surface;
    if (p.type == Type::kUnknown) {
      surface = unk_surface_;
    } else {
      absl::string_view piece = p.piece;
      if (at_start && add_dummy_prefix_) absl::ConsumePrefix(&piece, kSpace);
      surface = absl::StrReplaceAll(piece, {{kSpace, " "}});
    }
    if (at_start && !surface.empty()) at_start = false;
    out += surface;
  }
  return out;
}

}  // namespace zt::nlp
