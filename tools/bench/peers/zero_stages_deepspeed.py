#!/usr/bin/env python3
"""Peer of //tools/bench:zero_stages: DeepSpeed itself on the same model and settings.

    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install torch==2.11.0 deepspeed==0.19.8
    /tmp/peers/bin/python tools/bench/peers/zero_stages_deepspeed.py --world 2 --layers 4 --dim 256

Same model as core/engine/test_models.cc's transformer stack (pre-LayerNorm attention without qkv bias + GELU MLP
blocks, MSE loss), fp32, AdamW (torch_adam: DeepSpeed's FusedAdam is CUDA-only), no clipping,
ZeRO stage 0-3 with overlap_comm (stage 3: prefetch 0.9 dim^2, persistence threshold 10 dim, as
HF's "auto"), on DeepSpeed's CPU accelerator over Gloo, one process per
rank with one torch thread each.  Prints the median step time of rank 0 over --steps after
--warmup steps, ranks started together by a barrier.
"""
import argparse
import math
import os
import socket
import statistics
import time

import torch
import torch.multiprocessing as mp


class Block(torch.nn.Module):
    def __init__(self, dim, heads, mlp):
        super().__init__()
        self.heads = heads
        self.ln1 = torch.nn.LayerNorm(dim)
        self.qkv = torch.nn.Linear(dim, 3 * dim, bias=False)
        self.proj = torch.nn.Linear(dim, dim)
        self.ln2 = torch.nn.LayerNorm(dim)
        self.up = torch.nn.Linear(dim, mlp)
        self.down = torch.nn.Linear(mlp, dim)

    def forward(self, x):
        n, s, d = x.shape
        hd = d // self.heads
        q, k, v = self.qkv(self.ln1(x)).view(n, s, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(hd), -1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(n, s, d))
        return x + self.down(torch.nn.functional.gelu(self.up(self.ln2(x))))


class Stack(torch.nn.Module):
    def __init__(self, layers, dim, heads, mlp):
        super().__init__()
        self.blocks = torch.nn.ModuleList(Block(dim, heads, mlp) for _ in range(layers))

    def forward(self, x, y):
        for b in self.blocks:
            x = b(x)
        return ((x - y) ** 2).mean()


def worker(rank, args, port, results):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(args.world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), DS_ACCELERATOR="cpu")
    torch.set_num_threads(1)
    import deepspeed
    import deepspeed.comm as dist
    torch.manual_seed(1)
    model = Stack(args.layers, args.dim, args.heads, 4 * args.dim)
    config = {
        "train_micro_batch_size_per_gpu": args.micro, "gradient_clipping": 0.0, "steps_per_print": 10**9,
        "optimizer": {"type": "AdamW", "params": {"lr": 1e-4, "weight_decay": 0.01, "torch_adam": True}},
        "zero_optimization": {"stage": args.stage, "reduce_bucket_size": args.bucket,
                              "allgather_bucket_size": args.bucket, "overlap_comm": True,
                              "stage3_prefetch_bucket_size": int(0.9 * args.dim * args.dim),
                              "stage3_param_persistence_threshold": 10 * args.dim},
    }
    engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=model.parameters(), config=config)
    times = []
    for step in range(args.warmup + args.steps):
        g = torch.Generator().manual_seed(100 * step + rank)
        x = torch.randn(args.micro, args.seq, args.dim, generator=g)
        y = torch.randn(args.micro, args.seq, args.dim, generator=g)
        dist.barrier()
        t0 = time.perf_counter()
        loss = engine(x, y)
        engine.backward(loss)
        engine.step()
        if step >= args.warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    if rank == 0:
        # At stage 3 DeepSpeed replaces parameters by partitions: count the model as built.
        results.put((args.params, statistics.median(times)))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--world", type=int, default=2)
    p.add_argument("--stages", default="0,1,2,3")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--micro", type=int, default=4)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--bucket", type=int, default=500000000)
    args = p.parse_args()
    import deepspeed
    args.params = sum(p.numel() for p in Stack(args.layers, args.dim, args.heads, 4 * args.dim).parameters())
    summary = []
    for stage in [int(s) for s in args.stages.split(",")]:
        args.stage = stage
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        ctx = mp.get_context("spawn")
        results = ctx.Queue()
        procs = [ctx.Process(target=worker, args=(r, args, port, results)) for r in range(args.world)]
        for pr in procs:
            pr.start()
        params, ms = results.get()
        for pr in procs:
            pr.join()
        print("deepspeed %s stage %d: %d parameters, median step %.1f ms" % (deepspeed.__version__, stage, params, ms))
        summary.append("stage%d_ms=%.1f" % (stage, ms))
    print(" ".join(summary))


if __name__ == "__main__":
    main()
