#include "tools/zero_to_fp32_lib.h"

#include <ATen/core/Tensor.h>
#include <ATen/ops/from_blob.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "core/ckpt/checkpoint_dir.h"
#include "core/ckpt/safetensors.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "core/util/torch_status.h"
#include "nlohmann/json.hpp"

namespace zt::tools {
namespace {

constexpr char kMasterPrefix[] = "master/";

std::string JoinPath(const std::string& dir, absl::string_view name) {
  return absl::StrCat(dir, absl::EndsWith(dir, "/") ? "" : "/", name);
}

absl::Status ErrnoError(int err, absl::string_view what, const std::string& path) {
  return absl::Status(absl::ErrnoToStatusCode(err), absl::StrCat("cannot ", what, " ", path, ": ", std::strerror(err)));
}

// The checkpoint dtypes a master tensor may have, as ATen types.
bool SourceType(absl::string_view dtype, at::ScalarType* type) {
  if (dtype == "F32") {
    *type = at::kFloat;
  } else if (dtype == "BF16") {
    *type = at::kBFloat16;
  } else if (dtype == "F16") {
    *type = at::kHalf;
  } else {
    return false;
  }
  return true;
}

at::ScalarType OutputType(ExportDtype d) {
  switch (d) {
    case ExportDtype::kBF16:
      return at::kBFloat16;
    case ExportDtype::kF16:
      return at::kHalf;
    case ExportDtype::kF32:
      break;
  }
  return at::kFloat;
}

const char* OutputSafetensorsDtype(ExportDtype d) {
  switch (d) {
    case ExportDtype::kBF16:
      return "BF16";
    case ExportDtype::kF16:
      return "F16";
    case ExportDtype::kF32:
      break;
  }
  return "F32";
}

// meta "export_names": parameter name -> output name.
absl::StatusOr<std::map<std::string, std::string>> ExportNames(const ckpt::Manifest& manifest,
                                                               absl::string_view source) {
  std::map<std::string, std::string> out;
  const auto it = manifest.meta().find("export_names");
  if (it == manifest.meta().end()) return out;
  const nlohmann::json j = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::DataLossError(absl::StrCat(source, ": meta \"export_names\" is not a JSON object"));
  }
  for (auto e = j.begin(); e != j.end(); ++e) {
    if (!e->is_string()) {
      return absl::DataLossError(
          absl::StrCat(source, ": meta \"export_names\" maps \"", e.key(), "\" to ", e->dump(), ", not a string"));
    }
    out[e.key()] = e->get<std::string>();
  }
  return out;
}

// Copies a checkpoint file to `path` crash-safely, checking its CRC-32C on the way.
absl::Status CopyCheckedFile(const ckpt::CheckpointReader& reader, const std::string& name, const std::string& path) {
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError(errno, "create", tmp);
  absl::Status s = reader.ReadFileInChunks(name, kExportChunkBytes, [&](absl::string_view chunk) {
    while (!chunk.empty()) {
      const ssize_t n = ::write(fd, chunk.data(), chunk.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoError(errno, "write", tmp);
      chunk.remove_prefix(static_cast<std::size_t>(n));
    }
    return absl::OkStatus();
  });
  if (s.ok() && ::fsync(fd) != 0) s = ErrnoError(errno, "fsync", tmp);
  if (::close(fd) != 0 && s.ok()) s = ErrnoError(errno, "close", tmp);
  if (s.ok() && std::rename(tmp.c_str(), path.c_str()) != 0) s = ErrnoError(errno, "rename to " + path, tmp);
  if (!s.ok()) std::remove(tmp.c_str());
  return s;
}

absl::Status FsyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "open", dir);
  absl::Status s = ::fsync(fd) == 0 ? absl::OkStatus() : ErrnoError(errno, "fsync", dir);
  ::close(fd);
  return s;
}

// realpath(), or the path itself when it cannot be resolved.
std::string Canonical(const std::string& path) {
  char* p = ::realpath(path.c_str(), nullptr);
  if (p == nullptr) return path;
  std::string out = p;
  std::free(p);
  return out;
}

