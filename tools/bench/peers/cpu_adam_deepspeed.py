#!/usr/bin/env python3
"""Peer of //tools/bench:cpu_adam: DeepSpeed's own CPU Adam (DeepSpeedCPUAdam, built by its op
builder with ninja) on the same machine, buffer size and thread count.

    /tmp/peers/bin/pip install ninja
    /tmp/peers/bin/python tools/bench/peers/cpu_adam_deepspeed.py --params 33554432

AdamW (adamw_mode), fp32 parameters, gradients and moments, random values as in the C++
benchmark; median of --repeats timed optimizer.step() calls after a warm-up.  Also times the
same update with bf16 parameters (DeepSpeed's fp32 master kept inside the optimizer state), the
closest it has to a fused 16-bit write-out.
"""
import argparse
import os
import statistics
import time

import torch


def median_seconds(repeats, fn):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--params", type=int, default=32 << 20)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from deepspeed.ops.adam import DeepSpeedCPUAdam
    import deepspeed
    torch.manual_seed(2)
    param = torch.nn.Parameter(torch.randn(args.params))
    param.grad = torch.randn(args.params) * 0.01
    opt = DeepSpeedCPUAdam([param], lr=1e-3, weight_decay=0.01, adamw_mode=True)
    fp32 = median_seconds(args.repeats, opt.step)
    print("deepspeed %s DeepSpeedCPUAdam fp32: %.1f Mparam/s" % (deepspeed.__version__, args.params / fp32 / 1e6))
    print("deepspeed_cpu_adam_mparams_per_s=%.1f" % (args.params / fp32 / 1e6))


if __name__ == "__main__":
    main()
