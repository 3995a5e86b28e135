#include "core/ckpt/safetensors.h"

#include <ATen/ops/empty.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/util/file_util.h"
#include "core/util/torch_status.h"
#include "nlohmann/json.hpp"

namespace zt::ckpt {
namespace {

// Headers beyond this are refused (HF's own limit is 100 MB).
constexpr std::uint64_t kMaxHeader = 100'000'000;

struct DtypeName {
  const char* name;
  at::ScalarType type;
};
constexpr DtypeName kDtypes[] = {
    {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf}, {"BF16", at::kBFloat16}, {"I64", at::kLong},
    {"I32", at::kInt},    {"I16", at::kShort}, {"I8", at::kChar},  {"U8", at::kByte},       {"BOOL", at::kBool},
};

const char* NameOf(at::ScalarType t) {
  for (const DtypeName& d : kDtypes) {
    if (d.type == t) return d.name;
  }
  return nullptr;
}

absl::Status Corrupt(absl::string_view source, absl::string_view what) {
  return absl::DataLossError(absl::StrCat(source, ": not a valid safetensors file: ", what));
}

absl::Status Errno(const std::string& what, const std::string& path) {
  const int err = errno;
  return absl::Status(absl::ErrnoToStatusCode(err), absl::StrCat(what, " ", path, ": ", std::strerror(err)));
}

struct Entry {
  std::string name;
  at::ScalarType type;
  std::vector<std::int64_t> shape;
  std::uint64_t begin, end;
};

absl::StatusOr<Entry> ParseEntry(const std::string& name, const nlohmann::json& v, std::uint64_t data_size,
                                 absl::string_view source) {
  const auto bad = [&](absl::string_view what) {
    return Corrupt(source, absl::StrCat("tensor \"", name, "\": ", what));
  };
  if (!v.is_object()) return bad("its entry is not an object");
  Entry e{name, at::kFloat, {}, 0, 0};
  const auto dtype = v.find("dtype");
  if (dtype == v.end() || !dtype->is_string()) return bad("\"dtype\" missing or not a string");
  const std::string dt = dtype->get<std::string>();
  const auto known =
      std::find_if(std::begin(kDtypes), std::end(kDtypes), [&](const DtypeName& d) { return dt == d.name; });
  if (known == std::end(kDtypes)) return bad(absl::StrCat("unsupported dtype \"", dt, "\""));
  e.type = known->type;
  const auto shape = v.find("shape");
  if (shape == v.end() || !shape->is_array()) return bad("\"shape\" missing or not an array");
  std::uint64_t numel = 1;
  for (const auto& d : *shape) {
    if (!d.is_number_integer() || d.get<std::int64_t>() < 0) return bad("a dimension is not a non-negative integer");
    const auto dim = static_cast<std::uint64_t>(d.get<std::int64_t>());
    if (dim != 0 && numel > std::numeric_limits<std::uint64_t>::max() / 16 / dim) return bad("the shape overflows");
    numel *= dim;
    e.shape.push_back(static_cast<std::int64_t>(dim));
  }
  const auto offsets = v.find("data_offsets");
  if (offsets == v.end() || !offsets->is_array() || offsets->size() != 2 || !(*offsets)[0].is_number_unsigned() ||
      !(*offsets)[1].is_number_unsigned()) {
    return bad("\"data_offsets\" is not a pair of non-negative integers");
  }
  e.begin = (*offsets)[0].get<std::uint64_t>();
  e.end = (*offsets)[1].get<std::uint64_t>();
  if (e.begin > e.end || e.end > data_size) {
    return bad(absl::StrCat("data_offsets [", e.begin, ", ", e.end, "] outside the ", data_size, " data bytes"));
  }
  const std::uint64_t want = numel * at::elementSize(e.type);
  if (e.end - e.begin != want) {
    return bad(absl::StrCat("data_offsets span ", e.end - e.begin, " bytes, shape and dtype need ", want));
  }
  return e;
}

}  // namespace

const at::Tensor* Safetensors::Find(absl::string_view name) const {
  for (const auto& [n, t] : tensors) {
    if (n == name) return &t;
  }
  return nullptr;
}

absl::StatusOr<Safetensors> ParseSafetensors(absl::string_view bytes, absl::string_view source) {
  if (bytes.size() < 8) return Corrupt(source, absl::StrCat("only ", bytes.size(), " bytes, no header length"));
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  if (n > kMaxHeader || n > bytes.size() - 8) {
    return Corrupt(source, absl::StrCat("header length ", n, " but the file has ", bytes.size() - 8,
                                        " bytes after it (limit ", kMaxHeader, ")"));
  }
  const absl::string_view header = bytes.substr(8, n);
  const absl::string_view data = bytes.substr(8 + n);
  const nlohmann::json j = nlohmann::json::parse(header.begin(), header.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Corrupt(source, "the header is not a JSON object");
  Safetensors out;
  std::vector<Entry> entries;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) return Corrupt(source, "\"__metadata__\" is not an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) return Corrupt(source, absl::StrCat("metadata \"", m.key(), "\" is not a string"));
        out.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    absl::StatusOr<Entry> e = ParseEntry(it.key(), *it, data.size(), source);
    if (!e.ok()) return e.status();
    entries.push_back(std::move(*e));
  }
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  for (std::size_t i = 1; i < entries.size(); ++i) {
    if (entries[i].begin < entries[i - 1].end) {
      return Corrupt(source, absl::StrCat("tensors \"", entries[i - 1].name, "\" and \"", entries[i].name,
                                          "\" overlap in the data"));
    }
  }
  absl::Status s = CallTorch(absl::StrCat("reading ", source), [&] {
    for (const Entry& e : entries) {
      at::Tensor t = at::empty(e.shape, at::TensorOptions().dtype(e.type));
      if (e.end > e.begin) std::memcpy(t.data_ptr(), data.data() + e.begin, e.end - e.begin);
      out.tensors.emplace_back(e.name, std::move(t));
    }
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<Safetensors> ReadSafetensors(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadFileToString(path);
  if (!bytes.ok()) return bytes.status();
  return ParseSafetensors(*bytes, path);
}

absl::Status WriteSafetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  std::vector<SafetensorsTensorSpec> specs;
  std::vector<at::Tensor> data;
  for (const auto& [name, t] : tensors) {
    const auto bad = [&](absl::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat("writing ", path, ": tensor \"", name, "\" ", what));
    };
    if (!t.defined()) return bad("is undefined");
    if (!t.device().is_cpu()) return bad("is not on the CPU");
    const char* dt = NameOf(t.scalar_type());
    if (dt == nullptr) return bad(absl::StrCat("has an unsupported dtype ", c10::toString(t.scalar_type())));
    absl::StatusOr<at::Tensor> c = CallTorch("contiguous", [&] { return t.contiguous(); });
    if (!c.ok()) return c.status();
    specs.push_back({name, dt, t.sizes().vec()});
    data.push_back(std::move(*c));
  }
  absl::StatusOr<SafetensorsWriter> w = SafetensorsWriter::Create(path, std::move(specs), metadata);
  if (!w.ok()) return w.status();
  for (const at::Tensor& t : data) {
    const std::size_t n = static_cast<std::size_t>(t.numel() * t.element_size());
    if (n > 0) {
      if (absl::Status s = w->Append(absl::string_view(static_cast<const char*>(t.data_ptr()), n)); !s.ok()) return s;
    }
    if (absl::Status s = w->EndTensor(); !s.ok()) return s;
  }
  return w->Finish();
}

