// The safetensors format (HF's model.safetensors): an 8-byte little-endian header length N, N
// bytes of JSON {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
// "__metadata__": {"format": "pt"}}, then the tensors' bytes, offsets relative to the data start.
//
//   ASSIGN_OR_RETURN(zt::ckpt::Safetensors st, zt::ckpt::ReadSafetensors(dir + "/model.safetensors"));
//   for (const auto& [name, t] : st.tensors) ...;          // CPU tensors owning their memory
//   RETURN_IF_ERROR(zt::ckpt::WriteSafetensors(path, {{"shared.weight", w}}, {{"format", "pt"}}));
//
// The reader trusts nothing in the file: the header length against the file size, the header
// JSON, every dtype, shape (non-negative, no overflow) and offset pair (inside the data, the
// length numel x element size, no two tensors overlapping) are checked, and any violation is a
// kDataLoss error naming the file, the tensor and what is wrong.  The writer writes a temporary
// file beside the target and renames it into place, so a crash leaves no half file.
#ifndef ZEROTRAIN_CORE_CKPT_SAFETENSORS_H_
#define ZEROTRAIN_CORE_CKPT_SAFETENSORS_H_

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <utility>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace zt::ckpt {

struct Safetensors {
  std::vector<std::pair<std::string, at::Tensor>> tensors;  // in file order (by data offset)
  std::map<std::string, std::string> metadata;              // "__metadata__" (string values)

  // The tensor called `name`, or nullptr.
  const at::Tensor* Find(absl::string_view name) const;
};

// Parses a whole file held in memory; `source` names it in errors.
absl::StatusOr<Safetensors> ParseSafetensors(absl::string_view bytes, absl::string_view source);
absl::StatusOr<Safetensors> ReadSafetensors(const std::string& path);

// Tensors must be on the CPU (they are made contiguous); names must be unique and not
// "__metadata__".  Supported dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL.
absl::Status WriteSafetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

}  // namespace zt::ckpt

#endif  // ZEROTRAIN_CORE_CKPT_SAFETENSORS_H_
