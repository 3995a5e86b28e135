// The monitors DeepSpeed's config turns on ("tensorboard", "csv_monitor"), behind one call: the
// engine hands each step's events to WriteEvents and every enabled writer gets them, as
// DeepSpeed's MonitorMaster does.
//
//   zt::monitor::MonitorOptions options;
//   options.tensorboard = {/*enabled=*/true, /*output_path=*/"runs", /*job_name=*/"bert"};
//   options.csv_monitor = {/*enabled=*/true, /*output_path=*/"csv", /*job_name=*/"bert"};
//   ASSIGN_OR_RETURN(zt::monitor::Monitor monitor, zt::monitor::Monitor::Create(options));
//   RETURN_IF_ERROR(monitor.WriteEvents({{"Train/Samples/train_loss", loss, samples}}));
//
// Like DeepSpeed, only rank 0 should write: build a Monitor there alone.
#ifndef ZEROTRAIN_CORE_MONITOR_MONITOR_H_
#define ZEROTRAIN_CORE_MONITOR_MONITOR_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/monitor/csv_monitor.h"
#include "core/monitor/scalar_event.h"
#include "core/monitor/tfevents.h"

namespace zt::monitor {

// One DeepSpeed monitor block: {"enabled", "output_path", "job_name"} (core/config's
// MonitorConfig carries the same three).
struct MonitorWriterOptions {
  bool enabled = false;
  // The parent of the job's directory; "" is the working directory (DeepSpeed's default).
  std::string output_path;
  std::string job_name = "DeepSpeedJobName";
};

struct MonitorOptions {
  MonitorWriterOptions tensorboard;  // event files for TensorBoard
  MonitorWriterOptions csv_monitor;  // one CSV file per metric
};

// Where a writer's files go: os.path.join(output_path, job_name), as DeepSpeed computes it
// ("runs" + "bert" -> "runs/bert"; "" + "bert" -> "bert"; an absolute job_name wins).
std::string MonitorLogDir(const MonitorWriterOptions& options);

// The enabled writers.  Movable; not thread-safe.
class Monitor {
 public:
  // Makes each enabled writer's directory and opens it (a new event file for TensorBoard).
  static absl::StatusOr<Monitor> Create(const MonitorOptions& options);

  // Whether any writer is enabled: the engine may skip gathering events when none is.
  bool enabled() const { return tensorboard_.has_value() || csv_.has_value(); }

  // Gives `events` to every enabled writer and flushes them: each step's numbers are in the
  // files when it returns.  A writer that fails does not stop the others; the first error is
  // returned (each writer's errors are sticky, so later calls return it again).
  absl::Status WriteEvents(absl::Span<const ScalarEvent> events);
  // Closes the event file (the CSV files are never left open).
  absl::Status Close();

  // The writers, or nullptr where disabled (tests, and to log where files go).
  const EventFileWriter* tensorboard() const { return tensorboard_ ? &*tensorboard_ : nullptr; }
  const CsvMonitor* csv_monitor() const { return csv_ ? &*csv_ : nullptr; }

 private:
  Monitor() = default;

  std::optional<EventFileWriter> tensorboard_;
  std::optional<CsvMonitor> csv_;
};

}  // namespace zt::monitor

#endif  // ZEROTRAIN_CORE_MONITOR_MONITOR_H_
