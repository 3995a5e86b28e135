#include "tools/report_lib.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <system_error>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"

namespace zt::tools::report {
namespace {

namespace fs = std::filesystem;

// ---- CSV records ------------------------------------------------------------------------------

// One record of a CSV text (RFC 4180 / Python's csv: quoted fields may hold ',', '""' and line
// ends), with the line it starts on.
struct Record {
  std::vector<std::string> fields;
  int line = 0;
  bool terminated = false;  // ended by a line end (not by the end of the text)
  std::string error;        // a quoting fault; fields are then incomplete
};

class CsvReader {
 public:
  explicit CsvReader(absl::string_view text) : text_(text) {}

  // The line the next record starts on.
  int line() const { return line_; }

  // The next record; false at the end of the text.
  bool Next(Record* r) {
    if (pos_ >= text_.size()) return false;
    *r = Record();
    r->line = line_;
    std::string field;
    while (true) {
      if (pos_ < text_.size() && text_[pos_] == '"') {
        // Quoted field: up to the lone closing quote.
        ++pos_;
        bool closed = false;
        while (pos_ < text_.size()) {
          const char c = text_[pos_++];
          if (c == '"') {
            if (pos_ < text_.size() && text_[pos_] == '"') {
              field.push_back('"');
              ++pos_;
            } else {
              closed = true;
              break;
            }
          } else {
            if (c == '\n' || (c == '\r' && (pos_ >= text_.size() || text_[pos_] != '\n'))) ++line_;
            field.push_back(c);
          }
        }
        if (!closed) {
          r->error = "quoted field not closed";
          r->fields.push_back(std::move(field));
          return true;
        }
        if (pos_ < text_.size() && text_[pos_] != ',' && text_[pos_] != '\r' && text_[pos_] != '\n') {
          r->error = "unexpected character after a quoted field";
          // Skip the rest of the line so the next record starts fresh.
          while (pos_ < text_.size() && text_[pos_] != '\n') ++pos_;
          if (pos_ < text_.size()) {
            ++pos_;
            ++line_;
            r->terminated = true;
          }
          r->fields.push_back(std::move(field));
          return true;
        }
      } else {
        while (pos_ < text_.size() && text_[pos_] != ',' && text_[pos_] != '\r' && text_[pos_] != '\n') {
          field.push_back(text_[pos_++]);
        }
      }
      r->fields.push_back(std::move(field));
      field.clear();
      if (pos_ >= text_.size()) return true;  // the end of the text, no line end
      const char c = text_[pos_++];
      if (c == ',') continue;
      // "\r\n", "\n" or a lone "\r" ends the record.
      if (c == '\r' && pos_ < text_.size() && text_[pos_] == '\n') ++pos_;
      ++line_;
      r->terminated = true;
      return true;
    }
  }

 private:
  absl::string_view text_;
  std::size_t pos_ = 0;
  int line_ = 1;
};

std::string Quote(absl::string_view s) {
  constexpr std::size_t kMax = 60;
  std::string out = "\"";
  for (char c : s.substr(0, kMax)) {
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"') {
      out += "\\\"";
    } else {
      out.push_back(c);
    }
  }
  if (s.size() > kMax) out += "...";
  return out + "\"";
}

absl::Status LineError(const std::string& path, int line, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(path, ":", line, ": ", why));
}

absl::string_view StripBom(absl::string_view text) {
  absl::ConsumePrefix(&text, "\xEF\xBB\xBF");
  return text;
}

