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
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "core/util/file_util.h"
#include "core/util/status_macros.h"
#include "nlohmann/json.hpp"

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

// ---- numbers for people -----------------------------------------------------------------------

std::string FormatValue(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  return absl::StrFormat("%.6g", v);
}

std::string FormatStep(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15) return absl::StrFormat("%.0f", v);
  return FormatValue(v);
}

std::string Plural(std::int64_t n, absl::string_view one, absl::string_view many) {
  return absl::StrCat(n, " ", n == 1 ? one : many);
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

// ---- HTML -------------------------------------------------------------------------------------

constexpr const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                   "#9467bd", "#8c564b", "#e377c2", "#17becf"};

constexpr char kStyle[] = R"css(
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1b1f24; background: #f6f7f9; }
header, section.job { max-width: 1600px; margin: 0 auto; padding: 16px 24px; }
header { border-bottom: 1px solid #d8dce2; background: #fff; max-width: none; }
h1 { font-size: 20px; margin: 0 0 6px; }
h2 { font-size: 18px; margin: 18px 0 6px; }
h3 { font-size: 15px; margin: 20px 0 6px; color: #444; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, monospace; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 8px; text-align: right; border-bottom: 1px solid #e3e6ea; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { font-weight: 600; color: #444; }
.meta { color: #555; margin: 2px 0; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
figure.chart { margin: 0; background: #fff; border: 1px solid #d8dce2; border-radius: 6px; padding: 10px 12px; max-width: 100%; box-sizing: border-box; overflow-x: auto; }
figure.chart figcaption { font-weight: 600; margin-bottom: 4px; }
.plot svg { max-width: 100%; height: auto; display: block; }
.plot .grid { stroke: #eceef1; }
.plot .axis, .plot .tick { stroke: #777; }
.plot text { font: 11px system-ui, sans-serif; fill: #333; }
.plot .axis-label { font-size: 12px; fill: #555; }
.plot .empty { font-size: 13px; fill: #999; }
table.stats { margin-top: 6px; font-size: 12.5px; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; vertical-align: baseline; }
.note { color: #8a5a00; font-size: 12.5px; margin: 4px 0 0; }
#report-errors { color: #b00020; background: #fff0f0; border: 1px solid #f3b5b5; padding: 8px; margin: 12px 24px; white-space: pre-wrap; }
#report-errors:empty { display: none; }
)css";

// Draws every chart of the embedded data; leaves data-rendered on <body> and errors in
// #report-errors.  No HTML is built from strings: names reach the page as text nodes and
// attribute values only.
constexpr char kScript[] = R"js(
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var errors = document.getElementById("report-errors");
  function fail(where, e) {
    errors.textContent += where + ": " + (e && e.stack ? e.stack : String(e)) + "\n";
  }
  window.addEventListener("error", function (ev) { fail("page", ev.message); });

  function el(name, attrs, parent) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, String(attrs[k]));
    if (parent) parent.appendChild(e);
    return e;
  }
  function label(parent, x, y, s, attrs) {
    var a = {x: x, y: y};
    for (var k in attrs) a[k] = attrs[k];
    var t = el("text", a, parent);
    t.textContent = s;
    return t;
  }
  function short(v) { return String(Number(v.toPrecision(4))); }
  function fmt(v) {
    var a = Math.abs(v);
    if (a === 0) return "0";
    if (a >= 1e9) return short(v / 1e9) + "G";
    if (a >= 1e6) return short(v / 1e6) + "M";
    if (a >= 1e4) return short(v / 1e3) + "k";
    if (a < 1e-3) return v.toExponential(1);
    return short(v);
  }
  function extent(arrays) {
    var lo = Infinity, hi = -Infinity;
    arrays.forEach(function (a) {
      for (var i = 0; i < a.length; i++) {
        if (a[i] < lo) lo = a[i];
        if (a[i] > hi) hi = a[i];
      }
    });
    if (lo > hi) { lo = 0; hi = 1; }
    return [lo, hi];
  }
  // A domain widened to round tick values, and those ticks (about n of them).
  function scale(lo, hi, n) {
    if (!(hi > lo)) {
      var pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
      lo -= pad;
      hi += pad;
    }
    var raw = (hi - lo) / n, p = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / p;
    var step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
    var a = Math.floor(lo / step), b = Math.ceil(hi / step), ticks = [];
    for (var i = a; i <= b && ticks.length < 50; i++) ticks.push(i * step);
    return {lo: a * step, hi: b * step, ticks: ticks};
  }

  function draw(chart) {
    var host = document.getElementById(chart.id);
    var two = chart.axes.length > 1;
    var W = 640, m = {top: 14, right: two ? 70 : 20, bottom: 46, left: 70};
    // Legend rows under the plot, laid out by an estimate of each label's width.
    var items = [], x = m.left, rows = 1;
    chart.series.forEach(function (s) {
      var text = s.label + (two ? (s.axis ? " (right)" : " (left)") : "");
      var w = 26 + 6.5 * text.length;
      if (x + w > W - m.right && x > m.left) { x = m.left; rows++; }
      items.push({text: text, x: x, row: rows - 1, color: s.color});
      x += w + 14;
    });
    var ph = 220, pw = W - m.left - m.right, H = m.top + ph + m.bottom + 8 + rows * 18;
    var xs = scale.apply(null, extent(chart.series.map(function (s) { return s.x; })).concat([7]));
    var ys = chart.axes.map(function (_, ax) {
      var e = extent(chart.series.filter(function (s) { return s.axis === ax; }).map(function (s) { return s.y; }));
      return scale(e[0], e[1], 5);
    });
    function X(v) { return m.left + (v - xs.lo) / (xs.hi - xs.lo) * pw; }
    function Y(ax, v) { var s = ys[ax]; return m.top + ph - (v - s.lo) / (s.hi - s.lo) * ph; }

    var svg = el("svg", {viewBox: "0 0 " + W + " " + H, width: W, height: H, role: "img",
                         "data-key": chart.key}, host);
    svg.setAttribute("aria-label", chart.title);
    var g = el("g", {"class": "axes"}, svg);
    xs.ticks.forEach(function (t) {
      var x = X(t);
      el("line", {"class": "grid", x1: x, x2: x, y1: m.top, y2: m.top + ph}, g);
      el("line", {"class": "tick", x1: x, x2: x, y1: m.top + ph, y2: m.top + ph + 5}, g);
      label(g, x, m.top + ph + 18, fmt(t), {"text-anchor": "middle"});
    });
    ys.forEach(function (s, ax) {
      var edge = ax ? m.left + pw : m.left, dir = ax ? 1 : -1;
      s.ticks.forEach(function (t) {
        var y = Y(ax, t);
        if (!ax) el("line", {"class": "grid", x1: m.left, x2: m.left + pw, y1: y, y2: y}, g);
        el("line", {"class": "tick", x1: edge, x2: edge + 5 * dir, y1: y, y2: y}, g);
        label(g, edge + 8 * dir, y + 4, fmt(t), {"text-anchor": ax ? "start" : "end"});
      });
      el("line", {"class": "axis", x1: edge, x2: edge, y1: m.top, y2: m.top + ph}, g);
      var lx = ax ? W - 14 : 16, ly = m.top + ph / 2;
      label(g, 0, 0, chart.axes[ax], {"class": "axis-label", "text-anchor": "middle",
                                      transform: "translate(" + lx + "," + ly + ") rotate(" + (ax ? 90 : -90) + ")"});
    });
    el("line", {"class": "axis", x1: m.left, x2: m.left + pw, y1: m.top + ph, y2: m.top + ph}, g);
    label(g, m.left + pw / 2, m.top + ph + 36, "step (samples trained)", {"class": "axis-label", "text-anchor": "middle"});

    var finite = 0;
    chart.series.forEach(function (s) {
      var pts = [];
      for (var i = 0; i < s.x.length; i++) pts.push(X(s.x[i]).toFixed(1) + "," + Y(s.axis, s.y[i]).toFixed(1));
      finite += pts.length;
      var line = el("polyline", {"data-chart": chart.key, "data-series": s.label, points: pts.join(" "),
                                 fill: "none", stroke: s.color, "stroke-width": 1.6, "stroke-linejoin": "round"}, svg);
      el("title", {}, line).textContent = s.label;
      if (pts.length === 1) el("circle", {cx: X(s.x[0]), cy: Y(s.axis, s.y[0]), r: 3, fill: s.color}, svg);
    });
    if (finite === 0) label(svg, m.left + pw / 2, m.top + ph / 2, "no finite values", {"class": "empty", "text-anchor": "middle"});

    var legend = el("g", {"class": "legend"}, svg);
    items.forEach(function (it) {
      var y = m.top + ph + m.bottom + 12 + it.row * 18;
      el("rect", {x: it.x, y: y - 9, width: 18, height: 4, rx: 1, fill: it.color}, legend);
      label(legend, it.x + 24, y - 3, it.text, {});
    });
  }

  var drawn = 0;
  try {
    var data = JSON.parse(document.getElementById("report-data").textContent);
    data.charts.forEach(function (chart) {
      try {
        draw(chart);
        drawn++;
      } catch (e) {
        fail(chart.id + " (" + chart.title + ")", e);
      }
    });
  } catch (e) {
    fail("report data", e);
  }
  document.body.setAttribute("data-rendered", String(drawn));
})();
)js";

void AppendStatsTable(const Job& job, const Chart& chart, int first_color, std::string* html) {
  const bool two = chart.axis_labels.size() > 1;
  absl::StrAppend(html, "<table class=\"stats\"><thead><tr><th>metric</th>", two ? "<th>axis</th>" : "",
                  "<th>points</th><th>last step</th><th>last</th><th>min</th><th>max</th><th>nan/inf</th>"
                  "</tr></thead><tbody>\n");
  std::vector<std::string> notes;
  for (std::size_t i = 0; i < chart.series.size(); ++i) {
    const ChartSeries& cs = chart.series[i];
    const MetricSeries& m = job.series[cs.series];
    const char* color = kColors[(first_color + i) % (sizeof(kColors) / sizeof(kColors[0]))];
    double min = 0, min_step = 0, max = 0;
    const bool has_min = m.Min(&min, &min_step);
    m.Max(&max);
    absl::StrAppend(html, "<tr><td title=\"", HtmlEscape(m.path),
                    "\"><span class=\"swatch\" style=\"background:", color, "\"></span>", HtmlEscape(cs.label),
                    "</td>");
    if (two) absl::StrAppend(html, "<td>", cs.axis ? "right" : "left", "</td>");
    absl::StrAppend(html, "<td>", m.steps.size(), "</td><td>", m.has_last ? FormatStep(m.last_step) : "-", "</td><td>",
                    m.has_last ? FormatValue(m.last_value) : "-", "</td><td>",
                    has_min ? absl::StrCat(FormatValue(min), " <small>@ ", FormatStep(min_step), "</small>") : "-",
                    "</td><td>", has_min ? FormatValue(max) : "-", "</td><td>", m.non_finite, "</td></tr>\n");
    if (m.non_finite > 0) {
      notes.push_back(absl::StrCat(HtmlEscape(cs.label), ": ",
                                   Plural(m.non_finite, "non-finite value", "non-finite values"), " skipped"));
    }
    if (m.superseded > 0) {
      notes.push_back(absl::StrCat(HtmlEscape(cs.label), ": ", Plural(m.superseded, "row", "rows"),
                                   " replaced by a later row of the same step (a resumed run)"));
    }
  }
  absl::StrAppend(html, "</tbody></table>\n");
  for (const std::string& note : notes) absl::StrAppend(html, "<p class=\"note\">", note, "</p>\n");
}

// The job's train_loss: Train/Samples/train_loss, else the first metric named train_loss.
const MetricSeries* TrainLoss(const Job& job) {
  const MetricSeries* found = nullptr;
  for (const MetricSeries& m : job.series) {
    if (m.name != "train_loss") continue;
    if (m.tag == "Train/Samples/train_loss") return &m;
    if (found == nullptr) found = &m;
  }
  return found;
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
    // A last line with no line end that does not parse: a row being written right now.
    const bool partial = !r.terminated && reader.line() == r.line;
    auto fault = [&](const std::string& why) -> absl::Status {
      if (!partial) return LineError(path, r.line, why);
      series.notes.push_back(
          absl::StrCat(path, ":", r.line, ": incomplete last line skipped (", why, "; is the run still writing?)"));
      return absl::OkStatus();
    };
    if (!r.error.empty()) {
      RETURN_IF_ERROR(fault(r.error));
      continue;
    }
    if (r.fields.size() != 2) {
      RETURN_IF_ERROR(fault(absl::StrCat(Plural(r.fields.size(), "field", "fields"), ", want 2 (step,value)")));
      continue;
    }
    double step = 0, value = 0;
    if (!absl::SimpleAtod(r.fields[0], &step)) {
      RETURN_IF_ERROR(fault(absl::StrCat("step ", Quote(r.fields[0]), " is not a number")));
      continue;
    }
    if (!std::isfinite(step)) {
      RETURN_IF_ERROR(fault(absl::StrCat("step ", Quote(r.fields[0]), " is not finite")));
      continue;
    }
    if (!absl::SimpleAtod(r.fields[1], &value)) {
      RETURN_IF_ERROR(fault(absl::StrCat("value ", Quote(r.fields[1]), " is not a number")));
      continue;
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

// ---- HTML -------------------------------------------------------------------------------------

std::string HtmlEscape(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::string JsonForScript(absl::string_view json) {
  return absl::StrReplaceAll(
      json,
      {{"<", "\\u003c"}, {">", "\\u003e"}, {"&", "\\u0026"}, {"\xE2\x80\xA8", "\\u2028"}, {"\xE2\x80\xA9", "\\u2029"}});
}

std::string RenderHtml(const RunData& run, absl::Time generated) {
  const std::string when = absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", generated, absl::UTCTimeZone());
  std::string html;
  absl::StrAppend(&html, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
                  "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
                  "<title>Training report: ", HtmlEscape(run.run_dir), "</title>\n<style>", kStyle,
                  "</style>\n</head>\n<body data-rendered=\"0\">\n");

  // Header: the run and one row per job.
  absl::StrAppend(&html, "<header>\n<h1>Training report</h1>\n<p class=\"meta\">Run directory: <code>",
                  HtmlEscape(run.run_dir), "</code></p>\n<p class=\"meta\">Generated ", when, " by zerotrain's ",
                  "<code>//tools:report</code></p>\n<noscript><p class=\"note\">The charts need JavaScript; the ",
                  "tables below hold the numbers.</p></noscript>\n");
  absl::StrAppend(&html, "<table class=\"summary\"><thead><tr><th>job</th><th>metrics</th><th>points</th>",
                  "<th>last step</th><th>final loss</th><th>best loss</th><th>non-finite skipped</th></tr></thead>",
                  "<tbody>\n");
  for (std::size_t j = 0; j < run.jobs.size(); ++j) {
    const Job& job = run.jobs[j];
    std::int64_t points = 0, non_finite = 0;
    bool has_step = false;
    double last_step = 0;
    for (const MetricSeries& m : job.series) {
      points += static_cast<std::int64_t>(m.steps.size());
      non_finite += m.non_finite;
      if (m.has_last && (!has_step || m.last_step > last_step)) last_step = m.last_step;
      has_step |= m.has_last;
    }
    std::string final_loss = "-", best_loss = "-";
    if (const MetricSeries* loss = TrainLoss(job); loss != nullptr) {
      if (loss->has_last) final_loss = FormatValue(loss->last_value);
      double min = 0, min_step = 0;
      if (loss->Min(&min, &min_step))
        best_loss = absl::StrCat(FormatValue(min), " <small>@ ", FormatStep(min_step), "</small>");
    }
    absl::StrAppend(&html, "<tr><td><a href=\"#job-", j, "\">", HtmlEscape(job.name), "</a></td><td>",
                    job.series.size(), "</td><td>", points, "</td><td>", has_step ? FormatStep(last_step) : "-",
                    "</td><td>", final_loss, "</td><td>", best_loss, "</td><td>", non_finite, "</td></tr>\n");
  }
  absl::StrAppend(&html, "</tbody></table>\n");
  if (!run.notes.empty()) {
    absl::StrAppend(&html, "<details><summary>", Plural(run.notes.size(), "note", "notes"), "</summary><ul>\n");
    for (const std::string& note : run.notes) absl::StrAppend(&html, "<li><code>", HtmlEscape(note), "</code></li>\n");
    absl::StrAppend(&html, "</ul></details>\n");
  }
  absl::StrAppend(&html, "</header>\n<pre id=\"report-errors\"></pre>\n");

  // Per job: its charts; each chart's data goes into the JSON, its table into the page.
  nlohmann::json charts_json = nlohmann::json::array();
  int chart_id = 0;
  for (std::size_t j = 0; j < run.jobs.size(); ++j) {
    const Job& job = run.jobs[j];
    absl::StrAppend(&html, "<section class=\"job\" id=\"job-", j, "\">\n<h2>", HtmlEscape(job.name),
                    "</h2>\n<p class=\"meta\"><code>", HtmlEscape(job.dir), "</code> &middot; ",
                    Plural(job.series.size(), "metric", "metrics"), "</p>\n<div class=\"charts\">\n");
    bool other_started = false;
    int color = 0;
    for (const Chart& chart : GroupCharts(job)) {
      if (chart.other && !other_started) {
        absl::StrAppend(&html, "</div>\n<h3>Other metrics</h3>\n<div class=\"charts\">\n");
        other_started = true;
      }
      const std::string id = absl::StrCat("chart-", chart_id++);
      // Other metrics each get their own chart: their colours continue the palette.
      const int first_color = chart.other ? color++ : 0;
      nlohmann::json series_json = nlohmann::json::array();
      for (std::size_t i = 0; i < chart.series.size(); ++i) {
        const MetricSeries& m = job.series[chart.series[i].series];
        Points drawn = DrawnPoints(m.steps, m.values, kMaxDrawnPoints);
        series_json.push_back({{"label", chart.series[i].label},
                               {"axis", chart.series[i].axis},
                               {"color", kColors[(first_color + i) % (sizeof(kColors) / sizeof(kColors[0]))]},
                               {"x", std::move(drawn.steps)},
                               {"y", std::move(drawn.values)}});
      }
      charts_json.push_back({{"id", id},
                             {"key", chart.key},
                             {"title", chart.title},
                             {"job", job.name},
                             {"axes", chart.axis_labels},
                             {"series", std::move(series_json)}});
      absl::StrAppend(&html, "<figure class=\"chart\" data-key=\"", HtmlEscape(chart.key), "\"><figcaption>",
                      HtmlEscape(chart.title), "</figcaption>\n<div class=\"plot\" id=\"", id, "\"></div>\n");
      AppendStatsTable(job, chart, first_color, &html);
      absl::StrAppend(&html, "</figure>\n");
    }
    absl::StrAppend(&html, "</div>\n</section>\n");
  }

  const nlohmann::json data = {{"run_dir", run.run_dir}, {"charts", std::move(charts_json)}};
  absl::StrAppend(&html, "<script type=\"application/json\" id=\"report-data\">",
                  JsonForScript(data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)), "</script>\n",
                  "<script>", kScript, "</script>\n</body>\n</html>\n");
  return html;
}

Points DrawnPoints(const std::vector<double>& steps, const std::vector<double>& values, std::size_t max_points) {
  Points out;
  const std::size_t n = std::min(steps.size(), values.size());
  if (n <= max_points) {
    out.steps.assign(steps.begin(), steps.begin() + n);
    out.values.assign(values.begin(), values.begin() + n);
    return out;
  }
  // The first and last points, and each bucket's lowest and highest, in step order.
  const std::size_t buckets = std::max<std::size_t>(max_points / 2, 1);
  std::vector<std::size_t> keep = {0, n - 1};
  for (std::size_t b = 0; b < buckets; ++b) {
    const std::size_t begin = b * n / buckets, end = (b + 1) * n / buckets;
    if (begin == end) continue;
    std::size_t lo = begin, hi = begin;
    for (std::size_t i = begin; i < end; ++i) {
      if (values[i] < values[lo]) lo = i;
      if (values[i] > values[hi]) hi = i;
    }
    keep.push_back(lo);
    keep.push_back(hi);
  }
  std::sort(keep.begin(), keep.end());
  keep.erase(std::unique(keep.begin(), keep.end()), keep.end());
  for (const std::size_t i : keep) {
    out.steps.push_back(steps[i]);
    out.values.push_back(values[i]);
  }
  return out;
}

}  // namespace zt::tools::report
