// CPU Adam throughput: zerotrain's SIMD CpuAdam (ops/cpu_adam.h) against LibTorch's
// torch::optim::AdamW on the same machine, and a STREAM-like triad for the memory bandwidth.
//
//   bazel run -c opt //tools/bench:cpu_adam -- --params=33554432
//
// Adam touches 28 bytes per parameter and step (reads param, grad, exp_avg, exp_avg_sq; writes
// param, exp_avg, exp_avg_sq), so the goal is stated against the triad bandwidth / 28.  The
// triad is a[i] = b[i] + s * c[i] over float arrays of the same length, all threads, counted as
// STREAM counts it (12 bytes per element).  The triad also pays write-allocate reads of `a` that
// STREAM does not count, while Adam rewrites lines it has just read, so Adam can exceed a
// triad_fraction of 1.  Each figure is the median of --repeats timed runs after a
// warm-up; results are validated against the scalar reference first.  The last line is
//   cpu_adam_mparams_per_s=<x> torch_adamw_mparams_per_s=<y> speedup=<x/y> triad_fraction=<f>
// The peer that matters most, DeepSpeed's DeepSpeedCPUAdam, is timed on the same machine by
// tools/bench/peers/cpu_adam_deepspeed.py (BENCHMARKS.md puts them side by side).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/optim/adamw.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "ops/adam.h"
#include "ops/cpu_adam.h"
#include "tools/machine.h"

ABSL_FLAG(int64_t, params, 32 << 20, "parameters per step");
ABSL_FLAG(int, repeats, 9, "timed runs of each figure");
ABSL_FLAG(int, threads, 0, "threads (0: every hardware thread)");

namespace {

using Clock = std::chrono::steady_clock;

template <typename F>
double MedianSeconds(int repeats, F&& f) {
  f();  // warm-up
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = Clock::now();
    f();
    t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

double TriadGBps(std::int64_t n, int threads, int repeats) {
  std::vector<float> a(n), b(n, 1.0f), c(n, 2.0f);
  const float s = 3.0f;
  auto run = [&] {
    std::vector<std::thread> ws;
    const std::int64_t chunk = (n + threads - 1) / threads;
    for (int t = 0; t < threads; ++t) {
      ws.emplace_back([&, t] {
        const std::int64_t lo = t * chunk, hi = std::min(n, lo + chunk);
        for (std::int64_t i = lo; i < hi; ++i) a[i] = b[i] + s * c[i];
      });
    }
    for (auto& w : ws) w.join();
  };
  const double sec = MedianSeconds(repeats, run);
  if (a[n / 2] != 7.0f) std::fprintf(stderr, "cpu_adam: triad gave a wrong value\n");
  return 12.0 * n / sec / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::int64_t n = absl::GetFlag(FLAGS_params);
  const int repeats = absl::GetFlag(FLAGS_repeats);
  const int threads = absl::GetFlag(FLAGS_threads) > 0 ? absl::GetFlag(FLAGS_threads)
                                                       : static_cast<int>(std::thread::hardware_concurrency());
  const zt::ops::CpuIsa isa = zt::ops::BestCpuIsa();
  std::printf("cpu_adam: %s, %d threads, path %s, %lld parameters, median of %d\n", zt::tools::CpuModel().c_str(),
              threads, zt::ops::CpuIsaName(isa), static_cast<long long>(n), repeats);

  // Validate before timing: the chosen path against the reference on a slice.
  {
    const std::int64_t m = 100003;
    at::manual_seed(1);
    at::Tensor p = at::randn({m}), g = at::randn({m}), z = at::zeros({m});
    at::Tensor p2 = p.clone(), m1 = z.clone(), v1 = z.clone(), m2 = z.clone(), v2 = z.clone();
    zt::ops::AdamStep s;
    zt::ops::AdamReference(p.data_ptr<float>(), g.data_ptr<float>(), m1.data_ptr<float>(), v1.data_ptr<float>(), m, s);
    zt::ops::CpuAdam(p2.data_ptr<float>(), g.data_ptr<float>(), m2.data_ptr<float>(), v2.data_ptr<float>(), m, s, {},
                     {isa, threads});
    const double diff = (p - p2).abs().max().item<double>();
    if (!(diff < 1e-5)) {
      std::fprintf(stderr, "cpu_adam: the %s path differs from the reference by %g\n", zt::ops::CpuIsaName(isa), diff);
      return 1;
    }
  }

  const double triad = TriadGBps(n, threads, repeats);
  std::printf("triad: %.2f GB/s\n", triad);

  // Realistic values (no constant pages, no denormals): random parameters and gradients, in
  // LibTorch's 64-byte aligned buffers as the engine has them.
  at::manual_seed(2);
  at::Tensor rp = at::randn({n}), rg = at::randn({n}) * 0.01;
  at::Tensor tp_ours = rp.clone(), m = at::zeros({n}), v = at::zeros({n});
  at::Tensor out = at::empty({n}, at::kBFloat16);
  float* p = tp_ours.data_ptr<float>();
  const float* g = rg.data_ptr<float>();
  zt::ops::AdamStep s;
  s.weight_decay = 0.01f;
  std::int64_t t = 0;
  const double ours = MedianSeconds(repeats, [&] {
    s.step = ++t;
    zt::ops::CpuAdam(p, g, m.data_ptr<float>(), v.data_ptr<float>(), n, s, {}, {isa, threads});
  });
  const double ours_bf16 = MedianSeconds(repeats, [&] {
    s.step = ++t;
    zt::ops::CpuAdam(p, g, m.data_ptr<float>(), v.data_ptr<float>(), n, s, {zt::ops::Half16::kBf16, out.data_ptr()},
                     {isa, threads});
  });
  std::printf("zerotrain CpuAdam (%s): %.1f Mparam/s; with bf16 write-out: %.1f Mparam/s\n", zt::ops::CpuIsaName(isa),
              n / ours / 1e6, n / ours_bf16 / 1e6);

  at::set_num_threads(threads);
  at::Tensor tp = rp.clone().set_requires_grad(true);
  tp.mutable_grad() = rg.clone();
  torch::optim::AdamW torch_opt(std::vector<at::Tensor>{tp}, torch::optim::AdamWOptions(1e-3).weight_decay(0.01));
  const double theirs = MedianSeconds(repeats, [&] { torch_opt.step(); });
  std::printf("LibTorch %s torch::optim::AdamW: %.1f Mparam/s\n", TORCH_VERSION, n / theirs / 1e6);

  const double x = n / ours / 1e6, y = n / theirs / 1e6;
  std::printf("cpu_adam_mparams_per_s=%.1f torch_adamw_mparams_per_s=%.1f speedup=%.2f triad_fraction=%.2f\n", x, y,
              x / y, x * 1e6 * 28 / (triad * 1e9));
  return 0;
}
