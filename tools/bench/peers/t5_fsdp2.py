#!/usr/bin/env python3
"""Multi-GPU peer of //tools/bench:t5_bench at ZeRO-3: PyTorch FSDP2 on HF's T5ForConditionalGeneration.

    torchrun --nproc_per_node=2 tools/bench/peers/t5_fsdp2.py --model t5-large --batch 16 --src_len 512 --tgt_len 128

fully_shard per encoder and decoder block, then the root; MixedPrecisionPolicy(param_dtype=bf16,
reduce_dtype=fp32); torch.optim.AdamW(fused=True) (lr 1e-4) on the fp32 sharded parameters;
gradient clipping at 1.0; dropout as the config has it; random init and synthetic token ids (the
same per rank as t5_bench: batch per GPU).  Median step time over --steps after --warmup steps
(loss synchronised); tokens/s over all ranks; peak CUDA memory of rank 0.  FLOPs as t5_hf.py
(and t5_bench.cc) count them.
"""
import argparse
import os
import statistics
import time

import torch
import torch.distributed as dist
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from transformers import T5ForConditionalGeneration

from t5_hf import named_config, step_flops


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="t5-large")
    p.add_argument("--batch", type=int, default=16, help="per GPU")
    p.add_argument("--src_len", type=int, default=512)
    p.add_argument("--tgt_len", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--peak_tflops", type=float, default=989.0)
    a = p.parse_args()
    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    cfg = named_config(a.model)
    torch.manual_seed(1)
    with torch.device("cuda"):
        model = T5ForConditionalGeneration(cfg).train()
    params = sum(x.numel() for x in model.parameters())
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    for stack in (model.encoder, model.decoder):
        for block in stack.block:
            fully_shard(block, mp_policy=mp)
    fully_shard(model, mp_policy=mp)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    torch.manual_seed(100 + rank)
    ids = torch.randint(2, cfg.vocab_size, (a.batch, a.src_len), device="cuda")
    mask = torch.ones_like(ids)
    labels = torch.randint(2, cfg.vocab_size, (a.batch, a.tgt_len), device="cuda")
    times = []
    for i in range(a.warmup + a.steps):
        if i == a.warmup:
            torch.cuda.reset_peak_memory_stats()
        dist.barrier()
        t0 = time.perf_counter()
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    tflops = step_flops(cfg, a.batch, a.src_len, a.tgt_len) / med / 1e12
    if rank == 0:
        print(f"t5_fsdp2: {a.model} ({params / 1e6:.0f}M params), {torch.cuda.get_device_name()} x {world}, "
              f"batch {a.batch} per GPU, source {a.src_len} / target {a.tgt_len}, torch {torch.__version__}, "
              f"FSDP2 fully_shard per block, bf16 params, fp32 reduce, fused AdamW")
        print(f"step_s={med:.4f} tokens_per_s={world * a.batch * (a.src_len + a.tgt_len) / med:.0f} "
              f"tflops={tflops:.1f} mfu={tflops / a.peak_tflops:.3f} "
              f"peak_gpu_gb={torch.cuda.max_memory_allocated() / 1e9:.2f}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
