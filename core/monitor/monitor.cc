#include "core/monitor/monitor.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/util/status_macros.h"

namespace zt::monitor {

std::string MonitorLogDir(const MonitorWriterOptions& options) {
  const std::string& parent = options.output_path;
  const std::string& job = options.job_name;
  if (absl::StartsWith(job, "/") || parent.empty()) return job;
  if (job.empty()) return absl::EndsWith(parent, "/") ? parent : absl::StrCat(parent, "/");
  return absl::EndsWith(parent, "/") ? absl::StrCat(parent, job) : absl::StrCat(parent, "/", job);
}

absl::StatusOr<Monitor> Monitor::Create(const MonitorOptions& options) {
  Monitor monitor;
  if (options.tensorboard.enabled) {
    ASSIGN_OR_RETURN(EventFileWriter writer, EventFileWriter::Create(MonitorLogDir(options.tensorboard)),
                     _.WithPrefix("tensorboard"));
    monitor.tensorboard_.emplace(std::move(writer));
  }
  if (options.csv_monitor.enabled) {
    ASSIGN_OR_RETURN(CsvMonitor csv, CsvMonitor::Create(MonitorLogDir(options.csv_monitor)),
                     _.WithPrefix("csv_monitor"));
    monitor.csv_.emplace(std::move(csv));
  }
  return monitor;
}

absl::Status Monitor::WriteEvents(absl::Span<const ScalarEvent> events) {
  absl::Status first;
  if (tensorboard_) {
    absl::Status status;
    for (const ScalarEvent& event : events) {
      status = tensorboard_->AddScalar(event.tag, static_cast<float>(event.value), event.step);
      if (!status.ok()) break;
    }
    if (status.ok()) status = tensorboard_->Flush();
    first.Update(status);
  }
  if (csv_) first.Update(csv_->WriteEvents(events));
  return first;
}

absl::Status Monitor::Close() {
  if (!tensorboard_) return absl::OkStatus();
  return tensorboard_->Close();
}

}  // namespace zt::monitor
