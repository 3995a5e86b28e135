// //tools:report's page (report_lib.h): the HTML, its style and the script that draws the charts.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "tools/report_lib.h"

namespace zt::tools::report {
namespace {

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
