// Google Benchmark links and runs: the micro-benchmarks beside the code (foo_benchmark.cc) use it.
#include <benchmark/benchmark.h>

#include <numeric>
#include <vector>

#include "gtest/gtest.h"

namespace {

int g_runs = 0;

void BM_Sum(benchmark::State& state) {
  std::vector<float> v(1024, 1.0f);
  for (auto _ : state) benchmark::DoNotOptimize(std::accumulate(v.begin(), v.end(), 0.0f));
  ++g_runs;
}
BENCHMARK(BM_Sum)->Iterations(10);

TEST(GoogleBenchmark, RunsARegisteredBenchmark) {
  int argc = 1;
  char arg0[] = "benchmark_test";
  char* argv[] = {arg0, nullptr};
  benchmark::Initialize(&argc, argv);
  EXPECT_EQ(benchmark::RunSpecifiedBenchmarks(), 1u);
  EXPECT_GE(g_runs, 1);
}

}  // namespace
