// //tools:report as a library: a training run's csv_monitor files (core/monitor/csv_monitor.h) read
// back and turned into one self-contained HTML page of charts.
//
//   ASSIGN_OR_RETURN(zt::tools::report::RunData run, zt::tools::report::LoadRun("output/ds_logs"));
//   RETURN_IF_ERROR(zt::WriteFileAtomically("report.html", zt::tools::report::RenderHtml(run, absl::Now())));
//
// Input.  A metric CSV is DeepSpeed's csv_monitor file: header "step,<metric>" (the tag's last
// '/'-separated part, quoted as csv.writer quotes), then "<step>,<value>" rows, lines ending in
// "\r\n" or "\n".  A value may be "nan"/"inf"/"-inf": kept in the counts, left out of the charts.
// A DeepSpeed run that resumed repeats the header mid-file and may log a step again: a repeated
// header is skipped, and a step logged twice keeps its last row (the resumed run's).  A last line
// without its line end is a row still being written (the run is live), even when it parses: it
// is skipped with a note.  Anything else that is not a header or a 2-field numeric row is an error
// "<file>:<line>: <why>" (kInvalidArgument).
//
// Jobs.  LoadRun looks at RUN_DIR and its subdirectories down to kMaxSearchDepth levels (hidden
// ones skipped) for *.csv files whose first field is "step"; each directory holding some is one
// job, named by its path relative to RUN_DIR (RUN_DIR itself: its own base name).  Other CSV
// files (a data set, predictions) are ignored with a note.
//
// Charts.  A job's metrics are grouped by metric name (GroupCharts): "Loss" (train_loss,
// eval_loss), "Learning rate" (lr), "Throughput" (samples_per_sec left axis, tokens_per_sec right
// axis), "Utilisation" (tflops left, mfu right), "Memory" (every *_gib), "Loss scale"
// (loss_scale), and each other metric on a chart of its own under "Other metrics".  RenderHtml
// embeds the finite points as JSON in the page and a small inline script draws each chart as SVG
// (axes, ticks, legend, one polyline per metric); the last/min/max tables are plain HTML.  The
// page loads nothing from anywhere.  For tests and tools the script leaves, on <body>,
// data-rendered="<charts drawn>", and writes any error into <pre id="report-errors">.
#ifndef ZEROTRAIN_TOOLS_REPORT_LIB_H_
#define ZEROTRAIN_TOOLS_REPORT_LIB_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace zt::tools::report {

// How deep below RUN_DIR LoadRun looks for metric CSVs (RUN_DIR/a/b/c is depth 3).
inline constexpr int kMaxSearchDepth = 3;

// One metric CSV, read.
struct MetricSeries {
  std::string path;  // the file as read (errors and notes name it)
  std::string file;  // its base name: "Train_Samples_train_loss.csv"
  std::string name;  // the header's metric: "train_loss"
  // The tag as far as the file name tells it: "Train/Samples/train_loss" (the prefix before
  // "_<name>.csv" with '_' read as '/', which is right for DeepSpeed's tags); the file's stem
  // when the name is not its suffix.
  std::string tag;
  // The finite points, by step (a step logged twice: the later row).
  std::vector<double> steps;
  std::vector<double> values;
  std::int64_t rows = 0;           // data rows read (repeated headers not counted)
  std::int64_t non_finite = 0;     // rows whose value is nan/inf: not drawn
  std::int64_t superseded = 0;     // rows replaced by a later row of the same step
  bool has_last = false;           // some row survived
  double last_step = 0;            // the highest step's row...
  double last_value = 0;           // ...and its value, finite or not
  std::vector<std::string> notes;  // things the reader skipped, for the page ("x.csv:9: ...")

  // Smallest finite value and its step; false when there is none.
  bool Min(double* value, double* step) const;
  bool Max(double* value) const;
};

// True when `text` looks like a metric CSV: its first field is "step" (so it is read, and any
// other fault in it is an error rather than a reason to ignore it).
bool LooksLikeMetricCsv(absl::string_view text);

// Reads one metric CSV's text; `path` names the file in errors ("<path>:<line>: <why>") and in
// the result.  kInvalidArgument for a bad header, a wrong field count, a non-numeric field or a
// non-finite step.
absl::StatusOr<MetricSeries> ParseMetricCsv(absl::string_view text, const std::string& path);

// One directory of metric CSVs.
struct Job {
  std::string name;                  // relative to RUN_DIR ("ds_logs/my_job"); RUN_DIR itself: its base name
  std::string dir;                   // the directory
  std::vector<MetricSeries> series;  // by file name
};

struct RunData {
  std::string run_dir;
  std::vector<Job> jobs;           // RUN_DIR's own first, then depth-first by name
  std::vector<std::string> notes;  // ignored files, skipped lines: for stderr and the page
};

// Finds and reads every job under `run_dir`.  kNotFound when `run_dir` is not a directory or holds
// no metric CSV within kMaxSearchDepth levels; the first malformed CSV's kInvalidArgument.
absl::StatusOr<RunData> LoadRun(const std::string& run_dir);

// A chart: metrics of one job drawn together.
struct ChartSeries {
  int series = 0;  // index into Job::series
  int axis = 0;    // 0 left, 1 right
  std::string label;
};
struct Chart {
  std::string key;    // "loss", "lr", "throughput", "utilisation", "memory", "loss_scale", "other"
  std::string title;  // "Loss", ..., or the metric's tag under "Other metrics"
  bool other = false;
  std::vector<std::string> axis_labels;  // one per axis used (1 or 2)
  std::vector<ChartSeries> series;
};

// The job's charts in page order; groups whose files are absent are left out.
std::vector<Chart> GroupCharts(const Job& job);

// Text for HTML element content and attribute values: & < > " ' escaped.
std::string HtmlEscape(absl::string_view text);
// A JSON text made safe inside <script>: '<', '>', '&', U+2028 and U+2029 written as \uXXXX
// escapes (they can only occur inside JSON strings, where the escape means the same), so no
// "</script>" or "<!--" in a job or metric name can end or change the script element.
std::string JsonForScript(absl::string_view json);

// At most about `max_points` of a series' points for drawing: a longer series is cut into
// max_points / 2 runs of consecutive points and each run keeps its lowest and highest value (in
// step order), so spikes, the first and the last point survive and a long run's page stays small.
struct Points {
  std::vector<double> steps, values;
};
Points DrawnPoints(const std::vector<double>& steps, const std::vector<double>& values, std::size_t max_points);
// What RenderHtml keeps of a series (the tables below each chart use every point).
inline constexpr std::size_t kMaxDrawnPoints = 4000;

// The page: a header (run dir, `generated`, one summary row per job), then per job its charts.
std::string RenderHtml(const RunData& run, absl::Time generated);

// Number of charts RenderHtml draws for `run` (what data-rendered says once the script ran).
int CountCharts(const RunData& run);

}  // namespace zt::tools::report

#endif  // ZEROTRAIN_TOOLS_REPORT_LIB_H_
