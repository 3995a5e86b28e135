// T5 attention, forward + backward, on t5-large's three shapes: the tensor-core kernels
// (bias_attention_autograd.h) beside HF's T5Attention as ATen ops (bf16 matmuls, float32
// softmax cast back, dropout) and LibTorch's scaled_dot_product_attention with the bias as its
// mask, in the same process on the same inputs.
//
//   bazel run -c opt --config=cuda //ops/cuda:bias_attention_benchmark -- [--b=16] [--h=16] [--d=64]
//       [--dtype=bf16|fp16] [--dropout=0.1] [--iters=20]
//
// Shapes (t5-large, source 512 / target 128): encoder self-attention 512 x 512 with the trained
// position bias and a padding mask; decoder self-attention 128 x 128 with the position bias and
// a causal mask; cross-attention 128 x 512 with the padding mask only.  TFLOPS counts the
// forward's two products and the backward's five: 14 * B * H * Lq * Lk * D per step.  Our kernels
// also run without dropout and with the position bias frozen (no dpos atomics), to show what
// each costs.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "ops/cuda/bias_attention_autograd.h"

namespace {

struct Options {
  std::int64_t b = 16, h = 16, d = 64;
  double dropout = 0.1;
  int iters = 20;
  at::ScalarType dtype = at::kBFloat16;
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
    } else if (Flag(arg, "dropout", &v)) {
      o.dropout = std::stod(v);
    } else if (Flag(arg, "iters", &v)) {
      o.iters = std::stoi(v);
    } else if (Flag(arg, "dtype", &v) && (v == "bf16" || v == "fp16")) {
      o.dtype = v == "bf16" ? at::kBFloat16 : at::kHalf;
    } else {
      std::fprintf(stderr, "bad argument %s (flags: --b --h --d --dtype=bf16|fp16 --dropout --iters)\n", arg.c_str());
      std::exit(2);
    }
  }
  return o;
}

struct Shape {
  const char* name;
  std::int64_t lq, lk;
  bool pos, causal;
};

struct Inputs {
  at::Tensor q, k, v, pos, mask, dout;  // q, k, v [B, L, H, D] leaves; pos [1, H, Lq, Lk] or undefined
};

Inputs MakeInputs(const Options& o, const Shape& s) {
  const auto opts = at::TensorOptions().dtype(o.dtype).device(at::kCUDA);
  const double lowest = o.dtype == at::kHalf ? -65504.0 : -3.3895313892515355e38;
  Inputs in;
  in.q = at::randn({o.b, s.lq, o.h, o.d}, opts).requires_grad_(true);
  in.k = at::randn({o.b, s.lk, o.h, o.d}, opts).requires_grad_(true);
  in.v = at::randn({o.b, s.lk, o.h, o.d}, opts).requires_grad_(true);
  if (s.pos) in.pos = at::randn({1, o.h, s.lq, s.lk}, opts).requires_grad_(true);
  if (s.causal) {
    in.mask =
        (1 - at::ones({s.lq, s.lk}, opts.dtype(at::kFloat)).tril()).mul(lowest).to(o.dtype).view({1, 1, s.lq, s.lk});
  } else {  // the last eighth of a quarter of the rows' keys padded
    at::Tensor pad = at::zeros({o.b, s.lk}, opts.dtype(at::kFloat));
    for (std::int64_t b = 0; b < o.b; b += 4) pad[b].narrow(0, s.lk - s.lk / 8, s.lk / 8).fill_(lowest);
    in.mask = pad.to(o.dtype).view({o.b, 1, 1, s.lk});
  }
  in.dout = at::randn({o.b, s.lq, o.h * o.d}, opts);
  return in;
}

using Attention = std::function<at::Tensor(const Inputs&)>;

// HF's T5Attention: bf16 scores, the bias added, float32 softmax cast back, dropout, bf16 product.
at::Tensor Eager(const Inputs& in, double dropout) {
  const at::Tensor q = in.q.transpose(1, 2), k = in.k.transpose(1, 2), v = in.v.transpose(1, 2);
  at::Tensor scores = at::matmul(q, k.transpose(2, 3));
  scores = scores + (in.pos.defined() ? in.pos + in.mask : in.mask);
  at::Tensor p = at::softmax(scores.to(at::kFloat), -1).to(scores.scalar_type());
  p = at::dropout(p, dropout, /*train=*/true);
  const at::Tensor out = at::matmul(p, v);
  return out.transpose(1, 2).reshape({in.q.size(0), in.q.size(1), -1});
}

