// UTF-8 stepping shared by the tokenizer, its trainer and BLEU: text is bytes, characters are
// found where they start.  A malformed or truncated sequence counts as one one-byte character.
#ifndef ZEROTRAIN_NLP_DATA_UTF8_H_
#define ZEROTRAIN_NLP_DATA_UTF8_H_

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace zt::nlp {

// Bytes of the character starting at s[0] (s non-empty).
inline std::size_t Utf8CharLen(absl::string_view s) {
  const auto c = static_cast<unsigned char>(s[0]);
  const std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
  if (n > s.size()) return 1;
  for (std::size_t i = 1; i < n; ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xc0) != 0x80) return 1;
  }
  return n;
}

// The code point of the character at s[i] (a malformed byte reads as itself); advances i.
inline std::uint32_t NextCodePoint(absl::string_view s, std::size_t& i) {
  const std::size_t n = Utf8CharLen(s.substr(i));
  const auto c = static_cast<unsigned char>(s[i]);
  if (n == 1) {
    ++i;
    return c;
  }
  std::uint32_t cp = n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
  for (std::size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
  i += n;
  return cp;
}

}  // namespace zt::nlp

#endif  // ZEROTRAIN_NLP_DATA_UTF8_H_
