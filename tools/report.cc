// report: one self-contained HTML page of charts from a training run's csv_monitor files
// (DeepSpeed's per-metric CSVs: core/monitor/csv_monitor.h).
//
//   bazel run //tools:report -- output_dir/ds_logs                 # writes ds_logs/report.html
//   bazel run //tools:report -- output_dir --out /tmp/run.html     # every job under output_dir
//
// RUN_DIR is a csv_monitor directory or any directory above one: each directory within three
// levels that holds "step,<metric>" CSV files is one job with its own section
// (tools/report_lib.h).  The page needs no network: its data, style and script are inline.
// Exit status: 0 written, 1 the run cannot be read (the reason on stderr, naming the file and
// line), 2 usage error.
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/util/file_util.h"
#include "tools/flag_value.h"
#include "tools/report_lib.h"

namespace {

constexpr char kUsage[] =
    "usage: report RUN_DIR [--out FILE]\n"
    "\n"
    "Writes one self-contained HTML page (no network needed) with charts of a training run's\n"
    "csv_monitor files: loss, learning rate, throughput, utilisation, memory, loss scale and any\n"
    "other metric, with the last value, min and max of each.\n"
    "\n"
    "  RUN_DIR     a csv_monitor directory (output_path/job_name, holding Train_Samples_*.csv) or a\n"
    "              directory above one or more: each directory within 3 levels holding\n"
    "              \"step,<metric>\" CSV files is one job on the page\n"
    "  --out FILE  where to write the page (default RUN_DIR/report.html)\n"
    "\n"
    "Exit status: 0 written, 1 the run cannot be read (no such directory, no metric CSV, a\n"
    "malformed file: named with its line), 2 usage error.\n";

int UsageError(const std::string& why) {
  std::cerr << "report: error: " << why << "\n\n" << kUsage;
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  namespace report = zt::tools::report;
  const std::vector<std::string> args(argv + 1, argv + argc);
  std::vector<std::string> positional;
  std::string out;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    std::string value;
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    } else if (zt::tools::TakeFlagValue(args, &i, "--out", &value) ||
               zt::tools::TakeFlagValue(args, &i, "-o", &value)) {
      if (value.empty()) return UsageError("--out needs a file name");
      out = value;
    } else if (a == "--out" || a == "-o") {
      return UsageError(a + " needs a value");
    } else if (absl::StartsWith(a, "-") && a != "-") {
      return UsageError("unknown flag " + a);
    } else {
      positional.push_back(a);
    }
  }
  if (positional.empty()) return UsageError("needs RUN_DIR");
  if (positional.size() > 1) return UsageError("unexpected argument \"" + positional[1] + "\"");
  if (positional[0].empty()) return UsageError("RUN_DIR is empty");

  const std::string run_dir = zt::UserPath(positional[0]);
  const std::string out_path = out.empty() ? run_dir + "/report.html" : zt::UserPath(out);
  absl::StatusOr<report::RunData> run = report::LoadRun(run_dir);
  if (!run.ok()) {
    std::cerr << "report: error: " << run.status().message() << "\n";
    return 1;
  }
  for (const std::string& note : run->notes) std::cerr << "report: note: " << note << "\n";
  const absl::Status written = zt::WriteFileAtomically(out_path, report::RenderHtml(*run, absl::Now()));
  if (!written.ok()) {
    std::cerr << "report: error: " << written.message() << "\n";
    return 1;
  }
  const int charts = report::CountCharts(*run);
  std::cout << "report: wrote " << out_path << " (" << run->jobs.size()
            << (run->jobs.size() == 1 ? " job, " : " jobs, ") << charts << (charts == 1 ? " chart" : " charts")
            << ")\n";
  return 0;
}
