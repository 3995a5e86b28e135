#include "nlp/data/sentencepiece_trainer.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nlp/data/utf8.h"

namespace zt::nlp {
namespace {

constexpr char kSpace[] = "\xE2\x96\x81";  // "▁"

bool IsSpaceAt(const std::string& s, std::size_t i, std::size_t n) {
  if (n == 1) return s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' || s[i] == '\v' || s[i] == '\f';
  return n == 2 && static_cast<unsigned char>(s[i]) == 0xc2 && static_cast<unsigned char>(s[i + 1]) == 0xa0;
}

// Byte offsets of the characters of `w`, and its length.
std::vector<std::size_t> Boundaries(const std::string& w) {
  std::vector<std::size_t> b;
  for (std::size_t i = 0; i < w.size(); i += Utf8CharLen(absl::string_view(w).substr(i))) b.push_back(i);
  b.push_back(w.size());
  return b;
}

double LogSumExp(double a, double b) {
  if (a == -std::numeric_limits<double>::infinity()) return b;
  if (b == -std::numeric_limits<double>::infinity()) return a;
  const double m = std::max(a, b);
  return m + std::log(std::exp(a - m) + std::exp(b - m));
}

// Protobuf wire format writer.
void Varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}
void Key(std::string& out, int field, int type) { Varint(out, static_cast<std::uint64_t>(field) << 3 | type); }
void Bytes(std::string& out, int field, const std::string& b) {
  Key(out, field, 2);
  Varint(out, b.size());
  out += b;
}
void Int(std::string& out, int field, std::int64_t v) {
  Key(out, field, 0);
  Varint(out, static_cast<std::uint64_t>(v));
}

struct Piece {
  std::string text;
  double score = 0;
  bool required = false;  // a single kept character: never pruned
};

class Trainer {
 public:
  Trainer(std::vector<std::pair<std::string, std::int64_t>> words, const UnigramTrainerOptions& o)
      : words_(std::move(words)), o_(o) {}

  void Seed(const std::vector<std::string>& chars) {
    std::unordered_map<std::string, std::int64_t> freq;
    for (const auto& [w, c] : words_) {
      const std::vector<std::size_t> b = Boundaries(w);
      for (std::size_t i = 0; i + 1 < b.size(); ++i) {
        for (std::size_t j = i + 2; j < b.size() && j - i <= static_cast<std::size_t>(o_.max_piece_chars); ++j) {
          freq[w.substr(b[i], b[j] - b[i])] += c;
        }
      }
    }
    std::vector<std::pair<double, std::string>> ranked;
    for (auto& [s, f] : freq) {
      if (f < 2) continue;
      ranked.push_back({static_cast<double>(f) * static_cast<double>(Boundaries(s).size() - 1), s});
    }
    std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    if (ranked.size() > static_cast<std::size_t>(o_.seed_pieces)) ranked.resize(o_.seed_pieces);
    for (const std::string& c : chars) pieces_.push_back({c, 0.0, true});
    for (auto& [score, s] : ranked) pieces_.push_back({s, std::log(score), false});
    Normalise();
  }

  // Expected count of every piece over the corpus (forward-backward per word).
  std::vector<double> Expect(double* likelihood) {
    Index();
    std::vector<double> counts(pieces_.size(), 0.0);
    *likelihood = 0;
    const double ninf = -std::numeric_limits<double>::infinity();
    for (const auto& [w, c] : words_) {
      const std::vector<std::size_t> b = Boundaries(w);
      const std::size_t n = b.size();
      std::vector<std::vector<std::pair<std::size_t, int>>> edges(n);  // edges[end] = (start, piece)
      for (std::size_t i = 0; i + 1 < n; ++i) {
        for (std::size_t j = i + 1; j < n && j - i <= static_cast<std::size_t>(o_.max_piece_chars); ++j) {
          auto it = index_.find(w.substr(b[i], b[j] - b[i]));
          if (it != index_.end()) edges[j].push_back({i, it->second});
        }
      }
      std::vector<double> alpha(n, ninf), beta(n, ninf);
      alpha[0] = 0;
      for (std::size_t j = 1; j < n; ++j) {
        for (auto [i, p] : edges[j]) alpha[j] = LogSumExp(alpha[j], alpha[i] + pieces_[p].score);
      }
      if (alpha[n - 1] == ninf) continue;  // a character outside the kept set
      beta[n - 1] = 0;
      for (std::size_t j = n - 1; j > 0; --j) {
        for (auto [i, p] : edges[j]) beta[i] = LogSumExp(beta[i], beta[j] + pieces_[p].score);
      }
      const double z = alpha[n - 1];
      *likelihood += static_cast<double>(c) * z;
      for (std::size_t j = 1; j < n; ++j) {
        for (auto [i, p] : edges[j]) {
          counts[p] += static_cast<double>(c) * std::exp(alpha[i] + pieces_[p].score + beta[j] - z);
        }
      }
    }
    return counts;
  }

