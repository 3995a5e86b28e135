// What a running job shows every steps_per_print: one plain line per report (logs, CI) or, on a
// terminal, a progress bar redrawn in place.  Pure formatting: the engine measures the numbers.
//
//   zt::monitor::StepStats s;
//   s.step = 40;  s.total_steps = 200;  s.loss = 2.31;  s.samples_per_sec = 812.5;  ...
//   std::fprintf(stderr, "%s\n", zt::monitor::FormatStepLine(s).c_str());
//   // step 40/200 | epoch 0.40 | loss 2.3100 | lr 5e-05 | grad norm 1.2 | skipped 0 | 812.5 samples/s | ...
//
// A field the run cannot know is negative (or has_* false) and is left out of the line.
#ifndef ZEROTRAIN_CORE_MONITOR_STEP_LINE_H_
#define ZEROTRAIN_CORE_MONITOR_STEP_LINE_H_

#include <cstdint>
#include <string>

namespace zt::monitor {

struct StepStats {
  std::int64_t step = 0;         // optimizer steps so far (skipped ones too)
  std::int64_t total_steps = 0;  // 0: unknown
  double epoch = -1;             // fractional epoch
  double loss = 0;               // mean over the ranks' micro-steps since the last report
  double lr = 0;
  bool has_loss_scale = false;  // fp16
  double loss_scale = 0;
  double grad_norm = -1;
  std::int64_t skipped = 0;
  double samples_per_sec = -1;  // all ranks together, since the last report
  double tokens_per_sec = -1;   // -1: the model counts no tokens
  double tflops_per_gpu = -1;   // achieved model FLOPs per second per rank, in 1e12
  double mfu = -1;              // tflops_per_gpu over the device's peak, in [0, 1]
  // Bytes; -1 where there is no such memory (no GPU, no pinned host memory in use).
  std::int64_t gpu_allocated = -1, gpu_reserved = -1, gpu_peak = -1;
  std::int64_t host_rss = -1, pinned = -1;
  double eta_seconds = -1;
};

// "step 40/200 | epoch 0.40 | loss 2.3100 | lr 5e-05 | ... | ETA 3m12s".
std::string FormatStepLine(const StepStats& s);
// "[=========>                    ] 40/200 20% | loss 2.3100 | 812.5 samples/s | ETA 3m12s",
// cut to `columns` characters.
std::string FormatProgressBar(const StepStats& s, int columns);
// Rank 0's terminal: a progress bar redrawn in place on stderr, and lines printed above it (as
// tqdm.write does), so a job's messages and the bar never share a line.  Thread-safe.
//   DrawProgressBar(bar)   draws "\r<bar>\x1b[K" (stderr must be a terminal: the caller checks)
//   PrintLine(line)        clears a drawn bar, prints line + "\n", redraws the bar
//   EndProgressBar()       leaves the last bar on screen and moves to the next line
// While a bar is drawn, ZT_LOG lines go through PrintLine as well (a LogSink installed before
// the bar keeps them).
void DrawProgressBar(const std::string& bar);
void PrintLine(const std::string& line);
void EndProgressBar();
// stderr's terminal width (80 when not known).
int TerminalColumns();

// "512 B", "3.0 KiB", "12.3 GiB".
std::string HumanBytes(std::int64_t bytes);
// "45s", "3m12s", "2h05m", "3d04h".
std::string HumanDuration(double seconds);
// "812", "45.6k", "1.23M" (per-second rates).
std::string HumanCount(double v);

}  // namespace zt::monitor

#endif  // ZEROTRAIN_CORE_MONITOR_STEP_LINE_H_