int SafetensorsDtypeSize(absl::string_view dtype) {
  for (const DtypeName& d : kDtypes) {
    if (dtype == d.name) return static_cast<int>(at::elementSize(d.type));
  }
  return 0;
}

// ---- SafetensorsWriter ---------------------------------------------------------------------

absl::StatusOr<SafetensorsWriter> SafetensorsWriter::Create(const std::string& path,
                                                            std::vector<SafetensorsTensorSpec> tensors,
                                                            const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<std::uint64_t> sizes;
  std::set<std::string> names;
  std::uint64_t offset = 0;
  for (const SafetensorsTensorSpec& t : tensors) {
    const auto bad = [&](absl::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat("writing ", path, ": tensor \"", t.name, "\" ", what));
    };
    if (t.name == "__metadata__" || !names.insert(t.name).second) return bad("is a reserved or repeated name");
    const int element_size = SafetensorsDtypeSize(t.dtype);
    if (element_size == 0) return bad(absl::StrCat("has an unsupported dtype \"", t.dtype, "\""));
    std::uint64_t len = static_cast<std::uint64_t>(element_size);
    for (const std::int64_t d : t.shape) {
      if (d < 0) return bad(absl::StrCat("has a negative dimension ", d));
      if (__builtin_mul_overflow(len, static_cast<std::uint64_t>(d), &len)) return bad("has too many bytes");
    }
    if (__builtin_add_overflow(offset, len, &offset)) return bad("ends past 2^64 bytes");
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset - len, offset}}};
    sizes.push_back(len);
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  std::string prefix(8, '\0');
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<char>(static_cast<std::uint64_t>(h.size()) >> (8 * i));
  prefix += h;

  SafetensorsWriter w;
  w.path_ = path;
  w.tmp_path_ = absl::StrCat(path, ".tmp.", ::getpid());
  w.specs_ = std::move(tensors);
  w.sizes_ = std::move(sizes);
  w.file_size_ = prefix.size() + offset;
  w.fd_ = ::open(w.tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (w.fd_ < 0) return Errno("cannot create", w.tmp_path_);
  if (absl::Status s = w.WriteRaw(prefix); !s.ok()) return s;
  return w;
}