// Streams one tensor's slices into the writer, converted, at most kExportChunkBytes at a time.
absl::Status WriteTensor(const ckpt::CheckpointReader& reader, const ExportTensor& t, ExportDtype dtype,
                         ckpt::SafetensorsWriter& writer) {
  at::ScalarType from = at::kFloat;
  if (!SourceType(t.dtype, &from)) {
    return absl::InvalidArgumentError(absl::StrCat("tensor \"", kMasterPrefix, t.param, "\" has dtype ", t.dtype));
  }
  const at::ScalarType to = OutputType(dtype);
  const std::uint64_t element_size = at::elementSize(from);
  const std::uint64_t chunk_elements = kExportChunkBytes / element_size;
  for (const ckpt::TensorEntry* slice : t.slices) {
    const std::uint64_t elements = slice->nbytes() / element_size;
    for (std::uint64_t done = 0; done < elements;) {
      const std::uint64_t n = std::min(chunk_elements, elements - done);
      ASSIGN_OR_RETURN(std::string bytes,
                       reader.ReadFileRange(slice->file(), slice->offset() + done * element_size, n * element_size),
                       _.WithPrefix(absl::StrCat("reading tensor \"", slice->name(), "\"")));
      if (from == to) {
        RETURN_IF_ERROR(writer.Append(bytes));
      } else {
        ASSIGN_OR_RETURN(at::Tensor converted, CallTorch(absl::StrCat("convert \"", slice->name(), "\""), [&] {
                           return at::from_blob(bytes.data(), {static_cast<std::int64_t>(n)}, from).to(to);
                         }));
        RETURN_IF_ERROR(
            writer.Append(absl::string_view(static_cast<const char*>(converted.data_ptr()), converted.nbytes())));
      }
      done += n;
    }
  }
  return writer.EndTensor();
}

}  // namespace

absl::StatusOr<ExportDtype> ParseExportDtype(absl::string_view name) {
  if (name == "fp32") return ExportDtype::kF32;
  if (name == "bf16") return ExportDtype::kBF16;
  if (name == "fp16") return ExportDtype::kF16;
  return absl::InvalidArgumentError(absl::StrCat("unknown dtype \"", name, "\" (fp32, bf16 or fp16)"));
}

const char* ExportDtypeName(ExportDtype dtype) {
  switch (dtype) {
    case ExportDtype::kBF16:
      return "bf16";
    case ExportDtype::kF16:
      return "fp16";
    case ExportDtype::kF32:
      break;
  }
  return "fp32";
}

absl::StatusOr<std::vector<ExportTensor>> PlanExport(const ckpt::Manifest& manifest, absl::string_view source) {
  ASSIGN_OR_RETURN(const auto export_names, ExportNames(manifest, source));
  std::map<std::string, std::vector<const ckpt::TensorEntry*>> by_param;
  for (const ckpt::TensorEntry& e : manifest.tensors()) {
    absl::string_view name = e.name();
    if (absl::ConsumePrefix(&name, kMasterPrefix)) by_param[std::string(name)].push_back(&e);
  }
  if (by_param.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        source, ": no \"", kMasterPrefix, "\" tensors (fp32 master weights): not a zerotrain engine checkpoint"));
  }
  std::vector<ExportTensor> out;
  std::map<std::string, std::string> owner;  // export name -> parameter
  for (auto& [param, entries] : by_param) {
    const std::string label = absl::StrCat(source, ": tensor \"", kMasterPrefix, param, "\"");
    ExportTensor t;
    t.param = param;
    const ckpt::TensorEntry& first = *entries.front();
    t.dtype = first.dtype();
    t.shape.assign(first.shape().begin(), first.shape().end());
    at::ScalarType type = at::kFloat;
    if (!SourceType(t.dtype, &type)) {
      return absl::InvalidArgumentError(absl::StrCat(label, " has dtype \"", t.dtype, "\", not F32, BF16 or F16"));
    }
    const std::int64_t element_size = static_cast<std::int64_t>(at::elementSize(type));
    t.numel = 1;
    for (const std::int64_t d : t.shape) {
      if (d < 0 || __builtin_mul_overflow(t.numel, d, &t.numel)) {
        return absl::InvalidArgumentError(absl::StrCat(label, " has shape [", absl::StrJoin(t.shape, ", "), "]"));
      }
    }
    const auto range = [&](const ckpt::TensorEntry* e) {
      return e->has_partition() ? std::make_pair(e->partition().begin(), e->partition().end())
                                : std::make_pair(std::int64_t{0}, t.numel);
    };
    std::sort(entries.begin(), entries.end(),
              [&](const ckpt::TensorEntry* a, const ckpt::TensorEntry* b) { return range(a) < range(b); });
    std::int64_t covered = 0;
    for (const ckpt::TensorEntry* e : entries) {
      if (e->dtype() != first.dtype() ||
          !std::equal(e->shape().begin(), e->shape().end(), first.shape().begin(), first.shape().end())) {
        return absl::InvalidArgumentError(absl::StrCat(label, ": its slices disagree on its dtype or shape"));
      }
      const auto [begin, end] = range(e);
      if (begin != covered) {
        return absl::InvalidArgumentError(absl::StrCat(label, ": its slices ",
                                                       begin < covered ? "overlap" : "leave a gap", " at element ",
                                                       std::min(begin, covered), " of ", t.numel));
      }
      if (end < begin || e->nbytes() != static_cast<std::uint64_t>((end - begin) * element_size)) {
        return absl::InvalidArgumentError(absl::StrCat(label, ": the slice [", begin, ", ", end, ") in \"", e->file(),
                                                       "\" has ", e->nbytes(), " bytes"));
      }
      covered = end;
    }
    if (covered != t.numel) {
      return absl::InvalidArgumentError(
          absl::StrCat(label, ": its slices cover ", covered, " of its ", t.numel, " elements"));
    }
    t.slices = std::move(entries);
    const auto renamed = export_names.find(param);
    t.export_name = renamed == export_names.end() ? param : renamed->second;
    if (t.export_name.empty() || t.export_name == "__metadata__") {
      return absl::InvalidArgumentError(
          absl::StrCat(label, ": export name \"", t.export_name, "\" cannot name a safetensors tensor"));
    }
    const auto [it, fresh] = owner.emplace(t.export_name, param);
    if (!fresh) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": parameters \"", it->second, "\" and \"", param,
                                                     "\" both export as \"", t.export_name,
                                                     "\" (meta \"export_names\")"));
    }
    out.push_back(std::move(t));
  }
  std::sort(out.begin(), out.end(),
            [](const ExportTensor& a, const ExportTensor& b) { return a.export_name < b.export_name; });
  return out;
}

