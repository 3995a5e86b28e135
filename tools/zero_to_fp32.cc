// zero_to_fp32: DeepSpeed's zero_to_fp32.py for zerotrain checkpoints — one model.safetensors from
// the ZeRO-sharded fp32 master weights, under HF's names, with the job's config.json and tokenizer.
//
//   bazel run //tools:zero_to_fp32 -- output_dir/checkpoint-500 hf_model [--dtype bf16]
//   bazel run //tools:zero_to_fp32 -- save_dir hf_model --tag global_step200
//
// The conversion streams one slice at a time, so it needs little memory whatever the model's size
// (tools/zero_to_fp32_lib.h).  Exit status: 0 on success, 1 when the checkpoint cannot be
// converted (the reason on stderr, naming the file or tensor), 2 for a usage error.
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "core/util/file_util.h"
#include "tools/flag_value.h"
#include "tools/zero_to_fp32_lib.h"

namespace {

constexpr char kUsage[] =
    "usage: zero_to_fp32 CHECKPOINT_DIR OUTPUT_DIR [--dtype fp32|bf16|fp16] [--tag TAG]\n"
    "\n"
    "Writes OUTPUT_DIR/model.safetensors from a zerotrain checkpoint's fp32 master weights (every\n"
    "rank's slices reassembled, under the names the job exported) and copies the checkpoint's shared\n"
    "files (config.json, spiece.model, ...) beside it.  Every file's checksum is checked first.\n"
    "\n"
    "  CHECKPOINT_DIR   a save directory with `latest`, a global_stepN directory, or HF's\n"
    "                   checkpoint-N directory\n"
    "  OUTPUT_DIR       created if missing\n"
    "  --dtype D        fp32 (default), bf16 or fp16: the output's dtype\n"
    "  --tag TAG        convert CHECKPOINT_DIR/TAG (e.g. global_step200) instead of the one `latest`\n"
    "                   names (DeepSpeed's -t)\n"
    "\n"
    "Exit status: 0 converted, 1 the checkpoint cannot be converted, 2 usage error.\n";

int UsageError(const std::string& why) {
  std::cerr << "zero_to_fp32: error: " << why << "\n\n" << kUsage;
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  std::vector<std::string> positional;
  zt::tools::ZeroToFp32Options options;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    std::string value;
    auto take = [&](const std::string& flag) { return zt::tools::TakeFlagValue(args, &i, flag, &value); };
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    } else if (take("--dtype")) {
      absl::StatusOr<zt::tools::ExportDtype> dtype = zt::tools::ParseExportDtype(value);
      if (!dtype.ok()) return UsageError(std::string("--dtype: ") + std::string(dtype.status().message()));
      options.dtype = *dtype;
    } else if (take("--tag") || take("-t")) {
      if (value.empty()) return UsageError("--tag needs a step directory's name");
      options.tag = value;
    } else if (a == "--dtype" || a == "--tag" || a == "-t") {
      return UsageError(a + " needs a value");
    } else if (absl::StartsWith(a, "-") && a != "-") {
      return UsageError("unknown flag " + a);
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() < 2) return UsageError("needs CHECKPOINT_DIR and OUTPUT_DIR");
  if (positional.size() > 2) return UsageError("unexpected argument \"" + positional[2] + "\"");

  absl::StatusOr<zt::tools::ZeroToFp32Result> result =
      zt::tools::ConvertZeroToFp32(zt::UserPath(positional[0]), zt::UserPath(positional[1]), options);
  if (!result.ok()) {
    std::cerr << "zero_to_fp32: error: " << result.status().message() << "\n";
    return 1;
  }
  std::cout << "zero_to_fp32: " << result->Summary() << "\n";
  return 0;
}
