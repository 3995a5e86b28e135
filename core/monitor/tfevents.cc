#include "core/monitor/tfevents.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/monitor/write_all.h"
#include "core/util/crc32c.h"
#include "core/util/file_util.h"
#include "core/util/logging.h"
#include "core/util/status_macros.h"

namespace zt::monitor {
namespace {

constexpr uint32_t kMaskDelta = 0xa282ead8u;
constexpr std::size_t kHeaderBytes = 12;  // uint64 length + uint32 masked CRC of it
constexpr std::size_t kFooterBytes = 4;   // uint32 masked CRC of the data
constexpr std::size_t kFlushAtBytes = 1 << 20;
constexpr int kMaxNameAttempts = 100;

void PutFixed32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutFixed64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint32_t GetFixed32(absl::string_view b) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b[i]);
  return v;
}
uint64_t GetFixed64(absl::string_view b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b[i]);
  return v;
}

std::string HostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

// Opens a new file in `logdir` under TensorFlow's event-file name, never an existing one.
absl::StatusOr<std::pair<std::string, int>> OpenNewEventFile(const std::string& logdir, absl::string_view suffix) {
  const int64_t seconds = absl::ToUnixSeconds(absl::Now());
  const std::string stem = absl::StrFormat("%s/events.out.tfevents.%010d.%s", logdir, seconds, HostName());
  for (int attempt = 0; attempt < kMaxNameAttempts; ++attempt) {
    const std::string path = attempt == 0 ? absl::StrCat(stem, suffix) : absl::StrCat(stem, ".", attempt, suffix);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) return std::make_pair(path, fd);
    const int err = errno;
    if (err == EEXIST) continue;
    return absl::Status(absl::ErrnoToStatusCode(err), absl::StrCat(path, ": cannot create: ", std::strerror(err)));
  }
  return absl::AlreadyExistsError(
      absl::StrCat(stem, suffix, ": cannot create: it and ", kMaxNameAttempts - 1, " numbered variants exist"));
}

absl::Status DataLoss(absl::string_view name, std::size_t offset, absl::string_view what) {
  return absl::DataLossError(absl::StrCat(name, ": ", what, " at byte offset ", offset));
}

}  // namespace

uint32_t MaskedCrc32c(absl::string_view data) {
  const uint32_t crc = crc32c::Value(data);
  return ((crc >> 15) | (crc << 17)) + kMaskDelta;
}

std::string EncodeRecord(absl::string_view data) {
  std::string out;
  out.reserve(kHeaderBytes + data.size() + kFooterBytes);
  PutFixed64(&out, data.size());
  PutFixed32(&out, MaskedCrc32c(out));
  out.append(data.data(), data.size());
  PutFixed32(&out, MaskedCrc32c(data));
  return out;
}

double WallTimeNow() { return static_cast<double>(absl::ToUnixMicros(absl::Now())) / 1e6; }

absl::StatusOr<EventFileWriter> EventFileWriter::Create(const std::string& logdir, absl::string_view filename_suffix) {
  if (logdir.empty()) return absl::InvalidArgumentError("EventFileWriter: empty log directory");
  RETURN_IF_ERROR(MakeDirs(logdir));
  ASSIGN_OR_RETURN(auto path_fd, OpenNewEventFile(logdir, filename_suffix));
  EventFileWriter writer(std::move(path_fd.first), path_fd.second);
  tb::Event version;
  version.set_wall_time(WallTimeNow());
  version.set_file_version(kEventFileVersion);
  RETURN_IF_ERROR(writer.AddEvent(version));
  RETURN_IF_ERROR(writer.Flush());
  return writer;
}

EventFileWriter::EventFileWriter(EventFileWriter&& other) noexcept
    : path_(std::move(other.path_)),
      fd_(std::exchange(other.fd_, -1)),
      buffer_(std::move(other.buffer_)),
      status_(std::move(other.status_)) {}

EventFileWriter& EventFileWriter::operator=(EventFileWriter&& other) noexcept {
  if (this != &other) {
    CloseAndLog();
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
    buffer_ = std::move(other.buffer_);
    status_ = std::move(other.status_);
  }
  return *this;
}

