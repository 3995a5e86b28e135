#include "ops/fused_impl.h"

#include <c10/util/Exception.h>

#include <cstdlib>
#include <string>

namespace zt::ops {

bool ReferenceForced(const char* env_var) {
  const char* env = std::getenv(env_var);
  const std::string value = env == nullptr ? "" : env;
  if (value == "reference") return true;
  if (!value.empty() && value != "fused") {
    TORCH_WARN(env_var, "=", value, " is neither 'reference' nor 'fused'; using the default (fused)");
  }
  return false;
}

}  // namespace zt::ops
