#!/usr/bin/env python3
"""GPU peer of //tools/bench:zero_stages --backend=nccl: PyTorch FSDP on the same model.

    python3 tools/bench/peers/zero_stages_fsdp.py --world 2 --layers 8 --dim 1024 --heads 16 --seq 256 --micro 8
    python3 tools/bench/peers/zero_stages_fsdp.py --world 1 --layers 20 --dim 2048 --bf16 --gas 16 --cpu_offload

SHARD_GRAD_OP is FSDP's ZeRO-2 (gradients and optimizer state sharded, parameters kept after
forward), FULL_SHARD its ZeRO-3 (parameters gathered per wrapped module and freed after use).
Wrapped modules are the same units as the C++ model's: each block's attention sublayer and
feedforward sublayer.  fp32, torch AdamW (lr 1e-4, weight decay 0.01), no clipping, one process
per GPU over NCCL; median step time of rank 0 over --steps after --warmup steps, and its peak
CUDA memory (torch.cuda.max_memory_allocated) over the timed steps.  --bf16 computes in bf16
with fp32 parameters kept by FSDP (MixedPrecision), --gas accumulates micro-steps (no_sync),
--cpu_offload adds FSDP's CPUOffload (parameters and gradients in host memory, torch AdamW
stepping on the CPU): FSDP's counterpart of ZeRO-Offload.
"""
import argparse
import functools
import math
import os
import socket
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
from torch.distributed.fsdp import CPUOffload, MixedPrecision, ShardingStrategy
from torch.distributed.fsdp.wrap import ModuleWrapPolicy


class Attention(torch.nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.ln = torch.nn.LayerNorm(dim)
        self.qkv = torch.nn.Linear(dim, 3 * dim, bias=False)
        self.proj = torch.nn.Linear(dim, dim)

    def forward(self, x):
        n, s, d = x.shape
        hd = d // self.heads
        q, k, v = self.qkv(self.ln(x)).view(n, s, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(hd), -1)
        return x + self.proj((att @ v).transpose(1, 2).reshape(n, s, d))


class Feedforward(torch.nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.ln = torch.nn.LayerNorm(dim)
        self.up = torch.nn.Linear(dim, hidden)
        self.down = torch.nn.Linear(hidden, dim)

    def forward(self, x):
        return x + self.down(torch.nn.functional.gelu(self.up(self.ln(x))))


class Stack(torch.nn.Module):
    def __init__(self, layers, dim, heads, hidden):
        super().__init__()
        self.blocks = torch.nn.ModuleList()
        for _ in range(layers):
            self.blocks.append(Attention(dim, heads))
            self.blocks.append(Feedforward(dim, hidden))

    def forward(self, x, y):
        for b in self.blocks:
            x = b(x)
        return ((x - y) ** 2).mean()


def worker(rank, args, port, strategy, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=args.world, device_id=torch.device("cuda", rank))
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(1)
    model = Stack(args.layers, args.dim, args.heads, 4 * args.dim)
    params = sum(p.numel() for p in model.parameters())
    mp_policy = MixedPrecision(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if args.bf16 else None
    model = FSDP(model if args.cpu_offload else model.cuda(), sharding_strategy=getattr(ShardingStrategy, strategy),
                 auto_wrap_policy=ModuleWrapPolicy({Attention, Feedforward}), device_id=rank,
                 mixed_precision=mp_policy, cpu_offload=CPUOffload(offload_params=args.cpu_offload))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    times = []
    for step in range(args.warmup + args.steps):
        batches = []
        for k in range(args.gas):
            g = torch.Generator().manual_seed(100 * (args.gas * step + k) + rank)
            batches.append((torch.randn(args.micro, args.seq, args.dim, generator=g).cuda(),
                            torch.randn(args.micro, args.seq, args.dim, generator=g).cuda()))
        dist.barrier()
        torch.cuda.synchronize()
        if step == args.warmup:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for k, (x, y) in enumerate(batches):
            if k + 1 < args.gas:
                with model.no_sync():
                    (model(x, y) / args.gas).backward()
            else:
                loss = model(x, y)
                (loss / args.gas).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        if step >= args.warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    if rank == 0:
        results.put((params, statistics.median(times), torch.cuda.max_memory_allocated()))
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--world", type=int, default=2)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--micro", type=int, default=8)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--gas", type=int, default=1)
    p.add_argument("--cpu_offload", action="store_true")
    p.add_argument("--strategies", default="SHARD_GRAD_OP,FULL_SHARD")
    args = p.parse_args()
    summary = []
    names = {"SHARD_GRAD_OP": "SHARD_GRAD_OP (ZeRO-2)", "FULL_SHARD": "FULL_SHARD (ZeRO-3)"}
    for strategy in args.strategies.split(","):
        name = names[strategy] + (" + CPUOffload" if args.cpu_offload else "")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        ctx = mp.get_context("spawn")
        results = ctx.Queue()
        procs = [ctx.Process(target=worker, args=(r, args, port, strategy, results)) for r in range(args.world)]
        for pr in procs:
            pr.start()
        params, ms, peak = results.get()
        for pr in procs:
            pr.join()
        print("torch %s FSDP %s: %d parameters, median step %.1f ms, peak CUDA memory %.1f MB" %
              (torch.__version__, name, params, ms, peak / 1e6))
        key = strategy + ("_cpu_offload" if args.cpu_offload else "")
        summary.append("%s_ms=%.1f %s_peak_MB=%.1f" % (key, ms, key, peak / 1e6))
    print(" ".join(summary))


if __name__ == "__main__":
    main()
