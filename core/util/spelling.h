// "Did you mean" for names a user typed: config keys, command-line flags, host names.
//
//   const std::string near = zt::ClosestMatch(typed, known_names);
//   if (!near.empty()) message += " (did you mean " + near + "?)";
#ifndef ZEROTRAIN_CORE_UTIL_SPELLING_H_
#define ZEROTRAIN_CORE_UTIL_SPELLING_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace zt {

// Edit distance (insertions, deletions, substitutions, adjacent swaps), case-insensitive.
int EditDistance(absl::string_view a, absl::string_view b);

// The candidate closest to `typed`, if close enough to be a likely typo; "" otherwise.
std::string ClosestMatch(absl::string_view typed, const std::vector<std::string>& candidates);

}  // namespace zt

#endif  // ZEROTRAIN_CORE_UTIL_SPELLING_H_
