// SentencePiece unigram tokenisation (T5's spiece.model), implemented here: the model file is
// read with a small protobuf wire-format reader (no libprotobuf, no libsentencepiece, so no
// clash with the protobuf runtime the rest of the binary links), the normaliser replays the
// model's precompiled character map (a darts-clone double-array trie, e.g. nmt_nfkc), and
// encoding is the same Viterbi search over piece scores, unknown characters scored
// min_score - 10 and runs of them merged into one <unk>.  Token for token equal to PyPI's
// sentencepiece (sentencepiece_test.cc checks it on WMT16 en-ro).
//
//   ASSIGN_OR_RETURN(zt::nlp::SentencePiece sp, zt::nlp::SentencePiece::Load(dir + "/spiece.model"));
//   std::vector<int> ids = sp.Encode("Resumption of the session");
//   std::string text = sp.Decode(ids);
#ifndef ZEROTRAIN_NLP_DATA_SENTENCEPIECE_H_
#define ZEROTRAIN_NLP_DATA_SENTENCEPIECE_H_

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace zt::nlp {

class SentencePiece {
 public:
  enum class Type { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

  // Errors name the file: not a model proto, no pieces, a model type other than unigram,
  // byte_fallback, a malformed character map.
  static absl::StatusOr<SentencePiece> Load(const std::string& path);
  static absl::StatusOr<SentencePiece> Parse(absl::string_view bytes, absl::string_view source);

  // The text as the model sees it: character map applied, whitespace collapsed and trimmed,
  // "▁" (U+2581) for spaces and before the first word.
  std::string Normalize(absl::string_view text) const;
  std::vector<int> Encode(absl::string_view text) const;
  // Control ids (pad, eos) are skipped, <unk> reads " ⁇ ".
  std::string Decode(const std::vector<int>& ids) const;

  int vocab_size() const { return static_cast<int>(pieces_.size()); }
  int unk_id() const { return unk_id_; }
  int pad_id() const { return pad_id_; }
  int eos_id() const { return eos_id_; }
  const std::string& IdToPiece(int id) const { return pieces_[id].piece; }

 private:
  struct Piece {
    std::string piece;
    float score = 0;
    Type type = Type::kNormal;
  };
  // The longest character-map rule matching a prefix of `in`: (replacement, bytes consumed).
  std::pair<absl::string_view, std::size_t> NormalizePrefix(absl::string_view in) const;

  std::vector<Piece> pieces_;
  std::unordered_map<std::string, int> index_;  // normal, user-defined and unused pieces
  std::size_t max_piece_bytes_ = 0;
  float min_score_ = 0, max_score_ = 0;
  int unk_id_ = 0, pad_id_ = -1, eos_id_ = -1;
  std::string unk_surface_ = " \xE2\x81\x87 ";
  bool add_dummy_prefix_ = true, remove_extra_whitespaces_ = true, escape_whitespaces_ = true;
  std::vector<std::uint32_t> trie_;  // darts-clone units; empty: identity normaliser
  std::string replacements_;         // NUL-terminated strings the trie's values point into
};

}  // namespace zt::nlp

#endif  // ZEROTRAIN_NLP_DATA_SENTENCEPIECE_H_
