#include "core/monitor/step_line.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/util/logging.h"

namespace zt::monitor {
namespace {

std::string StepOfTotal(const StepStats& s) {
  return s.total_steps > 0 ? absl::StrCat(s.step, "/", s.total_steps) : absl::StrCat(s.step);
}

std::string Gib(std::int64_t bytes) { return absl::StrFormat("%.1f", static_cast<double>(bytes) / (1 << 30)); }

struct Terminal {
  std::mutex mu;
  std::string bar;  // drawn and not ended; "" when none
};

Terminal& TheTerminal() {
  static Terminal* t = new Terminal;
  return *t;
}

// While a bar is drawn, log lines (ZT_LOG) print above it too; a sink installed before (a test's)
// keeps getting them.
class AboveTheBar : public LogSink {
 public:
  void Write(LogSeverity severity, const std::string& line) override {
    if (previous != nullptr) return previous->Write(severity, line);
    PrintLine(line.size() > 0 && line.back() == '\n' ? line.substr(0, line.size() - 1) : line);
  }
  LogSink* previous = nullptr;
};

AboveTheBar& TheLogSink() {
  static AboveTheBar* s = new AboveTheBar;
  return *s;
}

}  // namespace

void DrawProgressBar(const std::string& bar) {
  Terminal& t = TheTerminal();
  bool first = false;
  {
    std::lock_guard<std::mutex> lock(t.mu);
    first = t.bar.empty();
    t.bar = bar;
    std::fprintf(stderr, "\r%s\x1b[K", bar.c_str());
    std::fflush(stderr);
  }
  // Outside the terminal's lock: a thread logging holds the sink's lock and then takes ours.
  if (first) TheLogSink().previous = SetLogSink(&TheLogSink());
}

void PrintLine(const std::string& line) {
  Terminal& t = TheTerminal();
  std::lock_guard<std::mutex> lock(t.mu);
  if (t.bar.empty()) {
    std::fprintf(stderr, "%s\n", line.c_str());
  } else {
    std::fprintf(stderr, "\r\x1b[K%s\n%s\x1b[K", line.c_str(), t.bar.c_str());
  }
  std::fflush(stderr);
}

void EndProgressBar() {
  Terminal& t = TheTerminal();
  {
    std::lock_guard<std::mutex> lock(t.mu);
    if (t.bar.empty()) return;
    t.bar.clear();
    std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }
  SetLogSink(TheLogSink().previous);
}

int TerminalColumns() {
  winsize w{};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &w) == 0 && w.ws_col > 0) return w.ws_col;
  const char* env = std::getenv("COLUMNS");
  const int c = env != nullptr ? std::atoi(env) : 0;
  return c > 0 ? c : 80;
}

std::string HumanBytes(std::int64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return absl::StrFormat("%.1f %s", v, kUnits[u]);
}

std::string HumanDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<std::int64_t>(std::llround(seconds));
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  if (s < 86400) return absl::StrFormat("%dh%02dm", s / 3600, s / 60 % 60);
  return absl::StrFormat("%dd%02dh", s / 86400, s / 3600 % 24);
}

std::string HumanCount(double v) {
  if (!std::isfinite(v)) return "?";
  if (v < 1000) return absl::StrFormat(v < 10 ? "%.2f" : "%.1f", v);
  if (v < 1e6) return absl::StrFormat("%.1fk", v / 1e3);
  if (v < 1e9) return absl::StrFormat("%.2fM", v / 1e6);
  return absl::StrFormat("%.2fG", v / 1e9);
}

std::string FormatStepLine(const StepStats& s) {
  std::vector<std::string> f;
  f.push_back(absl::StrCat("step ", StepOfTotal(s)));
  if (s.epoch >= 0) f.push_back(absl::StrFormat("epoch %.2f", s.epoch));
  f.push_back(absl::StrFormat("loss %.4f", s.loss));
  f.push_back(absl::StrFormat("lr %.4g", s.lr));
  if (s.has_loss_scale) f.push_back(absl::StrFormat("loss scale %g", s.loss_scale));
  if (s.grad_norm >= 0) f.push_back(absl::StrFormat("grad norm %.4g", s.grad_norm));
  f.push_back(absl::StrCat("skipped ", s.skipped));
  if (s.samples_per_sec >= 0) f.push_back(absl::StrCat(HumanCount(s.samples_per_sec), " samples/s"));
  if (s.tokens_per_sec >= 0) f.push_back(absl::StrCat(HumanCount(s.tokens_per_sec), " tokens/s"));
  if (s.tflops_per_gpu >= 0) f.push_back(absl::StrFormat("%.3g TFLOPS/rank", s.tflops_per_gpu));
  if (s.mfu >= 0) f.push_back(absl::StrFormat("MFU %.1f%%", 100 * s.mfu));
  if (s.gpu_allocated >= 0) {
    std::string m = absl::StrCat("GPU mem ", Gib(s.gpu_allocated));
    if (s.gpu_reserved >= 0) absl::StrAppend(&m, "/", Gib(s.gpu_reserved));
    absl::StrAppend(&m, " GiB");
    if (s.gpu_peak >= 0) absl::StrAppend(&m, " (peak ", Gib(s.gpu_peak), ")");
    f.push_back(std::move(m));
  }
  if (s.host_rss >= 0) f.push_back(absl::StrCat("RSS ", HumanBytes(s.host_rss)));
  if (s.pinned > 0) f.push_back(absl::StrCat("pinned ", HumanBytes(s.pinned)));
  if (s.eta_seconds >= 0) f.push_back(absl::StrCat("ETA ", HumanDuration(s.eta_seconds)));
  return absl::StrJoin(f, " | ");
}

std::string FormatProgressBar(const StepStats& s, int columns) {
  constexpr int kWidth = 30;
  std::string bar;
  if (s.total_steps > 0) {
    const double frac = std::clamp(static_cast<double>(s.step) / static_cast<double>(s.total_steps), 0.0, 1.0);
    const int done = static_cast<int>(kWidth * frac);
    bar = absl::StrCat("[", std::string(done, '='), done < kWidth ? ">" : "",
                       std::string(std::max(kWidth - done - 1, 0), ' '), "] ", StepOfTotal(s),
                       absl::StrFormat(" %d%%", static_cast<int>(100 * frac)));
  } else {
    bar = absl::StrCat("step ", s.step);
  }
  absl::StrAppend(&bar, absl::StrFormat(" | loss %.4f", s.loss));
  if (s.samples_per_sec >= 0) absl::StrAppend(&bar, " | ", HumanCount(s.samples_per_sec), " samples/s");
  if (s.eta_seconds >= 0) absl::StrAppend(&bar, " | ETA ", HumanDuration(s.eta_seconds));
  if (columns > 0 && static_cast<int>(bar.size()) > columns) bar.resize(static_cast<std::size_t>(columns));
  return bar;
}

}  // namespace zt::monitor
