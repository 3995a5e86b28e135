#include "core/engine/job_summary.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/engine/job_checkpoint.h"
#include "core/engine/job_util.h"
#include "core/monitor/monitor.h"
#include "core/monitor/step_line.h"

namespace zt {
namespace {

using monitor::HumanBytes;
using monitor::HumanCount;
using monitor::HumanDuration;

std::string Throughput(const TrainingTotals& t) {
  const double secs = std::max(t.seconds, 1e-9);
  std::vector<std::string> f;
  f.push_back(absl::StrCat(HumanCount(t.samples / secs), " samples/s"));
  if (t.tokens >= 0) f.push_back(absl::StrCat(HumanCount(t.tokens / secs), " tokens/s"));
  if (t.flops >= 0) {
    const double tflops = t.flops / secs / std::max(t.world_size, 1) / 1e12;
    f.push_back(absl::StrFormat("%.3g TFLOPS/rank", tflops));
    if (t.peak_tflops > 0)
      f.push_back(absl::StrFormat("MFU %.1f%% of %g", 100 * tflops / t.peak_tflops, t.peak_tflops));
  }
  return absl::StrJoin(f, ", ");
}

std::string Memory(const MemoryStats& m) {
  std::vector<std::string> f;
  if (m.gpu_peak >= 0) f.push_back(absl::StrCat("GPU peak ", HumanBytes(m.gpu_peak), " (rank 0)"));
  if (m.host_rss >= 0) f.push_back(absl::StrCat("host RSS ", HumanBytes(m.host_rss)));
  if (m.pinned > 0) f.push_back(absl::StrCat("pinned ", HumanBytes(m.pinned)));
  return absl::StrJoin(f, ", ");
}

}  // namespace

std::string FormatJobSummary(const JobSummary& s) {
  JobSummary::Rows rows = s.trained;
  if (s.totals) {
    const TrainingTotals& t = *s.totals;
    rows.emplace_back("trained", absl::StrCat(t.steps, " steps, ", t.samples, " samples, ", HumanDuration(t.seconds),
                                              " in training steps (", t.world_size,
                                              t.world_size == 1 ? " rank)" : " ranks)"));
    rows.emplace_back("throughput", Throughput(t));
    const std::string mem = Memory(t.memory);
    if (!mem.empty()) rows.emplace_back("memory", mem);
  }
  if (s.wall_seconds >= 0) rows.emplace_back("job time", HumanDuration(s.wall_seconds));
  for (const auto& m : s.metrics) rows.push_back(m);
  for (const auto& [path, what] : s.outputs)
    rows.emplace_back("output", absl::StrCat(path, what.empty() ? "" : "  ", what));
  std::size_t width = 0;
  for (const auto& r : rows) width = std::max(width, r.first.size());
  std::string out = absl::StrCat("===== ", s.job, ": summary =====");
  for (const auto& [key, value] : rows) {
    absl::StrAppend(&out, "\n", key, std::string(width - key.size() + 2, ' '), value);
  }
  return out;
}

std::string EngineDescription(const Engine& engine) {
  const Config& c = engine.config();
  return absl::StrFormat("ZeRO stage %d, %d rank(s), %s, device %s", c.zero_optimization.stage,
                         engine.comm().world_size(), PrecisionName(c), engine.device().str());
}

void AddEngineOutputs(const Engine& engine, const std::string& output_dir, JobSummary* s) {
  const absl::StatusOr<std::vector<std::int64_t>> checkpoints = ListJobCheckpoints(output_dir);
  if (checkpoints.ok() && !checkpoints->empty()) {
    s->outputs.emplace_back(JobCheckpointDir(output_dir, checkpoints->back()),
                            absl::StrCat("the newest of ", checkpoints->size(),
                                         " checkpoint(s) (--resume_from_checkpoint, //tools:zero_to_fp32)"));
  }
  const Config& c = engine.config();
  if (c.tensorboard.enabled) {
    s->outputs.emplace_back(monitor::MonitorLogDir({true, c.tensorboard.output_path, c.tensorboard.job_name}),
                            "TensorBoard event files");
  }
  if (c.csv_monitor.enabled) {
    s->outputs.emplace_back(monitor::MonitorLogDir({true, c.csv_monitor.output_path, c.csv_monitor.job_name}),
                            "CSV metrics (bazel run //tools:report -- DIR charts them)");
  }
}

}  // namespace zt