SafetensorsWriter::SafetensorsWriter(SafetensorsWriter&& other) noexcept { *this = std::move(other); }

SafetensorsWriter& SafetensorsWriter::operator=(SafetensorsWriter&& other) noexcept {
  if (this == &other) return *this;
  Discard();
  path_ = std::move(other.path_);
  tmp_path_ = std::move(other.tmp_path_);
  fd_ = std::exchange(other.fd_, -1);
  other.tmp_path_.clear();
  specs_ = std::move(other.specs_);
  sizes_ = std::move(other.sizes_);
  current_ = other.current_;
  written_ = other.written_;
  file_size_ = other.file_size_;
  error_ = std::move(other.error_);
  return *this;
}

SafetensorsWriter::~SafetensorsWriter() { Discard(); }

void SafetensorsWriter::Discard() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!tmp_path_.empty()) {
    std::remove(tmp_path_.c_str());
    tmp_path_.clear();
  }
}

absl::Status SafetensorsWriter::Fail(absl::Status status) {
  if (error_.ok()) error_ = std::move(status);
  Discard();
  return error_;
}

absl::Status SafetensorsWriter::WriteRaw(absl::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail(Errno("cannot write", tmp_path_));
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::Append(absl::string_view bytes) {
  if (!error_.ok()) return error_;
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat("writing ", path_, ": the writer is finished"));
  if (current_ == specs_.size()) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("writing ", path_, ": ", bytes.size(),
                                                        " bytes after the last of its ", specs_.size(), " tensors")));
  }
  if (bytes.size() > sizes_[current_] - written_) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("writing ", path_, ": tensor \"", specs_[current_].name,
                                                        "\" got ", written_ + bytes.size(), " bytes, but its ",
                                                        specs_[current_].dtype, " shape takes ", sizes_[current_])));
  }
  written_ += bytes.size();
  return WriteRaw(bytes);
}

absl::Status SafetensorsWriter::EndTensor() {
  if (!error_.ok()) return error_;
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat("writing ", path_, ": the writer is finished"));
  if (current_ == specs_.size()) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("writing ", path_, ": EndTensor after the last of its ", specs_.size(), " tensors")));
  }
  if (written_ != sizes_[current_]) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("writing ", path_, ": tensor \"", specs_[current_].name,
                                                        "\" got ", written_, " bytes, but its ", specs_[current_].dtype,
                                                        " shape takes ", sizes_[current_])));
  }
  ++current_;
  written_ = 0;
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::Finish() {
  if (!error_.ok()) return error_;
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat("writing ", path_, ": the writer is finished"));
  if (current_ != specs_.size()) {
    return Fail(
        absl::FailedPreconditionError(absl::StrCat("writing ", path_, ": finished after ", current_, " of its ",
                                                   specs_.size(), " tensors (next: \"", specs_[current_].name, "\")")));
  }
  if (::fsync(fd_) != 0) return Fail(Errno("cannot fsync", tmp_path_));
  const int fd = std::exchange(fd_, -1);
  if (::close(fd) != 0) return Fail(Errno("cannot close", tmp_path_));
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    return Fail(Errno(absl::StrCat("cannot rename ", tmp_path_, " to"), path_));
  }
  tmp_path_.clear();  // it is the file now
  // The rename is durable once the directory is.
  const std::size_t slash = path_.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path_.substr(0, slash);
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return Fail(Errno("cannot open the directory", dir));
  const bool synced = ::fsync(dir_fd) == 0;
  absl::Status s = synced ? absl::OkStatus() : Errno("cannot fsync the directory", dir);
  ::close(dir_fd);
  if (!s.ok()) return Fail(std::move(s));
  error_ = absl::FailedPreconditionError(absl::StrCat("writing ", path_, ": the writer is finished"));
  return absl::OkStatus();
}

}  // namespace zt::ckpt
