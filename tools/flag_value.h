// The small command-line tools' flag scanning (ds_config, zero_to_fp32):
//
//   for (std::size_t i = 0; i < args.size(); ++i) {
//     std::string value;
//     if (zt::tools::TakeFlagValue(args, &i, "--dtype", &value)) { ... }
//
// True when args[*i] is "--flag VALUE" (then *i moves onto VALUE) or "--flag=VALUE"; false for
// anything else, including a bare "--flag" at the end (the caller says it needs a value).
#ifndef ZEROTRAIN_TOOLS_FLAG_VALUE_H_
#define ZEROTRAIN_TOOLS_FLAG_VALUE_H_

#include <cstddef>
#include <string>
#include <vector>

namespace zt::tools {

inline bool TakeFlagValue(const std::vector<std::string>& args, std::size_t* i, const std::string& flag,
                          std::string* value) {
  const std::string& a = args[*i];
  if (a == flag) {
    if (*i + 1 >= args.size()) return false;
    *value = args[++*i];
    return true;
  }
  if (a.size() > flag.size() && a.compare(0, flag.size(), flag) == 0 && a[flag.size()] == '=') {
    *value = a.substr(flag.size() + 1);
    return true;
  }
  return false;
}

}  // namespace zt::tools

#endif  // ZEROTRAIN_TOOLS_FLAG_VALUE_H_