std::string ZeroToFp32Result::Summary() const {
  std::string copies = copied.empty() ? "" : absl::StrCat("; copied ", absl::StrJoin(copied, ", "));
  return absl::StrFormat("wrote %s: %d tensors, %d parameters, %d bytes of %s (%.1f MiB) from %s (step %d)%s",
                         output_file, tensors, parameters, tensor_bytes, ExportDtypeName(dtype),
                         static_cast<double>(tensor_bytes) / (1 << 20), step_dir, global_step, copies);
}

absl::StatusOr<ZeroToFp32Result> ConvertZeroToFp32(const std::string& checkpoint_dir, const std::string& output_dir,
                                                   const ZeroToFp32Options& options) {
  std::string path = checkpoint_dir;
  if (!options.tag.empty()) {
    if (absl::StrContains(options.tag, '/') || options.tag == "." || options.tag == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("tag \"", options.tag, "\" is not a step directory's name (global_stepN)"));
    }
    path = JoinPath(checkpoint_dir, options.tag);
    if (!IsDirectory(path)) {
      absl::StatusOr<std::vector<std::int64_t>> steps = ckpt::ListCheckpointSteps(checkpoint_dir);
      std::vector<std::string> names;
      if (steps.ok()) {
        for (const std::int64_t s : *steps) names.push_back(ckpt::StepDirName(s));
      }
      return absl::NotFoundError(absl::StrCat(path, ": no such checkpoint (tag \"", options.tag, "\"); ",
                                              names.empty()
                                                  ? absl::StrCat(checkpoint_dir, " has none complete")
                                                  : absl::StrCat("tags there: ", absl::StrJoin(names, ", "))));
    }
  }
  ASSIGN_OR_RETURN(const ckpt::CheckpointReader reader, ckpt::OpenCheckpoint(path));
  const std::string manifest_path = JoinPath(reader.step_dir(), ckpt::kManifestFile);
  ASSIGN_OR_RETURN(const std::vector<ExportTensor> plan, PlanExport(reader.manifest(), manifest_path));
  std::vector<std::string> shared;
  for (const ckpt::FileEntry& f : reader.manifest().files()) {
    if (f.rank() != -1) continue;
    if (f.name() == kExportFile) {
      return absl::InvalidArgumentError(absl::StrCat(JoinPath(reader.step_dir(), f.name()),
                                                     ": the checkpoint holds a shared file of the output's name"));
    }
    shared.push_back(f.name());
  }

  RETURN_IF_ERROR(MakeDirs(output_dir));
  if (Canonical(output_dir) == Canonical(reader.step_dir())) {
    return absl::InvalidArgumentError(
        absl::StrCat(output_dir, " is the checkpoint's own step directory; write the model elsewhere"));
  }
  ZeroToFp32Result result;
  result.step_dir = reader.step_dir();
  result.global_step = reader.global_step();
  result.output_file = JoinPath(output_dir, kExportFile);
  result.dtype = options.dtype;

  std::vector<ckpt::SafetensorsTensorSpec> specs;
  for (const ExportTensor& t : plan) specs.push_back({t.export_name, OutputSafetensorsDtype(options.dtype), t.shape});
  ASSIGN_OR_RETURN(ckpt::SafetensorsWriter writer, ckpt::SafetensorsWriter::Create(result.output_file, specs));
  const std::uint64_t out_element_size = at::elementSize(OutputType(options.dtype));
  for (const ExportTensor& t : plan) {
    RETURN_IF_ERROR(WriteTensor(reader, t, options.dtype, writer));
    ++result.tensors;
    result.parameters += t.numel;
    result.tensor_bytes += static_cast<std::uint64_t>(t.numel) * out_element_size;
  }
  result.file_bytes = writer.file_size();
  RETURN_IF_ERROR(writer.Finish());

  for (const std::string& name : shared) {
    RETURN_IF_ERROR(CopyCheckedFile(reader, name, JoinPath(output_dir, name)));
    result.copied.push_back(name);
  }
  if (!shared.empty()) RETURN_IF_ERROR(FsyncDir(output_dir));
  return result;
}

}  // namespace zt::tools