std::string BaseName(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The tag the file name stands for (see MetricSeries::tag).
std::string TagFromFile(absl::string_view file, absl::string_view name) {
  absl::string_view stem = file;
  absl::ConsumeSuffix(&stem, ".csv");
  const std::string suffix = absl::StrReplaceAll(name, {{"/", "_"}, {" ", "_"}});
  if (stem == suffix) return std::string(name);
  if (stem.size() > suffix.size() + 1 && absl::EndsWith(stem, suffix) && stem[stem.size() - suffix.size() - 1] == '_') {
    const absl::string_view prefix = stem.substr(0, stem.size() - suffix.size() - 1);
    return absl::StrCat(absl::StrReplaceAll(prefix, {{"_", "/"}}), "/", name);
  }
  return std::string(stem);
}

// ---- charts -----------------------------------------------------------------------------------

// Where a metric goes: its group (index into kGroups), its axis kind in that chart, and its
// rank among the group's metrics.
struct Placement {
  int group = -1;
  int axis = 0;
  int rank = 0;
};

struct GroupInfo {
  const char* key;
  const char* title;
  const char* axis_labels[2];
};

constexpr GroupInfo kGroups[] = {
    {"loss", "Loss", {"loss", nullptr}},
    {"lr", "Learning rate", {"learning rate", nullptr}},
    {"throughput", "Throughput", {"samples/s", "tokens/s"}},
    {"utilisation", "Utilisation", {"TFLOPS", "MFU"}},
    {"memory", "Memory", {"GiB", nullptr}},
    {"loss_scale", "Loss scale", {"loss scale", nullptr}},
};

Placement Place(absl::string_view name) {
  static const auto* const kKnown = new std::map<std::string, Placement, std::less<>>{
      {"train_loss", {0, 0, 0}},
      {"eval_loss", {0, 0, 1}},
      {"lr", {1, 0, 0}},
      {"samples_per_sec", {2, 0, 0}},
      {"tokens_per_sec", {2, 1, 1}},
      {"tflops", {3, 0, 0}},
      {"mfu", {3, 1, 1}},
      {"gpu_mem_allocated_gib", {4, 0, 0}},
      {"gpu_mem_reserved_gib", {4, 0, 1}},
      {"gpu_mem_peak_gib", {4, 0, 2}},
      {"host_rss_gib", {4, 0, 3}},
      {"pinned_gib", {4, 0, 4}},
      {"loss_scale", {5, 0, 0}},
  };
  const auto it = kKnown->find(name);
  if (it != kKnown->end()) return it->second;
  if (absl::EndsWith(name, "_gib")) return {4, 0, 5};
  return {};
}

// Labels are metric names; where two metrics of a chart share one (Train/.../x and Eval/.../x),
// their tags.
void LabelSeries(const Job& job, Chart* chart) {
  std::map<std::string, int> count;
  for (const ChartSeries& s : chart->series) ++count[job.series[s.series].name];
  for (ChartSeries& s : chart->series) {
    const MetricSeries& m = job.series[s.series];
    s.label = count[m.name] > 1 ? m.tag : m.name;
  }
}

}  // namespace

// ---- MetricSeries -----------------------------------------------------------------------------

bool MetricSeries::Min(double* value, double* step) const {
  if (values.empty()) return false;
  const std::size_t i = std::min_element(values.begin(), values.end()) - values.begin();
  *value = values[i];
  *step = steps[i];
  return true;
}

bool MetricSeries::Max(double* value) const {
  if (values.empty()) return false;
  *value = *std::max_element(values.begin(), values.end());
  return true;
}

bool LooksLikeMetricCsv(absl::string_view text) {
  text = StripBom(text);
  const std::size_t end = text.find_first_of(",\r\n");
  return text.substr(0, end) == "step";
}

