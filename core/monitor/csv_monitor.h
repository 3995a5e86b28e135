// DeepSpeed's csv_monitor: one CSV file per metric, appended as training goes, in the layout
// DeepSpeed writes (deepspeed/monitor/csv_monitor.py), so scripts that read its files read ours.
//
//   ASSIGN_OR_RETURN(zt::monitor::CsvMonitor csv, zt::monitor::CsvMonitor::Create("out/my_job"));
//   RETURN_IF_ERROR(csv.WriteEvents({{"Train/Samples/train_loss", 2.5, 64}}));
//
// makes out/my_job/Train_Samples_train_loss.csv holding
//
//   step,train_loss\r\n
//   64,2.5\r\n
//
// The file name is the tag with '/' and ' ' made '_', plus ".csv"; the header is "step," and the
// tag's last '/'-separated part; rows are "<step>,<value>"; lines end in "\r\n" (Python's
// csv.writer), a header field holding ',', '"', '\r' or '\n' is quoted the way csv.writer quotes
// it, and values are printed as Python prints a float (repr: "0.1", "2.0", "1e-05", "nan").
//
// One difference: DeepSpeed writes the header the first time a process writes a file, so a
// resumed job repeats it mid-file; here it is written only when the file is empty, so a resumed
// job's rows follow the old ones under one header.
#ifndef ZEROTRAIN_CORE_MONITOR_CSV_MONITOR_H_
#define ZEROTRAIN_CORE_MONITOR_CSV_MONITOR_H_

#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/monitor/scalar_event.h"

namespace zt::monitor {

// Writes DeepSpeed's per-metric CSV files in one directory.  Every WriteEvents call reaches the
// files (the OS) before it returns: each file a batch touches is opened for appending, written
// once and closed, so no descriptors stay open and another process may read the files at any
// time.  The first failure is sticky.  Movable; not thread-safe.
class CsvMonitor {
 public:
  // Makes `log_dir` (mkdir -p).  DeepSpeed's is os.path.join(output_path, job_name).
  static absl::StatusOr<CsvMonitor> Create(const std::string& log_dir);

  const std::string& log_dir() const { return log_dir_; }

  // Appends one row per event to its metric's file, in order; a header first into a file that is
  // empty.  Errors name the file.
  absl::Status WriteEvents(absl::Span<const ScalarEvent> events);

 private:
  explicit CsvMonitor(std::string log_dir) : log_dir_(std::move(log_dir)) {}

  std::string log_dir_;
  // File names already written by this monitor: their header question is settled.
  absl::flat_hash_set<std::string> started_;
  absl::Status status_;  // the first failure, sticky
};

// "Train/Samples/train_loss" -> "Train_Samples_train_loss.csv".
std::string CsvFileName(absl::string_view tag);
// "Train/Samples/train_loss" -> "train_loss": the header's second column.
std::string CsvHeaderName(absl::string_view tag);
// A double as Python's repr() prints it: the shortest digits that read back to the same double,
// fixed-point for exponents -5 < e < 16 (with ".0" on whole numbers), else "1.5e-05"/"1e+16"
// style; "inf", "-inf", "nan".
std::string PythonFloatRepr(double value);

}  // namespace zt::monitor

#endif  // ZEROTRAIN_CORE_MONITOR_CSV_MONITOR_H_
