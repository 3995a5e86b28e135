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
// kDataLoss error naming the file, the tensor and what is wrong.  The writers write a temporary
// file beside the target, fsync it and rename it into place, so a crash leaves no half file.
//
// SafetensorsWriter streams: the tensors' names, dtypes and shapes go in first (the header needs
// every offset), then each tensor's bytes in order, in as many appends as the caller likes, so
// a file far larger than memory can be written one tensor (or one chunk) at a time:
//
//   ASSIGN_OR_RETURN(zt::ckpt::SafetensorsWriter w, zt::ckpt::SafetensorsWriter::Create(
//       path, {{"encoder.weight", "F32", {512, 512}}, {"encoder.bias", "BF16", {512}}}));
//   RETURN_IF_ERROR(w.Append(first_half));  RETURN_IF_ERROR(w.Append(second_half));
//   RETURN_IF_ERROR(w.EndTensor());         // exactly 512 x 512 x 4 bytes, or kInvalidArgument
//   RETURN_IF_ERROR(w.Append(bias_bytes));  RETURN_IF_ERROR(w.EndTensor());
//   RETURN_IF_ERROR(w.Finish());            // fsync, rename into place, fsync the directory
#ifndef ZEROTRAIN_CORE_CKPT_SAFETENSORS_H_
#define ZEROTRAIN_CORE_CKPT_SAFETENSORS_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

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

// The bytes one element of a safetensors dtype ("F32", "BF16", ...) takes; 0 for one this
// library does not know.
int SafetensorsDtypeSize(absl::string_view dtype);

// One tensor of a file SafetensorsWriter writes.
struct SafetensorsTensorSpec {
  std::string name;
  std::string dtype;  // "F64" "F32" "F16" "BF16" "I64" "I32" "I16" "I8" "U8" "BOOL"
  std::vector<std::int64_t> shape;
};

// Writes one safetensors file tensor by tensor (see the top of this file).  Move-only; dropped
// before Finish (or after an error), it closes and removes its temporary file.  After any error
// every later call fails with the same status.
class SafetensorsWriter {
 public:
  // Checks the specs (unique names, not "__metadata__"; known dtypes; non-negative dimensions
  // whose byte count fits in 64 bits: kInvalidArgument naming the tensor), creates
  // "<path>.tmp.<pid>" and writes the 8-byte header length and the JSON header, with
  // `metadata` as "__metadata__" (left out when empty), padded so the data starts 8-byte
  // aligned.  The data is laid out in the specs' order.
  [[nodiscard]] static absl::StatusOr<SafetensorsWriter> Create(const std::string& path,
                                                                std::vector<SafetensorsTensorSpec> tensors,
                                                                const std::map<std::string, std::string>& metadata = {
                                                                    {"format", "pt"}});

  SafetensorsWriter(SafetensorsWriter&& other) noexcept;
  SafetensorsWriter& operator=(SafetensorsWriter&& other) noexcept;
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;
  ~SafetensorsWriter();

  // More bytes of the current tensor (little-endian, row-major).  kInvalidArgument, naming the
  // tensor, if they run past its byte count or every tensor has been ended.
  [[nodiscard]] absl::Status Append(absl::string_view bytes);
  // Ends the current tensor: kInvalidArgument, naming it, unless it got exactly its byte count.
  [[nodiscard]] absl::Status EndTensor();
  // kFailedPrecondition unless every tensor has been ended; then fsyncs the file, renames it to
  // `path` and fsyncs the directory.  The writer is finished either way.
  [[nodiscard]] absl::Status Finish();

  const std::string& path() const { return path_; }
  // Header and data: the size the file will have.
  std::uint64_t file_size() const { return file_size_; }
  // The index of the tensor Append feeds (== the number of tensors once all are ended).
  std::size_t current_tensor() const { return current_; }

 private:
  SafetensorsWriter() = default;
  absl::Status Fail(absl::Status status);
  absl::Status WriteRaw(absl::string_view bytes);
  void Discard();

  std::string path_;
  std::string tmp_path_;
  int fd_ = -1;
  std::vector<SafetensorsTensorSpec> specs_;
  std::vector<std::uint64_t> sizes_;  // bytes of each tensor
  std::size_t current_ = 0;
  std::uint64_t written_ = 0;  // bytes of the current tensor so far
  std::uint64_t file_size_ = 0;
  absl::Status error_;
};

}  // namespace zt::ckpt

#endif  // ZEROTRAIN_CORE_CKPT_SAFETENSORS_H_