absl::StatusOr<MetricSeries> ParseMetricCsv(absl::string_view text, const std::string& path) {
  text = StripBom(text);
  MetricSeries series;
  series.path = path;
  series.file = BaseName(path);
  if (text.empty()) return LineError(path, 1, "empty file: want a \"step,<metric>\" header");

  CsvReader reader(text);
  Record header;
  reader.Next(&header);
  if (!header.error.empty()) return LineError(path, header.line, absl::StrCat("bad header: ", header.error));
  if (header.fields.size() != 2 || header.fields[0] != "step" || header.fields[1].empty()) {
    return LineError(path, header.line,
                     absl::StrCat("bad header ", Quote(absl::StrJoin(header.fields, ",")),
                                  ": want \"step,<metric>\" (DeepSpeed's csv_monitor)"));
  }
  series.name = header.fields[1];
  series.tag = TagFromFile(series.file, series.name);

  struct Row {
    double step;
    double value;
    std::int64_t order;
  };
  std::vector<Row> rows;
  Record r;
  while (reader.Next(&r)) {
    if (r.fields.size() == 1 && r.fields[0].empty() && r.error.empty()) continue;  // a blank line
    if (r.fields == header.fields && r.error.empty()) continue;  // DeepSpeed's header again: a resumed run
    // A last line with no line end: a row being written right now, even when what is there
    // parses ("5e-0" of "5e-05").  csv_monitor ends every row.
    if (!r.terminated && reader.line() == r.line) {
      series.notes.push_back(
          absl::StrCat(path, ":", r.line, ": incomplete last line skipped (no line end; is the run still writing?)"));
      continue;
    }
    if (!r.error.empty()) {
      return LineError(path, r.line, r.error);
    }
    if (r.fields.size() != 2) {
      return LineError(
          path, r.line,
          absl::StrCat(r.fields.size(), r.fields.size() == 1 ? " field" : " fields", ", want 2 (step,value)"));
    }
    double step = 0, value = 0;
    if (!absl::SimpleAtod(r.fields[0], &step)) {
      return LineError(path, r.line, absl::StrCat("step ", Quote(r.fields[0]), " is not a number"));
    }
    if (!std::isfinite(step)) {
      return LineError(path, r.line, absl::StrCat("step ", Quote(r.fields[0]), " is not finite"));
    }
    if (!absl::SimpleAtod(r.fields[1], &value)) {
      return LineError(path, r.line, absl::StrCat("value ", Quote(r.fields[1]), " is not a number"));
    }
    rows.push_back({step, value, static_cast<std::int64_t>(rows.size())});
  }
  series.rows = static_cast<std::int64_t>(rows.size());

  // By step; of the rows of one step the last written wins.
  std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.step < b.step; });
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (i + 1 < rows.size() && rows[i + 1].step == rows[i].step) {
      ++series.superseded;
      continue;
    }
    const Row& row = rows[i];
    series.has_last = true;
    series.last_step = row.step;
    series.last_value = row.value;
    if (!std::isfinite(row.value)) {
      ++series.non_finite;
      continue;
    }
    series.steps.push_back(row.step);
    series.values.push_back(row.value);
  }
  return series;
}

// ---- jobs -------------------------------------------------------------------------------------

