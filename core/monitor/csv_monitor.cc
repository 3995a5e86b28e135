#include "core/monitor/csv_monitor.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/monitor/write_all.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"

namespace zt::monitor {
namespace {

constexpr char kLineEnd[] = "\r\n";  // csv.writer's default lineterminator

// A field as csv.writer (QUOTE_MINIMAL) writes it: quoted, with '"' doubled, when it holds the
// delimiter, the quote character or a line-end character.
std::string CsvField(absl::string_view field) {
  if (field.find_first_of(",\"\r\n") == absl::string_view::npos) return std::string(field);
  return absl::StrCat("\"", absl::StrReplaceAll(field, {{"\"", "\"\""}}), "\"");
}

absl::Status FileError(const std::string& path, absl::string_view what, int err) {
  return absl::Status(absl::ErrnoToStatusCode(err), absl::StrCat(path, ": ", what, ": ", std::strerror(err)));
}

// Appends `rows` to `path`, after `header` when the file is empty and `maybe_header` is set.
absl::Status AppendToFile(const std::string& path, bool maybe_header, absl::string_view header,
                          absl::string_view rows) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return FileError(path, "cannot open", errno);
  std::string text;
  if (maybe_header) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      return FileError(path, "cannot stat", err);
    }
    if (st.st_size == 0) text = std::string(header);
  }
  text.append(rows.data(), rows.size());
  absl::Status status = internal::WriteAll(fd, text, path);
  if (::close(fd) != 0 && status.ok()) status = FileError(path, "close failed", errno);
  return status;
}

}  // namespace

std::string CsvFileName(absl::string_view tag) {
  return absl::StrCat(absl::StrReplaceAll(tag, {{"/", "_"}, {" ", "_"}}), ".csv");
}

std::string CsvHeaderName(absl::string_view tag) {
  const std::size_t slash = tag.rfind('/');
  return std::string(slash == absl::string_view::npos ? tag : tag.substr(slash + 1));
}

std::string PythonFloatRepr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value < 0 ? "-inf" : "inf";
  // to_chars' shortest round-trip digits (as Python's repr chooses them), in "d.ddde±XX" form.
  char buf[64];
  const std::to_chars_result r = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::scientific);
  const absl::string_view sci(buf, static_cast<std::size_t>(r.ptr - buf));
  const bool negative = !sci.empty() && sci[0] == '-';
  const std::size_t e = sci.find('e');
  std::string digits;
  for (char c : sci.substr(negative ? 1 : 0, e - (negative ? 1 : 0))) {
    if (c != '.') digits.push_back(c);
  }
  const int exponent = std::atoi(std::string(sci.substr(e + 1)).c_str());
  const int ndigits = static_cast<int>(digits.size());
  // The decimal point sits after `point` digits: value = 0.<digits> * 10^point.
  const int point = exponent + 1;
  std::string out = negative ? "-" : "";
  if (point > -4 && point <= 16) {
    if (point <= 0) {
      absl::StrAppend(&out, "0.", std::string(-point, '0'), digits);
    } else if (point >= ndigits) {
      absl::StrAppend(&out, digits, std::string(point - ndigits, '0'), ".0");
    } else {
      absl::StrAppend(&out, digits.substr(0, point), ".", digits.substr(point));
    }
  } else {
    absl::StrAppend(&out, digits.substr(0, 1), ndigits > 1 ? "." : "", digits.substr(1), "e", exponent < 0 ? "-" : "+",
                    std::abs(exponent) < 10 ? "0" : "", std::abs(exponent));
  }
  return out;
}

absl::StatusOr<CsvMonitor> CsvMonitor::Create(const std::string& log_dir) {
  if (log_dir.empty()) return absl::InvalidArgumentError("csv_monitor: empty log directory");
  RETURN_IF_ERROR(MakeDirs(log_dir));
  return CsvMonitor(log_dir);
}

absl::Status CsvMonitor::WriteEvents(absl::Span<const ScalarEvent> events) {
  if (!status_.ok()) return status_;
  // Each file's rows, in the order its first event came: one append per file.
  struct Batch {
    std::string file;
    std::string header;
    std::string rows;
  };
  std::vector<Batch> batches;
  absl::flat_hash_map<std::string, std::size_t> index;
  for (const ScalarEvent& event : events) {
    std::string file = CsvFileName(event.tag);
    auto [it, inserted] = index.try_emplace(file, batches.size());
    if (inserted) {
      batches.push_back({std::move(file), absl::StrCat("step,", CsvField(CsvHeaderName(event.tag)), kLineEnd), ""});
    }
    absl::StrAppend(&batches[it->second].rows, event.step, ",", PythonFloatRepr(event.value), kLineEnd);
  }
  for (const Batch& batch : batches) {
    const bool first_write = !started_.contains(batch.file);
    status_ = AppendToFile(absl::StrCat(log_dir_, "/", batch.file), first_write, batch.header, batch.rows);
    if (!status_.ok()) return status_;
    started_.insert(batch.file);
  }
  return absl::OkStatus();
}

}  // namespace zt::monitor
