#include "core/config/json_text.h"

#include <algorithm>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace zt {
namespace config_internal {
namespace {

// One open object or array while the parser walks the text, for duplicate detection and paths.
struct Frame {
  bool is_array = false;
  std::set<std::string> keys;  // keys seen so far in this object
  std::string key;             // the key whose value is being read
  std::size_t index = 0;       // the array element being read
};

std::string PathOf(const std::vector<Frame>& stack, const std::string& last_key) {
  std::string path;
  for (std::size_t i = 0; i + 1 < stack.size(); ++i) {
    if (stack[i].is_array) {
      absl::StrAppend(&path, "[", stack[i].index, "]");
    } else {
      path = JoinPath(path, stack[i].key);
    }
  }
  return JoinPath(path, last_key);
}

// What nlohmann-json says after its own "parse error at line L, column C: " prefix.
std::string ParseErrorDetail(const std::string& what) {
  const std::size_t at = what.find("parse error");
  if (at == std::string::npos) return what;
  const std::size_t colon = what.find(": ", at);
  return colon == std::string::npos ? what : what.substr(colon + 2);
}

// DeepSpeed reads configs with hjson, so files written for it may carry comments or trailing
// commas; say so when the error looks like one.
bool LooksLikeHjson(absl::string_view text, std::size_t byte) {
  if (byte == 0 || byte > text.size()) return false;
  const char bad = text[byte - 1];
  if (bad == '/' || bad == '#') return true;
  if (bad != '}' && bad != ']') return false;
  for (std::size_t i = byte - 1; i-- > 0;) {
    const char c = text[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
    return c == ',';
  }
  return false;
}

}  // namespace

std::string JoinPath(absl::string_view parent, absl::string_view key) {
  if (parent.empty()) return std::string(key);
  return absl::StrCat(parent, ".", key);
}

std::string LineColumn(absl::string_view text, std::size_t byte) {
  // `byte` counts characters read, so the offending character is at index byte - 1.
  const std::size_t at = byte == 0 ? 0 : std::min(byte - 1, text.size());
  std::size_t line = 1;
  std::size_t line_start = 0;
  for (std::size_t i = 0; i < at; ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  return absl::StrCat("line ", line, ", column ", at - line_start + 1);
}

std::string ShortJson(const Json& value) {
  std::string s = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  constexpr std::size_t kMax = 80;
  if (s.size() > kMax) s = absl::StrCat(s.substr(0, kMax - 3), "...");
  return s;
}

absl::StatusOr<Json> ParseStrictJson(absl::string_view text, absl::string_view source) {
  std::vector<Frame> stack;
  std::optional<std::string> duplicate;
  auto callback = [&](int /*depth*/, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
        stack.push_back(Frame{});
        break;
      case Json::parse_event_t::array_start:
        stack.push_back(Frame{});
        stack.back().is_array = true;
        break;
      case Json::parse_event_t::key: {
        Frame& frame = stack.back();
        std::string key = parsed.get<std::string>();
        if (!frame.keys.insert(key).second && !duplicate) duplicate = PathOf(stack, key);
        frame.key = std::move(key);
        break;
      }
      case Json::parse_event_t::object_end:
      case Json::parse_event_t::array_end:
        stack.pop_back();
        if (!stack.empty() && stack.back().is_array) ++stack.back().index;
        break;
      case Json::parse_event_t::value:
        if (!stack.empty() && stack.back().is_array) ++stack.back().index;
        break;
    }
    return true;
  };
  Json doc;
  // nlohmann-json reports syntax errors by exception; this is the one place they are caught.
  try {
    doc = Json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const Json::parse_error& e) {
    std::string message =
        absl::StrCat(source, ": invalid JSON at ", LineColumn(text, e.byte), ": ", ParseErrorDetail(e.what()));
    if (LooksLikeHjson(text, e.byte)) {
      absl::StrAppend(&message, " (zerotrain reads strict JSON: no comments, no trailing commas)");
    }
    return absl::InvalidArgumentError(message);
  }
  if (duplicate) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": duplicate key \"", *duplicate, "\" (DeepSpeed refuses duplicate keys)"));
  }
  return doc;
}

}  // namespace config_internal
}  // namespace zt