EventFileWriter::~EventFileWriter() { CloseAndLog(); }

void EventFileWriter::CloseAndLog() {
  if (fd_ < 0) return;
  const absl::Status status = Close();
  if (!status.ok()) ZT_LOG(WARNING) << "closing a TensorBoard event file: " << status;
}

absl::Status EventFileWriter::CheckWritable() const {
  if (!status_.ok()) return status_;
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat(path_, ": event file is closed"));
  return absl::OkStatus();
}

absl::Status EventFileWriter::AddScalar(absl::string_view tag, float value, int64_t step) {
  return AddScalar(tag, value, step, WallTimeNow());
}

absl::Status EventFileWriter::AddScalar(absl::string_view tag, float value, int64_t step, double wall_time) {
  tb::Event event;
  event.set_wall_time(wall_time);
  event.set_step(step);
  tb::Summary::Value* v = event.mutable_summary()->add_value();
  v->set_tag(std::string(tag));
  v->set_simple_value(value);
  return AddEvent(event);
}

absl::Status EventFileWriter::AddEvent(const tb::Event& event) {
  RETURN_IF_ERROR(CheckWritable());
  std::string data;
  if (!event.SerializeToString(&data)) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": cannot serialize an Event"));
  }
  buffer_ += EncodeRecord(data);
  if (buffer_.size() >= kFlushAtBytes) return Flush();
  return absl::OkStatus();
}

absl::Status EventFileWriter::Flush() {
  RETURN_IF_ERROR(CheckWritable());
  status_ = internal::WriteAll(fd_, buffer_, path_);
  buffer_.clear();
  return status_;
}

absl::Status EventFileWriter::Close() {
  if (fd_ < 0) return CheckWritable();
  // After a failure the descriptor is still closed, and the failure returned again.
  absl::Status status = status_.ok() ? Flush() : status_;
  if (::close(std::exchange(fd_, -1)) != 0 && status.ok()) {
    const int err = errno;
    status = absl::Status(absl::ErrnoToStatusCode(err), absl::StrCat(path_, ": close failed: ", std::strerror(err)));
  }
  status_ = status;
  return status;
}

absl::StatusOr<std::vector<tb::Event>> ParseEventRecords(absl::string_view bytes, absl::string_view name) {
  std::vector<tb::Event> events;
  std::size_t offset = 0;
  while (offset < bytes.size()) {
    const absl::string_view rest = bytes.substr(offset);
    if (rest.size() < kHeaderBytes) {
      return DataLoss(name, offset,
                      absl::StrCat("truncated record header (", rest.size(), " of ", kHeaderBytes, " bytes)"));
    }
    const absl::string_view length_bytes = rest.substr(0, 8);
    const uint32_t length_crc = GetFixed32(rest.substr(8, 4));
    if (length_crc != MaskedCrc32c(length_bytes)) {
      return DataLoss(name, offset, "record length fails its CRC-32C");
    }
    const uint64_t length = GetFixed64(length_bytes);
    if (length > rest.size() - kHeaderBytes || rest.size() - kHeaderBytes - length < kFooterBytes) {
      return DataLoss(name, offset,
                      absl::StrCat("truncated record (", length, " data bytes and a 4-byte CRC declared, ",
                                   rest.size() - kHeaderBytes, " bytes left)"));
    }
    if (length > static_cast<uint64_t>(INT_MAX)) return DataLoss(name, offset, "record too large for an Event");
    const absl::string_view data = rest.substr(kHeaderBytes, length);
    if (GetFixed32(rest.substr(kHeaderBytes + length, 4)) != MaskedCrc32c(data)) {
      return DataLoss(name, offset, "record data fails its CRC-32C");
    }
    tb::Event& event = events.emplace_back();
    if (!event.ParseFromArray(data.data(), static_cast<int>(data.size()))) {
      return DataLoss(name, offset, "record is not a serialized Event");
    }
    offset += kHeaderBytes + length + kFooterBytes;
  }
  return events;
}

absl::StatusOr<std::vector<tb::Event>> ReadEventFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  return ParseEventRecords(bytes, path);
}

}  // namespace zt::monitor
