// Pair-bias attention, forward + backward: the reference (ATen ops, [B,H,N,N] float32
// probabilities) against the fused CUDA kernel, time and peak CUDA memory per N.
//
//   bazel run -c opt --config=cuda //ops/cuda:pair_bias_attention_benchmark -- [--b=8] [--h=8] [--d=32]
//       [--dtype=bf16|fp16|fp32] [--iters=20] [--n=64,128,256,512,1024]
//
// Peak MiB is the CUDA caching allocator's peak during one forward + backward above what the
// inputs (q, k, v, bias, key_mask, dout) already hold; it includes the gradients.  A quarter of
// the batch has its last eighth of keys padded.
#include <ATen/ATen.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "ops/cuda/pair_bias_attention_autograd.h"
#include "ops/pair_bias_attention.h"

namespace {

using AttentionFn = at::Tensor (*)(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                   const at::Tensor&, double);

struct Options {
  std::int64_t b = 8, h = 8, d = 32;
  int iters = 20;
  at::ScalarType dtype = at::kBFloat16;
  std::vector<std::int64_t> ns = {64, 128, 256, 512, 1024};
};

bool Flag(const std::string& arg, const char* name, std::string* value) {
  const std::string prefix = std::string("--") + name + "=";
  if (arg.rfind(prefix, 0) != 0) return false;
  *value = arg.substr(prefix.size());
  return true;
}

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    std::string v;
    if (Flag(arg, "b", &v)) {
      o.b = std::stoll(v);
    } else if (Flag(arg, "h", &v)) {
      o.h = std::stoll(v);
    } else if (Flag(arg, "d", &v)) {
      o.d = std::stoll(v);
    } else if (Flag(arg, "iters", &v)) {
      o.iters = std::stoi(v);
    } else if (Flag(arg, "dtype", &v)) {
      if (v == "bf16") {
        o.dtype = at::kBFloat16;
      } else if (v == "fp16") {
        o.dtype = at::kHalf;
      } else if (v == "fp32") {
        o.dtype = at::kFloat;
      } else {
        std::fprintf(stderr, "--dtype must be bf16, fp16 or fp32, got %s\n", v.c_str());
        std::exit(2);
      }
    } else if (Flag(arg, "n", &v)) {
      o.ns.clear();
      std::stringstream ss(v);
      for (std::string item; std::getline(ss, item, ',');) o.ns.push_back(std::stoll(item));
    } else {
      std::fprintf(stderr, "unknown argument %s (flags: --b --h --d --dtype --iters --n)\n", arg.c_str());
      std::exit(2);
    }
  }
  return o;
}

struct Inputs {
  at::Tensor q, k, v, bias, key_mask, dout;
  double scale;
};

Inputs MakeInputs(const Options& o, std::int64_t n) {
  const auto opts = at::TensorOptions().dtype(o.dtype).device(at::kCUDA);
  Inputs in;
  in.q = at::randn({o.b, o.h, n, o.d}, opts).requires_grad_(true);
  in.k = at::randn({o.b, o.h, n, o.d}, opts).requires_grad_(true);
  in.v = at::randn({o.b, o.h, n, o.d}, opts).requires_grad_(true);
  in.bias = at::randn({o.b, o.h, n, n}, opts).requires_grad_(true);
  in.key_mask = at::ones({o.b, n}, at::TensorOptions().dtype(at::kBool).device(at::kCUDA));
  for (std::int64_t b = 0; b < o.b; b += 4) in.key_mask[b].narrow(0, n - n / 8, n / 8).fill_(false);
  in.dout = at::randn({o.b, o.h, n, o.d}, opts);
  in.scale = 1.0 / std::sqrt(static_cast<double>(o.d));
  return in;
}

void Step(const Inputs& in, AttentionFn fn) {
  at::Tensor out = fn(in.q, in.k, in.v, in.bias, in.key_mask, in.scale);
  out.backward(in.dout);
  for (at::Tensor t : {in.q, in.k, in.v, in.bias}) t.mutable_grad().reset();  // a handle of the same leaf
}

double MillisPerStep(const Inputs& in, AttentionFn fn, int iters) {
  for (int i = 0; i < 3; ++i) Step(in, fn);
  cudaDeviceSynchronize();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) Step(in, fn);
  cudaDeviceSynchronize();
  const std::chrono::duration<double, std::milli> elapsed = std::chrono::steady_clock::now() - start;
  return elapsed.count() / iters;
}

double PeakMiB(const Inputs& in, AttentionFn fn) {
  namespace alloc = c10::cuda::CUDACachingAllocator;
  constexpr auto kAll = static_cast<std::size_t>(c10::CachingAllocator::StatType::AGGREGATE);
  const auto device = c10::cuda::current_device();
  cudaDeviceSynchronize();
  alloc::resetPeakStats(device);
  const std::int64_t before = alloc::getDeviceStats(device).allocated_bytes[kAll].current;
  Step(in, fn);
  cudaDeviceSynchronize();
  return (alloc::getDeviceStats(device).allocated_bytes[kAll].peak - before) / 1048576.0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = Parse(argc, argv);
  if (!at::hasCUDA()) {
    std::fprintf(stderr, "no CUDA device\n");
    return 1;
  }
  cudaFree(nullptr);  // make the primary context current before cuBLAS wants one
  std::printf("pair-bias attention forward+backward, B=%lld H=%lld D=%lld %s, %d iterations\n",
              static_cast<long long>(o.b), static_cast<long long>(o.h), static_cast<long long>(o.d),
              std::string(c10::toString(o.dtype)).c_str(), o.iters);
  std::printf("%6s  %14s  %12s  %8s  %15s  %13s\n", "N", "reference ms", "fused ms", "speedup", "reference MiB",
              "fused MiB");
  for (const std::int64_t n : o.ns) {
    const Inputs in = MakeInputs(o, n);
    const double ref_ms = MillisPerStep(in, zt::ops::PairBiasAttentionReference, o.iters);
    const double fused_ms = MillisPerStep(in, zt::ops::cuda::PairBiasAttentionCuda, o.iters);
    const double ref_mib = PeakMiB(in, zt::ops::PairBiasAttentionReference);
    const double fused_mib = PeakMiB(in, zt::ops::cuda::PairBiasAttentionCuda);
    std::printf("%6lld  %14.3f  %12.3f  %7.2fx  %15.1f  %13.1f\n", static_cast<long long>(n), ref_ms, fused_ms,
                ref_ms / fused_ms, ref_mib, fused_mib);
    std::fflush(stdout);
  }
  return 0;
}