  void Maximise(const std::vector<double>& counts) {
    std::vector<Piece> kept;
    double total = 0;
    for (std::size_t p = 0; p < pieces_.size(); ++p) {
      if (pieces_[p].required || counts[p] >= 0.5) total += std::max(counts[p], 1e-3);
    }
    for (std::size_t p = 0; p < pieces_.size(); ++p) {
      if (!pieces_[p].required && counts[p] < 0.5) continue;
      Piece q = pieces_[p];
      q.score = std::log(std::max(counts[p], 1e-3) / total);
      kept.push_back(std::move(q));
    }
    pieces_ = std::move(kept);
  }

  // Removes the pieces whose loss (expected count x score lost to the best other segmentation
  // of the piece's own text) is smallest, keeping max(target, size x shrinking_factor).
  void Prune(const std::vector<double>& counts, std::size_t target) {
    Index();
    const std::size_t keep = std::max(target, static_cast<std::size_t>(pieces_.size() * o_.shrinking_factor));
    if (pieces_.size() <= keep) return;
    std::vector<std::pair<double, std::size_t>> loss;
    for (std::size_t p = 0; p < pieces_.size(); ++p) {
      if (pieces_[p].required) continue;
      const double alt = BestWithout(pieces_[p].text, static_cast<int>(p));
      loss.push_back({counts[p] * (pieces_[p].score - alt), p});
    }
    std::sort(loss.begin(), loss.end());
    std::vector<bool> drop(pieces_.size(), false);
    const std::size_t remove = std::min(loss.size(), pieces_.size() - keep);
    for (std::size_t k = 0; k < remove; ++k) drop[loss[k].second] = true;
    std::vector<Piece> kept;
    for (std::size_t p = 0; p < pieces_.size(); ++p) {
      if (!drop[p]) kept.push_back(pieces_[p]);
    }
    pieces_ = std::move(kept);
  }

  std::size_t size() const { return pieces_.size(); }
  const std::vector<Piece>& pieces() const { return pieces_; }

 private:
  void Index() {
    index_.clear();
    for (std::size_t p = 0; p < pieces_.size(); ++p) index_[pieces_[p].text] = static_cast<int>(p);
  }
  void Normalise() {
    double total = 0;
    for (const Piece& p : pieces_) total += p.required ? 1.0 : std::exp(p.score);
    for (Piece& p : pieces_) p.score = std::log((p.required ? 1.0 : std::exp(p.score)) / total);
  }
  // Viterbi score of `s` without piece `skip` (-inf when no other segmentation exists).
  double BestWithout(const std::string& s, int skip) const {
    const std::vector<std::size_t> b = Boundaries(s);
    const std::size_t n = b.size();
    std::vector<double> best(n, -std::numeric_limits<double>::infinity());
    best[0] = 0;
    for (std::size_t j = 1; j < n; ++j) {
      for (std::size_t i = 0; i < j; ++i) {
        auto it = index_.find(s.substr(b[i], b[j] - b[i]));
        if (it == index_.end() || it->second == skip) continue;
        best[j] = std::max(best[j], best[i] + pieces_[it->second].score);
      }
    }
    return std::max(best[n - 1], -1e9);
  }