namespace {

absl::Status ScanDir(const fs::path& dir, const std::string& name, int depth, RunData* run) {
  std::error_code ec;
  std::vector<fs::path> csvs;
  std::vector<std::pair<std::string, fs::path>> subdirs;
  fs::directory_iterator it(dir, ec), end;
  if (ec) {
    if (depth == 0) return absl::NotFoundError(absl::StrCat(dir.string(), ": cannot list: ", ec.message()));
    run->notes.push_back(absl::StrCat("skipped ", dir.string(), ": cannot list: ", ec.message()));
    return absl::OkStatus();
  }
  for (; it != end; it.increment(ec)) {
    if (ec) break;
    const fs::path& p = it->path();
    const std::string base = p.filename().string();
    std::error_code type_ec;
    if (it->is_directory(type_ec)) {
      if (depth < kMaxSearchDepth && !absl::StartsWith(base, ".")) subdirs.emplace_back(base, p);
    } else if (absl::EndsWith(base, ".csv") && it->is_regular_file(type_ec)) {
      csvs.push_back(p);
    }
  }
  std::sort(csvs.begin(), csvs.end());
  std::sort(subdirs.begin(), subdirs.end());

  Job job;
  job.name = name;
  job.dir = dir.string();
  for (const fs::path& p : csvs) {
    ASSIGN_OR_RETURN(std::string text, ReadFileToString(p.string()));
    if (!LooksLikeMetricCsv(text)) {
      run->notes.push_back(
          absl::StrCat("ignored ", p.string(), ": not a metric CSV (its first line is not \"step,<metric>\")"));
      continue;
    }
    ASSIGN_OR_RETURN(MetricSeries series, ParseMetricCsv(text, p.string()));
    for (const std::string& note : series.notes) run->notes.push_back(note);
    job.series.push_back(std::move(series));
  }
  if (!job.series.empty()) run->jobs.push_back(std::move(job));
  for (const auto& [base, p] : subdirs) {
    RETURN_IF_ERROR(ScanDir(p, depth == 0 ? base : absl::StrCat(name, "/", base), depth + 1, run));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RunData> LoadRun(const std::string& run_dir) {
  if (!IsDirectory(run_dir)) {
    return absl::NotFoundError(
        absl::StrCat(run_dir, PathExists(run_dir) ? ": not a directory" : ": no such directory"));
  }
  RunData run;
  run.run_dir = run_dir;
  fs::path abs = fs::absolute(fs::path(run_dir)).lexically_normal();
  std::string root_name = abs.filename().string();
  if (root_name.empty()) root_name = abs.parent_path().filename().string();
  if (root_name.empty()) root_name = abs.string();

  // The root job is named by its base name, its subdirectories by their path relative to it.
  RunData scanned;
  RETURN_IF_ERROR(ScanDir(fs::path(run_dir), "", 0, &scanned));
  for (Job& job : scanned.jobs) {
    if (job.name.empty()) job.name = root_name;
    run.jobs.push_back(std::move(job));
  }
  run.notes = std::move(scanned.notes);
  if (run.jobs.empty()) {
    return absl::NotFoundError(absl::StrCat("no metric CSV files (DeepSpeed csv_monitor's \"step,<metric>\" files) in ",
                                            run_dir, " or its subdirectories down to ", kMaxSearchDepth, " levels"));
  }
  return run;
}

// ---- charts -----------------------------------------------------------------------------------

std::vector<Chart> GroupCharts(const Job& job) {
  constexpr int kNumGroups = sizeof(kGroups) / sizeof(kGroups[0]);
  std::vector<std::vector<std::pair<int, int>>> members(kNumGroups);  // (rank, series index)
  std::vector<int> other;
  for (int i = 0; i < static_cast<int>(job.series.size()); ++i) {
    const Placement p = Place(job.series[i].name);
    if (p.group < 0) {
      other.push_back(i);
    } else {
      members[p.group].emplace_back(p.rank, i);
    }
  }
  std::vector<Chart> charts;
  for (int g = 0; g < kNumGroups; ++g) {
    if (members[g].empty()) continue;
    std::stable_sort(members[g].begin(), members[g].end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    Chart chart;
    chart.key = kGroups[g].key;
    chart.title = kGroups[g].title;
    // The left axis' metric absent: the right axis' moves to the left.
    bool has_left = false;
    for (const auto& [rank, i] : members[g]) has_left |= Place(job.series[i].name).axis == 0;
    bool has_right = false;
    for (const auto& [rank, i] : members[g]) {
      ChartSeries cs;
      cs.series = i;
      cs.axis = has_left ? Place(job.series[i].name).axis : 0;
      has_right |= cs.axis == 1;
      chart.series.push_back(cs);
    }
    chart.axis_labels.push_back(kGroups[g].axis_labels[has_left ? 0 : 1]);
    if (has_right) chart.axis_labels.push_back(kGroups[g].axis_labels[1]);
    LabelSeries(job, &chart);
    charts.push_back(std::move(chart));
  }
  for (int i : other) {
    Chart chart;
    chart.key = "other";
    chart.title = job.series[i].tag;
    chart.other = true;
    chart.axis_labels.push_back(job.series[i].name);
    chart.series.push_back({i, 0, job.series[i].name});
    charts.push_back(std::move(chart));
  }
  return charts;
}

int CountCharts(const RunData& run) {
  int n = 0;
  for (const Job& job : run.jobs) n += static_cast<int>(GroupCharts(job).size());
  return n;
}

}  // namespace zt::tools::report