at::Tensor Sdpa(const Inputs& in, double dropout) {
  const at::Tensor bias =
      in.pos.defined() ? in.pos + in.mask : in.mask.expand({in.q.size(0), in.q.size(2), in.q.size(1), in.k.size(1)});
  const at::Tensor out = at::scaled_dot_product_attention(in.q.transpose(1, 2), in.k.transpose(1, 2),
                                                          in.v.transpose(1, 2), bias, dropout, false, 1.0);
  return out.transpose(1, 2).reshape({in.q.size(0), in.q.size(1), -1});
}

void Step(const Inputs& in, const Attention& fn) {
  at::Tensor out = fn(in);
  out.backward(in.dout);
  for (at::Tensor t : {in.q, in.k, in.v, in.pos}) {
    if (t.defined()) t.mutable_grad().reset();
  }
}

double MillisPerStep(const Inputs& in, const Attention& fn, int iters) {
  for (int i = 0; i < 3; ++i) Step(in, fn);
  cudaDeviceSynchronize();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) Step(in, fn);
  cudaDeviceSynchronize();
  const std::chrono::duration<double, std::milli> elapsed = std::chrono::steady_clock::now() - start;
  return elapsed.count() / iters;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = Parse(argc, argv);
  if (!at::hasCUDA()) {
    std::fprintf(stderr, "no CUDA device\n");
    return 1;
  }
  cudaFree(nullptr);
  std::printf("T5 attention forward+backward, B=%lld H=%lld D=%lld %s, dropout %.2f, %d iterations\n",
              static_cast<long long>(o.b), static_cast<long long>(o.h), static_cast<long long>(o.d),
              std::string(c10::toString(o.dtype)).c_str(), o.dropout, o.iters);
  std::printf("%-14s  %-38s  %9s  %7s\n", "shape", "implementation", "ms", "TFLOPS");
  const std::vector<Shape> shapes = {{"encoder self", 512, 512, true, false},
                                     {"decoder self", 128, 128, true, true},
                                     {"cross", 128, 512, false, false}};
  namespace zc = zt::ops::cuda;
  for (const Shape& s : shapes) {
    Inputs in = MakeInputs(o, s);
    const double flop = 14.0 * o.b * o.h * s.lq * s.lk * o.d;
    const double p = o.dropout;
    std::vector<std::pair<std::string, Attention>> runs = {
        {"zerotrain kernels",
         [p](const Inputs& x) { return zc::BiasAttentionCuda(x.q, x.k, x.v, x.pos, x.mask, 1.0, p, true); }},
        {"zerotrain kernels, no dropout",
         [](const Inputs& x) { return zc::BiasAttentionCuda(x.q, x.k, x.v, x.pos, x.mask, 1.0, 0.0, true); }},
        {"zerotrain kernels, pos frozen",
         [p](const Inputs& x) {
           return zc::BiasAttentionCuda(x.q, x.k, x.v, x.pos.defined() ? x.pos.detach() : x.pos, x.mask, 1.0, p, true);
         }},
        {"HF T5Attention as ATen ops", [p](const Inputs& x) { return Eager(x, p); }},
        {"at::scaled_dot_product_attention", [p](const Inputs& x) { return Sdpa(x, p); }},
    };
    for (const auto& [name, fn] : runs) {
      if (!s.pos && name == "zerotrain kernels, pos frozen") continue;
      if (name.rfind("zerotrain", 0) == 0 && !fn(in).defined()) {
        std::printf("%-14s  %-38s  (the kernels refused these inputs)\n", s.name, name.c_str());
        continue;
      }
      const double ms = MillisPerStep(in, fn, o.iters);
      std::printf("%-14s  %-38s  %9.3f  %7.1f\n", s.name, name.c_str(), ms, flop / ms * 1e-9);
      std::fflush(stdout);
    }
  }
  return 0;
}
