// DeepSpeed's zero_to_fp32 as a library: one model.safetensors (fp32, bf16 or fp16) made from an
// engine checkpoint's ZeRO-sharded fp32 master weights, under the names the job asked for (HF's),
// beside the files the job saved with it (config.json, spiece.model).  //tools:zero_to_fp32 is
// its command line.
//
//   zt::tools::ZeroToFp32Options options;
//   options.dtype = zt::tools::ExportDtype::kBF16;
//   ASSIGN_OR_RETURN(zt::tools::ZeroToFp32Result r,
//                    zt::tools::ConvertZeroToFp32("output_dir/checkpoint-500", "hf_model", options));
//   std::cout << r.Summary() << "\n";
//
// What it reads (core/engine/engine_checkpoint.cc): the step directory's "master/<parameter>"
// tensor entries, fp32, each a partition slice [begin, end) of the flattened parameter held by
// one rank's file, the slices of a name covering it exactly once; the manifest's meta
// "export_names", a JSON object parameter name -> output name (unlisted names are kept); and the
// files of rank -1 (shared), copied as they are.
//
// Memory.  DeepSpeed's converter loads every rank's optimizer state, then the whole model.  Here
// the output's header is written first (every name, dtype and shape is in the manifest), then each
// tensor streams through in slices of at most kExportChunkBytes: read, converted, appended.  Peak
// memory is a few chunks whatever the model's size (tools/zero_to_fp32_memory_test measures it).
// OpenCheckpoint checks every file's CRC-32C first (1 MiB at a time), so no corrupt byte reaches
// the output.
//
// Errors name the file or tensor: kNotFound (no checkpoint there, or none with that tag),
// kDataLoss (a file fails its checksum, "export_names" is not a JSON object of strings),
// kFailedPrecondition (no "master/" tensors: not an engine checkpoint), kInvalidArgument (slices
// that leave a gap or overlap, two parameters exporting under one name, an unsupported dtype).
// The output is written crash-safely (temporary file, fsync, rename): a failed or killed
// conversion leaves no model.safetensors, only *.tmp.<pid> debris at worst.
#ifndef ZEROTRAIN_TOOLS_ZERO_TO_FP32_LIB_H_
#define ZEROTRAIN_TOOLS_ZERO_TO_FP32_LIB_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/ckpt/manifest.pb.h"

namespace zt::tools {

// The output file's name in OUTPUT_DIR (HF's).
inline constexpr char kExportFile[] = "model.safetensors";
// The most bytes of a tensor read at once.
inline constexpr std::size_t kExportChunkBytes = std::size_t{4} << 20;

enum class ExportDtype { kF32, kBF16, kF16 };

// "fp32" | "bf16" | "fp16"; kInvalidArgument otherwise.
absl::StatusOr<ExportDtype> ParseExportDtype(absl::string_view name);
// "fp32" | "bf16" | "fp16".
const char* ExportDtypeName(ExportDtype dtype);

// One tensor of the output and where its elements are.
struct ExportTensor {
  std::string param;        // the engine's parameter name ("master/" stripped)
  std::string export_name;  // the name in model.safetensors
  std::string dtype;        // the checkpoint's dtype ("F32")
  std::vector<std::int64_t> shape;
  std::int64_t numel = 0;
  // The entries holding it, by partition begin; they cover [0, numel) exactly once in this order,
  // so the tensor's bytes are theirs concatenated.
  std::vector<const ckpt::TensorEntry*> slices;
};

// The output's tensors in output order (by export name), from a manifest (`source` names it in
// errors).  The entries point into `manifest`, which must outlive the result.
absl::StatusOr<std::vector<ExportTensor>> PlanExport(const ckpt::Manifest& manifest, absl::string_view source);

struct ZeroToFp32Options {
  // A step directory under CHECKPOINT_DIR to read ("global_step500") instead of the one `latest`
  // names (DeepSpeed's --tag / -t).
  std::string tag;
  ExportDtype dtype = ExportDtype::kF32;
};

struct ZeroToFp32Result {
  std::string step_dir;  // the checkpoint read
  std::int64_t global_step = 0;
  std::string output_file;  // OUTPUT_DIR/model.safetensors
  ExportDtype dtype = ExportDtype::kF32;
  std::size_t tensors = 0;
  std::int64_t parameters = 0;      // elements of all tensors
  std::uint64_t tensor_bytes = 0;   // their bytes in the output
  std::uint64_t file_bytes = 0;     // the output file's size
  std::vector<std::string> copied;  // the shared files copied into OUTPUT_DIR

  // One line: "wrote 24 tensors (100663296 parameters, 402653184 bytes bf16) from ... to ...".
  std::string Summary() const;
};

// Converts the checkpoint at `checkpoint_dir` (a save directory with `latest`, a step directory,
// or HF's checkpoint-N directory holding `latest`) into `output_dir` (created if missing).
absl::StatusOr<ZeroToFp32Result> ConvertZeroToFp32(const std::string& checkpoint_dir, const std::string& output_dir,
                                                   const ZeroToFp32Options& options = {});

}  // namespace zt::tools

#endif  // ZEROTRAIN_TOOLS_ZERO_TO_FP32_LIB_H_
