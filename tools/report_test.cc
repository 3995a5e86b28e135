#include "tools/report_lib.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/util/status_matchers.h"
#include "core/util/test_files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace zt::tools::report {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;
using zt::testing::CommandResult;
using zt::testing::FreshTestDir;
using zt::testing::RunCommand;

void MakeDir(const std::string& dir) { ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0) << dir; }
void Write(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

std::vector<std::string> ChartKeys(const std::vector<Chart>& charts) {
  std::vector<std::string> keys;
  for (const Chart& c : charts) keys.push_back(c.key);
  return keys;
}

std::vector<std::string> Labels(const Chart& chart) {
  std::vector<std::string> labels;
  for (const ChartSeries& s : chart.series) labels.push_back(s.label);
  return labels;
}

// A job of metrics named `names`, each "Train/Samples/<name>" with one point.
Job JobOf(const std::vector<std::string>& names) {
  Job job;
  job.name = "job";
  for (const std::string& name : names) {
    MetricSeries m;
    m.name = name;
    m.file = absl::StrCat("Train_Samples_", name, ".csv");
    m.tag = absl::StrCat("Train/Samples/", name);
    m.steps = {64};
    m.values = {1};
    job.series.push_back(m);
  }
  return job;
}

// The JSON the page embeds for its script.
nlohmann::json EmbeddedData(const std::string& html) {
  const std::string open = "<script type=\"application/json\" id=\"report-data\">";
  const std::size_t begin = html.find(open);
  EXPECT_NE(begin, std::string::npos);
  const std::size_t end = html.find("</script>", begin);
  return nlohmann::json::parse(html.substr(begin + open.size(), end - begin - open.size()));
}

TEST(ParseMetricCsv, ReadsDeepSpeedFilesAndSkipsNonFiniteValues) {
  ASSERT_OK_AND_ASSIGN(MetricSeries m,
                       ParseMetricCsv("step,train_loss\r\n64,2.5\r\n128,nan\r\n192,inf\r\n256,-inf\r\n320,2.0\r\n",
                                      "d/Train_Samples_train_loss.csv"));
  EXPECT_EQ(m.name, "train_loss");
  EXPECT_EQ(m.tag, "Train/Samples/train_loss");
  EXPECT_EQ(m.file, "Train_Samples_train_loss.csv");
  EXPECT_THAT(m.steps, ElementsAre(64, 320));
  EXPECT_THAT(m.values, ElementsAre(2.5, 2.0));
  EXPECT_EQ(m.rows, 5);
  EXPECT_EQ(m.non_finite, 3);
  EXPECT_TRUE(m.has_last);
  EXPECT_EQ(m.last_step, 320);
  EXPECT_EQ(m.last_value, 2.0);
  double min = 0, step = 0, max = 0;
  ASSERT_TRUE(m.Min(&min, &step));
  ASSERT_TRUE(m.Max(&max));
  EXPECT_EQ(min, 2.0);
  EXPECT_EQ(step, 320);
  EXPECT_EQ(max, 2.5);
}

TEST(ParseMetricCsv, KeepsANonFiniteLastValue) {
  ASSERT_OK_AND_ASSIGN(MetricSeries m, ParseMetricCsv("step,train_loss\r\n64,2.5\r\n128,nan\r\n", "x.csv"));
  EXPECT_TRUE(std::isnan(m.last_value));
  EXPECT_EQ(m.last_step, 128);
  EXPECT_THAT(m.steps, ElementsAre(64));
}

TEST(ParseMetricCsv, AcceptsLfLinesAndQuotedHeaders) {
  ASSERT_OK_AND_ASSIGN(MetricSeries m, ParseMetricCsv("step,\"a,\"\"b\"\"\"\n1,1e-05\n2,0.5\n", "Train_x.csv"));
  EXPECT_EQ(m.name, "a,\"b\"");
  EXPECT_EQ(m.tag, "Train_x");  // the name is not the file's suffix: the stem
  EXPECT_THAT(m.steps, ElementsAre(1, 2));
  EXPECT_THAT(m.values, ElementsAre(1e-05, 0.5));
  EXPECT_THAT(m.notes, SizeIs(0));
}

TEST(ParseMetricCsv, ResumedRunRepeatedHeaderAndStepsKeepTheLaterRow) {
  ASSERT_OK_AND_ASSIGN(
      MetricSeries m,
      ParseMetricCsv("step,lr\r\n64,1.0\r\n128,2.0\r\n192,3.0\r\nstep,lr\r\n128,2.5\r\n192,3.5\r\n256,4.0\r\n",
                     "lr.csv"));
  EXPECT_THAT(m.steps, ElementsAre(64, 128, 192, 256));
  EXPECT_THAT(m.values, ElementsAre(1.0, 2.5, 3.5, 4.0));
  EXPECT_EQ(m.superseded, 2);
  EXPECT_EQ(m.rows, 6);
}

TEST(ParseMetricCsv, SkipsAnIncompleteLastLineWithANote) {
  ASSERT_OK_AND_ASSIGN(MetricSeries m, ParseMetricCsv("step,lr\r\n64,1.0\r\n128", "run/lr.csv"));
  EXPECT_THAT(m.steps, ElementsAre(64));
  ASSERT_THAT(m.notes, SizeIs(1));
  EXPECT_THAT(m.notes[0], HasSubstr("run/lr.csv:3: incomplete last line skipped"));
  // Even when what was written so far parses: "5e-0" of "5e-05" would be a spike of 5.
  ASSERT_OK_AND_ASSIGN(m, ParseMetricCsv("step,lr\r\n64,5e-05\r\n128,5e-0", "run/lr.csv"));
  EXPECT_THAT(m.values, ElementsAre(5e-05));
  ASSERT_THAT(m.notes, SizeIs(1));
}

TEST(ParseMetricCsv, ErrorsNameFileAndLine) {
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_THAT(ParseMetricCsv("steps,loss\r\n1,2\r\n", "a/loss.csv"),
              StatusIs(kInvalid, HasSubstr("a/loss.csv:1: bad header \"steps,loss\"")));
  EXPECT_THAT(ParseMetricCsv("step\r\n1,2\r\n", "a/loss.csv"),
              StatusIs(kInvalid, HasSubstr("a/loss.csv:1: bad header")));
  EXPECT_THAT(ParseMetricCsv("step,loss,extra\r\n", "a/loss.csv"),
              StatusIs(kInvalid, HasSubstr("a/loss.csv:1: bad header")));
  EXPECT_THAT(ParseMetricCsv("", "a/loss.csv"), StatusIs(kInvalid, HasSubstr("a/loss.csv:1: empty file")));
  EXPECT_THAT(ParseMetricCsv("step,loss\r\n1,2\r\n2,abc\r\n", "a/loss.csv"),
              StatusIs(kInvalid, HasSubstr("a/loss.csv:3: value \"abc\" is not a number")));
  EXPECT_THAT(ParseMetricCsv("step,loss\r\n1,2,3\r\n", "a/loss.csv"),
              StatusIs(kInvalid, HasSubstr("a/loss.csv:2: 3 fields, want 2 (step,value)")));
  EXPECT_THAT(ParseMetricCsv("step,loss\r\n1\r\n", "a/loss.csv"),
              StatusIs(kInvalid, HasSubstr("a/loss.csv:2: 1 field, want 2")));
  EXPECT_THAT(ParseMetricCsv("step,loss\r\n1,2\r\nx1,2\r\n", "a/loss.csv"),
              StatusIs(kInvalid, HasSubstr("a/loss.csv:3: step \"x1\" is not a number")));
  EXPECT_THAT(ParseMetricCsv("step,loss\r\nnan,2\r\n", "a/loss.csv"),
              StatusIs(kInvalid, HasSubstr("a/loss.csv:2: step \"nan\" is not finite")));
  EXPECT_THAT(ParseMetricCsv("step,loss\r\n1,\"2\r\n", "a/loss.csv"),
              StatusIs(kInvalid, HasSubstr("a/loss.csv:2: quoted field not closed")));  // nothing after it
  EXPECT_THAT(ParseMetricCsv("step,loss\r\n1,\"2\"x\r\n3,4\r\n", "a/loss.csv"),
              StatusIs(kInvalid, HasSubstr("a/loss.csv:2: unexpected character after a quoted field")));
  // Line numbers count the physical lines, also after a blank one.
  EXPECT_THAT(ParseMetricCsv("step,loss\r\n1,2\r\n\r\n3,?\r\n", "a/loss.csv"),
              StatusIs(kInvalid, HasSubstr("a/loss.csv:4: value \"?\" is not a number")));
}

TEST(LooksLikeMetricCsv, ByTheFirstField) {
  EXPECT_TRUE(LooksLikeMetricCsv("step,lr\r\n"));
  EXPECT_TRUE(LooksLikeMetricCsv("\xEF\xBB\xBFstep,lr\n"));
  EXPECT_TRUE(LooksLikeMetricCsv("step\n"));  // read, and refused as a bad header
  EXPECT_FALSE(LooksLikeMetricCsv("smiles,logS\n"));
  EXPECT_FALSE(LooksLikeMetricCsv("steps,lr\n"));
  EXPECT_FALSE(LooksLikeMetricCsv(""));
}

TEST(LoadRun, FindsEveryJobWithinThreeLevels) {
  const std::string dir = FreshTestDir();
  MakeDir(dir + "/run");
  MakeDir(dir + "/run/a");
  MakeDir(dir + "/run/a/b");
  MakeDir(dir + "/run/a/b/c");
  MakeDir(dir + "/run/a/b/c/d");  // depth 4: not searched
  MakeDir(dir + "/run/.hidden");
  Write(dir + "/run/Train_Samples_lr.csv", "step,lr\r\n1,0.5\r\n");
  Write(dir + "/run/a/b/c/Train_Samples_train_loss.csv", "step,train_loss\r\n1,2.0\r\n");
  Write(dir + "/run/a/b/c/d/Train_Samples_train_loss.csv", "step,train_loss\r\n1,2.0\r\n");
  Write(dir + "/run/a/b/predictions.csv", "id,label\n1,2\n");
  Write(dir + "/run/.hidden/Train_Samples_lr.csv", "step,lr\r\n1,0.5\r\n");

  ASSERT_OK_AND_ASSIGN(RunData run, LoadRun(dir + "/run"));
  ASSERT_THAT(run.jobs, SizeIs(2));
  EXPECT_EQ(run.jobs[0].name, "run");  // RUN_DIR itself: its base name
  EXPECT_EQ(run.jobs[0].dir, dir + "/run");
  EXPECT_EQ(run.jobs[1].name, "a/b/c");
  ASSERT_THAT(run.jobs[1].series, SizeIs(1));
  EXPECT_EQ(run.jobs[1].series[0].name, "train_loss");
  ASSERT_THAT(run.notes, SizeIs(1));
  EXPECT_THAT(run.notes[0], HasSubstr("ignored " + dir + "/run/a/b/predictions.csv: not a metric CSV"));
}

TEST(LoadRun, ACsvMonitorDirectoryIsOneJob) {
  const std::string dir = FreshTestDir();
  MakeDir(dir + "/my_job");
  Write(dir + "/my_job/Train_Samples_train_loss.csv", "step,train_loss\r\n64,2.5\r\n");
  Write(dir + "/my_job/Train_Samples_lr.csv", "step,lr\r\n64,1e-05\r\n");
  ASSERT_OK_AND_ASSIGN(RunData run, LoadRun(dir + "/my_job/"));
  ASSERT_THAT(run.jobs, SizeIs(1));
  EXPECT_EQ(run.jobs[0].name, "my_job");
  ASSERT_THAT(run.jobs[0].series, SizeIs(2));
  EXPECT_EQ(run.jobs[0].series[0].file, "Train_Samples_lr.csv");  // by file name
  EXPECT_EQ(run.jobs[0].series[1].file, "Train_Samples_train_loss.csv");
}

TEST(LoadRun, MissingEmptyAndMalformedRuns) {
  const std::string dir = FreshTestDir();
  EXPECT_THAT(LoadRun(dir + "/nope"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("nope: no such directory")));
  Write(dir + "/file", "x");
  EXPECT_THAT(LoadRun(dir + "/file"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("file: not a directory")));
  MakeDir(dir + "/empty");
  Write(dir + "/empty/data.csv", "a,b\n");
  EXPECT_THAT(LoadRun(dir + "/empty"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no metric CSV files (DeepSpeed csv_monitor's")));
  MakeDir(dir + "/bad");
  MakeDir(dir + "/bad/job");
  Write(dir + "/bad/job/Train_Samples_lr.csv", "step,lr\r\n64,1e-05\r\n128,1e-05,3\r\n");
  EXPECT_THAT(LoadRun(dir + "/bad"), StatusIs(absl::StatusCode::kInvalidArgument,
                                              HasSubstr(dir + "/bad/job/Train_Samples_lr.csv:3: 3 fields")));
}

TEST(GroupCharts, GroupsTheEnginesMetrics) {
  Job job = JobOf({"gpu_mem_peak_gib", "grad_norm", "host_rss_gib", "loss_scale", "lr", "mfu", "pinned_gib",
                   "samples_per_sec", "tflops", "tokens_per_sec", "train_loss", "gpu_mem_allocated_gib",
                   "gpu_mem_reserved_gib"});
  MetricSeries eval = job.series[0];
  eval.name = "eval_loss";
  eval.tag = "Eval/Samples/eval_loss";
  job.series.push_back(eval);
  eval.name = "bleu";
  eval.tag = "Eval/Samples/bleu";
  job.series.push_back(eval);

  const std::vector<Chart> charts = GroupCharts(job);
  EXPECT_THAT(ChartKeys(charts),
              ElementsAre("loss", "lr", "throughput", "utilisation", "memory", "loss_scale", "other", "other"));
  EXPECT_THAT(Labels(charts[0]), ElementsAre("train_loss", "eval_loss"));
  EXPECT_THAT(charts[2].axis_labels, ElementsAre("samples/s", "tokens/s"));
  EXPECT_THAT(Labels(charts[2]), ElementsAre("samples_per_sec", "tokens_per_sec"));
  EXPECT_EQ(charts[2].series[0].axis, 0);
  EXPECT_EQ(charts[2].series[1].axis, 1);
  EXPECT_THAT(Labels(charts[3]), ElementsAre("tflops", "mfu"));
  EXPECT_THAT(Labels(charts[4]), ElementsAre("gpu_mem_allocated_gib", "gpu_mem_reserved_gib", "gpu_mem_peak_gib",
                                             "host_rss_gib", "pinned_gib"));
  EXPECT_THAT(charts[4].axis_labels, ElementsAre("GiB"));
  EXPECT_EQ(charts[6].title, "Train/Samples/grad_norm");
  EXPECT_TRUE(charts[6].other);
  EXPECT_EQ(charts[7].title, "Eval/Samples/bleu");
}

TEST(GroupCharts, LeavesOutAbsentGroupsAndMovesALoneRightAxisLeft) {
  const std::vector<Chart> charts = GroupCharts(JobOf({"tokens_per_sec", "mfu", "lr"}));
  EXPECT_THAT(ChartKeys(charts), ElementsAre("lr", "throughput", "utilisation"));
  EXPECT_THAT(charts[1].axis_labels, ElementsAre("tokens/s"));
  EXPECT_EQ(charts[1].series[0].axis, 0);
  EXPECT_THAT(charts[2].axis_labels, ElementsAre("MFU"));
}

TEST(GroupCharts, TwoMetricsOfOneNameAreLabelledByTag) {
  Job job = JobOf({"train_loss", "train_loss"});
  job.series[1].tag = "Train/Tokens/train_loss";
  const std::vector<Chart> charts = GroupCharts(job);
  ASSERT_THAT(charts, SizeIs(1));
  EXPECT_THAT(Labels(charts[0]), ElementsAre("Train/Samples/train_loss", "Train/Tokens/train_loss"));
}

TEST(HtmlEscape, EscapesMarkupCharacters) {
  EXPECT_EQ(HtmlEscape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
}

TEST(JsonForScript, NoScriptEndOrCommentCanSurvive) {
  const nlohmann::json doc = {{"tag", "</script><!--\xE2\x80\xA8&"}};
  const std::string safe = JsonForScript(doc.dump());
  EXPECT_THAT(safe, Not(HasSubstr("<")));
  EXPECT_THAT(safe, Not(HasSubstr(">")));
  EXPECT_THAT(safe, Not(HasSubstr("\xE2\x80\xA8")));
  EXPECT_EQ(nlohmann::json::parse(safe), doc);  // the same document
}

TEST(RenderHtml, HostileJobAndMetricNamesStayText) {
  const std::string dir = FreshTestDir();
  const std::string job_name = "<img src=x onerror=alert(1)>";
  const std::string metric = "</script><script>alert(2)</script>";
  MakeDir(dir + "/run");
  MakeDir(dir + "/run/" + job_name);
  Write(dir + "/run/" + job_name + "/Train_Samples_train_loss.csv", "step,train_loss\r\n1,2.0\r\n2,1.0\r\n");
  Write(dir + "/run/" + job_name + "/odd.csv", absl::StrCat("step,", metric, "\r\n1,2.0\r\n2,nan\r\n3,1.0\r\n"));
  ASSERT_OK_AND_ASSIGN(RunData run, LoadRun(dir + "/run"));
  const std::string html = RenderHtml(run, absl::FromUnixSeconds(1700000000));

  EXPECT_THAT(html, Not(HasSubstr("<img")));
  EXPECT_THAT(html, Not(HasSubstr("alert(2)</script>")));
  EXPECT_THAT(html, HasSubstr("&lt;img src=x onerror=alert(1)&gt;"));
  EXPECT_THAT(html, HasSubstr("&lt;/script&gt;&lt;script&gt;alert(2)&lt;/script&gt;"));
  EXPECT_THAT(html, HasSubstr("Generated 2023-11-14 22:13:20 UTC"));
  // Exactly the page's two script elements end.
  int ends = 0;
  for (std::size_t at = html.find("</script>"); at != std::string::npos; at = html.find("</script>", at + 1)) ++ends;
  EXPECT_EQ(ends, 2);

  const nlohmann::json data = EmbeddedData(html);
  ASSERT_EQ(data["charts"].size(), 2u);
  EXPECT_EQ(data["charts"][0]["job"], job_name);
  EXPECT_EQ(data["charts"][0]["key"], "loss");
  EXPECT_EQ(data["charts"][1]["key"], "other");
  EXPECT_EQ(data["charts"][1]["series"][0]["label"], metric);
  EXPECT_EQ(data["charts"][1]["series"][0]["x"], nlohmann::json({1.0, 3.0}));  // the finite rows
  EXPECT_EQ(data["charts"][1]["series"][0]["y"], nlohmann::json({2.0, 1.0}));
  EXPECT_THAT(html, HasSubstr("1 non-finite value skipped"));
  EXPECT_EQ(CountCharts(run), 2);
}

TEST(RenderHtml, HeaderSummarisesEachJob) {
  RunData run;
  run.run_dir = "out";
  Job job;
  job.name = "ds_logs/job";
  job.dir = "out/ds_logs/job";
  ASSERT_OK_AND_ASSIGN(MetricSeries loss,
                       ParseMetricCsv("step,train_loss\r\n64,3.0\r\n128,1.5\r\n192,2.0\r\n256,nan\r\n",
                                      "out/ds_logs/job/Train_Samples_train_loss.csv"));
  ASSERT_OK_AND_ASSIGN(MetricSeries lr,
                       ParseMetricCsv("step,lr\r\n64,1e-05\r\n", "out/ds_logs/job/Train_Samples_lr.csv"));
  job.series = {lr, loss};
  run.jobs.push_back(job);
  const std::string html = RenderHtml(run, absl::UnixEpoch());
  // job, metrics, points, last step, final loss, best loss @ step, non-finite skipped
  EXPECT_THAT(html, HasSubstr("<td><a href=\"#job-0\">ds_logs/job</a></td><td>2</td><td>4</td><td>256</td><td>nan</td>"
                              "<td>1.5 <small>@ 128</small></td><td>1</td>"));
  EXPECT_THAT(html, HasSubstr("<body data-rendered=\"0\">"));
  EXPECT_THAT(html, HasSubstr("<pre id=\"report-errors\"></pre>"));
  EXPECT_THAT(html, Not(HasSubstr("<link")));  // nothing to fetch
  EXPECT_THAT(html, Not(HasSubstr(" src=")));
}

// ---- the command line ----------------------------------------------------------------------------

// The report binary's exit code, stdout and stderr.
CommandResult RunReport(const std::string& args) {
  const std::string bin = absl::StrCat(std::getenv("TEST_SRCDIR"), "/zerotrain/tools/report");
  return RunCommand(absl::StrCat("'", bin, "' ", args, " 2>&1"));
}

TEST(ReportCommand, WritesThePageAndSaysWhere) {
  const std::string dir = FreshTestDir();
  MakeDir(dir + "/my_job");
  Write(dir + "/my_job/Train_Samples_train_loss.csv", "step,train_loss\r\n64,2.5\r\n128,2.0\r\n");
  Write(dir + "/my_job/Train_Samples_lr.csv", "step,lr\r\n64,1e-05\r\n128,1e-05\r\n");
  Write(dir + "/my_job/notes.csv", "a,b\n");

  CommandResult run = RunReport(absl::StrCat("'", dir, "/my_job'"));
  EXPECT_EQ(run.exit_code, 0) << run.out;
  EXPECT_THAT(run.out, HasSubstr(absl::StrCat("report: wrote ", dir, "/my_job/report.html (1 job, 2 charts)")));
  EXPECT_THAT(run.out, HasSubstr(absl::StrCat("report: note: ignored ", dir, "/my_job/notes.csv")));
  EXPECT_THAT(zt::testing::Slurp(dir + "/my_job/report.html"), HasSubstr("<h2>my_job</h2>"));

  run = RunReport(absl::StrCat("'", dir, "' --out '", dir, "/elsewhere.html'"));
  EXPECT_EQ(run.exit_code, 0) << run.out;
  EXPECT_THAT(run.out, HasSubstr(absl::StrCat("report: wrote ", dir, "/elsewhere.html (1 job, 2 charts)")));
  EXPECT_THAT(zt::testing::Slurp(dir + "/elsewhere.html"), HasSubstr("<h2>my_job</h2>"));
}

TEST(ReportCommand, ExitCodes) {
  const std::string dir = FreshTestDir();
  CommandResult run = RunReport("");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.out, HasSubstr("report: error: needs RUN_DIR"));
  EXPECT_THAT(run.out, HasSubstr("usage: report RUN_DIR [--out FILE]"));
  EXPECT_EQ(RunReport("a b").exit_code, 2);
  EXPECT_EQ(RunReport("a --bogus").exit_code, 2);
  EXPECT_EQ(RunReport("a --out").exit_code, 2);
  EXPECT_EQ(RunReport("--help").exit_code, 0);

  run = RunReport(absl::StrCat("'", dir, "/missing'"));
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.out, HasSubstr(absl::StrCat("report: error: ", dir, "/missing: no such directory")));

  run = RunReport(absl::StrCat("'", dir, "'"));
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.out, HasSubstr("report: error: no metric CSV files"));

  Write(dir + "/Train_Samples_lr.csv", "step,lr\r\n64,fast\r\n");
  run = RunReport(absl::StrCat("'", dir, "'"));
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.out, HasSubstr(absl::StrCat("report: error: ", dir,
                                              "/Train_Samples_lr.csv:2: value \"fast\" is not a number")));
  EXPECT_FALSE(zt::testing::Slurp(dir + "/report.html").size() > 0);  // nothing written
}

// A long series is drawn from at most about kMaxDrawnPoints points that keep the first and last
// points and every bucket's extremes (a one-step spike survives).
TEST(DrawnPointsTest, LongSeriesKeepTheirShape) {
  std::vector<double> steps, values;
  for (int i = 0; i < 100000; ++i) {
    steps.push_back(8.0 * (i + 1));
    values.push_back(i == 54321 ? 99.0 : (i == 777 ? -5.0 : 1.0 + 1e-6 * i));
  }
  const Points drawn = DrawnPoints(steps, values, 4000);
  ASSERT_EQ(drawn.steps.size(), drawn.values.size());
  EXPECT_LE(drawn.steps.size(), 4002u);
  EXPECT_GE(drawn.steps.size(), 3000u);
  EXPECT_TRUE(std::is_sorted(drawn.steps.begin(), drawn.steps.end()));
  EXPECT_EQ(drawn.steps.front(), steps.front());
  EXPECT_EQ(drawn.steps.back(), steps.back());
  EXPECT_EQ(*std::max_element(drawn.values.begin(), drawn.values.end()), 99.0);
  EXPECT_EQ(*std::min_element(drawn.values.begin(), drawn.values.end()), -5.0);
  // A short series is drawn whole.
  const Points whole = DrawnPoints({1, 2, 3}, {3, 1, 2}, 4000);
  EXPECT_EQ(whole.steps, (std::vector<double>{1, 2, 3}));
  EXPECT_EQ(whole.values, (std::vector<double>{3, 1, 2}));
}

}  // namespace
}  // namespace zt::tools::report
