// ds_config: checks a DeepSpeed JSON config the way a zerotrain job reads it.
//
//   bazel run //tools:ds_config -- check ds_config_zero2.json --set optimizer.params.lr=1e-4 --world_size 8
//
// stdout: the resolved config as DeepSpeed JSON, "auto" where the job fills a value at run time.
// stderr: warnings, the features a job would refuse (not implemented yet), the "auto" paths.
// Exit status: 0 when the config is valid (even with features not implemented yet), 2 when it is
// invalid or the command line is wrong.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "core/config/config.h"
#include "core/config/overrides.h"
#include "core/util/file_util.h"
#include "tools/flag_value.h"

namespace {

constexpr char kUsage[] =
    "usage: ds_config check FILE [--set key.path=value ...] [--world_size N]\n"
    "\n"
    "Checks a DeepSpeed JSON config as a zerotrain job reads it and prints it resolved on stdout.\n"
    "\n"
    "  --set key.path=value  set a value before \"auto\" values and batch sizes are resolved; the value\n"
    "                        is JSON when it parses as JSON, else a string (repeatable)\n"
    "  --world_size N        data-parallel ranks for the batch-size arithmetic (default 1)\n"
    "\n"
    "Exit status: 0 valid, 2 invalid config or usage error.\n";

int UsageError(const std::string& why) {
  std::cerr << "ds_config: error: " << why << "\n\n" << kUsage;
  return 2;
}

int Error(const std::string& message) {
  std::cerr << "ds_config: error: " << message << "\n";
  return 2;
}

// `bazel run` starts tools in their runfiles; a relative FILE means the user's directory.
std::string ResolvePath(const std::string& file) {
  const char* cwd = std::getenv("BUILD_WORKING_DIRECTORY");
  if (file.empty() || file[0] == '/' || cwd == nullptr || *cwd == '\0') return file;
  return std::string(cwd) + "/" + file;
}

int Check(const std::string& file, const std::vector<std::string>& sets, int world_size) {
  const std::string path = ResolvePath(file);
  absl::StatusOr<std::string> text = zt::ReadFileToString(path);
  if (!text.ok()) return Error(std::string(text.status().message()));

  auto overridden = zt::ApplyConfigOverrides(*text, file, sets);
  if (!overridden.ok()) return Error(std::string(overridden.status().message()));
  zt::AutoValues job;
  job.world_size = world_size;
  auto config = zt::ParseUnresolved(*overridden, file, job);
  if (!config.ok()) return Error(std::string(config.status().message()));

  std::cout << config->ToJson() << "\n";
  for (const std::string& w : config->warnings) std::cerr << "ds_config: warning: " << w << "\n";
  for (const std::string& item : config->not_implemented) {
    std::cerr << "not implemented yet (a job using this config will refuse to start): " << item << "\n";
  }
  if (!config->unresolved_auto.empty()) {
    std::cerr << "\"auto\" values resolved at run time by the job: " << absl::StrJoin(config->unresolved_auto, ", ")
              << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && (args[0] == "-h" || args[0] == "--help" || args[0] == "help")) {
    std::cout << kUsage;
    return 0;
  }
  if (args.empty()) return UsageError("no command");
  if (args[0] != "check") return UsageError("unknown command \"" + args[0] + "\"");

  std::string file;
  std::vector<std::string> sets;
  int world_size = 1;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    std::string value;
    auto take = [&](const std::string& flag) { return zt::tools::TakeFlagValue(args, &i, flag, &value); };
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    } else if (take("--set")) {
      sets.push_back(value);
    } else if (take("--world_size")) {
      if (!absl::SimpleAtoi(value, &world_size) || world_size < 1) {
        return UsageError("--world_size needs a positive integer, got \"" + value + "\"");
      }
    } else if (a == "--set" || a == "--world_size") {
      return UsageError(a + " needs a value");
    } else if (absl::StartsWith(a, "-")) {
      return UsageError("unknown flag " + a);
    } else if (file.empty()) {
      file = a;
    } else {
      return UsageError("more than one FILE (\"" + file + "\" and \"" + a + "\")");
    }
  }
  if (file.empty()) return UsageError("check needs a FILE");
  return Check(file, sets, world_size);
}