  std::vector<std::pair<std::string, std::int64_t>> words_;
  UnigramTrainerOptions o_;
  std::vector<Piece> pieces_;
  std::unordered_map<std::string, int> index_;
};

}  // namespace

absl::StatusOr<std::string> TrainUnigram(const std::vector<std::string>& texts, const UnigramTrainerOptions& o) {
  // Words with their "▁" prefix, and character frequencies.
  std::map<std::string, std::int64_t> word_count;
  std::map<std::string, std::int64_t> char_count;
  std::int64_t chars = 0;
  for (const std::string& t : texts) {
    std::string word;
    auto flush = [&] {
      if (word.empty()) return;
      ++word_count[kSpace + word];
      word.clear();
    };
    for (std::size_t i = 0; i < t.size();) {
      const std::size_t n = Utf8CharLen(absl::string_view(t).substr(i));
      if (IsSpaceAt(t, i, n)) {
        flush();
      } else {
        word.append(t, i, n);
        ++char_count[t.substr(i, n)];
        ++chars;
      }
      i += n;
    }
    flush();
  }
  if (word_count.empty()) return absl::InvalidArgumentError("tokenizer training: the training text is empty");
  std::vector<std::pair<std::int64_t, std::string>> by_freq;
  for (auto& [c, n] : char_count) by_freq.push_back({n, c});
  std::sort(by_freq.begin(), by_freq.end(),
            [](const auto& a, const auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
  std::vector<std::string> kept{kSpace};
  std::int64_t covered = 0;
  for (auto& [n, c] : by_freq) {
    if (static_cast<double>(covered) >= o.character_coverage * static_cast<double>(chars)) break;
    kept.push_back(c);
    covered += n;
  }
  const int specials = 3;
  if (o.vocab_size < static_cast<int>(kept.size()) + specials) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer training: vocab_size ", o.vocab_size, " is below the ",
                                                   kept.size() + specials,
                                                   " pieces the characters and special tokens need"));
  }
  Trainer trainer({word_count.begin(), word_count.end()}, o);
  trainer.Seed(kept);
  const std::size_t target = static_cast<std::size_t>(o.vocab_size - specials);
  for (int round = 0; round < 64; ++round) {
    std::vector<double> counts;
    for (int it = 0; it < o.em_iterations; ++it) {
      double likelihood = 0;
      counts = trainer.Expect(&likelihood);
      trainer.Maximise(counts);
    }
    if (trainer.size() <= target) break;
    double likelihood = 0;
    trainer.Prune(trainer.Expect(&likelihood), target);
  }
  std::vector<Piece> final_pieces = trainer.pieces();
  std::stable_sort(final_pieces.begin(), final_pieces.end(),
                   [](const Piece& a, const Piece& b) { return a.score > b.score; });
  std::string model;
  auto piece = [&](const std::string& text, float score, int type) {
    std::string p;
    Bytes(p, 1, text);
    Key(p, 2, 5);
    char f[4];
    std::memcpy(f, &score, 4);
    p.append(f, 4);
    Int(p, 3, type);
    Bytes(model, 1, p);
  };
  piece("<pad>", 0, 3);
  piece("</s>", 0, 3);
  piece("<unk>", 0, 2);
  for (const Piece& p : final_pieces) piece(p.text, static_cast<float>(p.score), 1);
  std::string trainer_spec;
  Int(trainer_spec, 3, 1);  // model_type UNIGRAM
  Int(trainer_spec, 4, static_cast<std::int64_t>(final_pieces.size()) + specials);
  Int(trainer_spec, 40, 2);   // unk_id
  Int(trainer_spec, 41, -1);  // bos_id: none
  Int(trainer_spec, 42, 1);   // eos_id
  Int(trainer_spec, 43, 0);   // pad_id
  Bytes(model, 2, trainer_spec);
  std::string normalizer;
  Bytes(normalizer, 1, "identity");
  Int(normalizer, 3, 1);  // add_dummy_prefix
  Int(normalizer, 4, 1);  // remove_extra_whitespaces
  Int(normalizer, 5, 1);  // escape_whitespaces
  Bytes(model, 3, normalizer);
  return model;
}

}  // namespace zt::nlp
