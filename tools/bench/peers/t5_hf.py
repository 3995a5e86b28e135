#!/usr/bin/env python3
"""GPU peer of //tools/bench:t5_bench: HF transformers' T5ForConditionalGeneration, random init.

    python3 tools/bench/peers/t5_hf.py --model t5-large --batch 16 --src_len 512 --tgt_len 128 [--compile]

fp32 parameters, torch.autocast bf16, torch.optim.AdamW(fused=True) (lr 1e-4), dropout as the
config has it, synthetic token ids; median step time over --steps after --warmup steps (loss
synchronised), then the mean step of --steps more with no wait between them (one at the end),
peak CUDA memory (torch.cuda.max_memory_allocated) over the timed steps.  FLOPs
counted exactly as t5_bench.cc counts them.  The architecture table is t5_config.cc's (no
download: the machine has no network).
"""
import argparse
import statistics
import time

import torch
from transformers import T5Config, T5ForConditionalGeneration

NAMED = {  # name: d_model, d_ff, d_kv, heads, layers, v1.1 (gated-gelu, untied)
    "t5-small": (512, 2048, 64, 8, 6, False), "t5-base": (768, 3072, 64, 12, 12, False),
    "t5-large": (1024, 4096, 64, 16, 24, False), "t5-3b": (1024, 16384, 128, 32, 24, False),
    "t5-11b": (1024, 65536, 128, 128, 24, False), "t5-v1_1-large": (1024, 2816, 64, 16, 24, True),
    "flan-t5-large": (1024, 2816, 64, 16, 24, True), "flan-t5-xl": (2048, 5120, 64, 32, 24, True),
}


def named_config(model):
    """HF's T5Config for a name of NAMED (dropout 0.1, t5_config.cc's token ids)."""
    d, dff, dkv, h, n, v11 = NAMED[model.removeprefix("google/")]
    return T5Config(vocab_size=32128, d_model=d, d_ff=dff, d_kv=dkv, num_heads=h, num_layers=n,
                    num_decoder_layers=n, feed_forward_proj="gated-gelu" if v11 else "relu",
                    tie_word_embeddings=not v11, dropout_rate=0.1, pad_token_id=0, eos_token_id=1,
                    decoder_start_token_id=0)


def step_flops(c, b, s, t):
    d, inner = c.d_model, c.num_heads * c.d_kv
    ff = (3.0 if c.is_gated_act else 2.0) * d * c.d_ff
    enc_tok = 4 * d * inner + ff
    dec_tok = 4 * d * inner + 2 * d * inner + ff
    cross_kv_src = 2 * d * inner
    fwd = 2 * b * (s * c.num_layers * enc_tok + t * c.num_decoder_layers * dec_tok
                   + s * c.num_decoder_layers * cross_kv_src + t * d * c.vocab_size)
    fwd += 4 * b * inner * (c.num_layers * s * s + c.num_decoder_layers * (t * t + t * s))
    return 3 * fwd


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="t5-large")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--src_len", type=int, default=512)
    p.add_argument("--tgt_len", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--peak_tflops", type=float, default=989.0)
    a = p.parse_args()
    cfg = named_config(a.model)
    torch.manual_seed(1)
    model = T5ForConditionalGeneration(cfg).cuda().train()
    params = sum(x.numel() for x in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    ids = torch.randint(2, cfg.vocab_size, (a.batch, a.src_len), device="cuda")
    mask = torch.ones_like(ids)
    labels = torch.randint(2, cfg.vocab_size, (a.batch, a.tgt_len), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    if a.compile:
        step = torch.compile(step)
    times = []
    for i in range(a.warmup + a.steps):
        if i == a.warmup:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        step().item()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    # The same steps with no wait between them (one at the window's end), as t5_bench does.
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(a.steps):
        loss = step()
    loss.item()
    window = (time.perf_counter() - t0) / a.steps
    med = statistics.median(times)
    tflops = step_flops(cfg, a.batch, a.src_len, a.tgt_len) / med / 1e12
    print(f"t5_hf: {a.model} ({params / 1e6:.0f}M params), {torch.cuda.get_device_name()}, batch {a.batch}, "
          f"source {a.src_len} / target {a.tgt_len}, torch {torch.__version__}, "
          f"{'torch.compile' if a.compile else 'eager'}, bf16 autocast, fused AdamW")
    print(f"step_s={med:.4f} tokens_per_s={a.batch * (a.src_len + a.tgt_len) / med:.0f} tflops={tflops:.1f} "
          f"mfu={tflops / a.peak_tflops:.3f} peak_gpu_gb={torch.cuda.max_memory_allocated() / 1e9:.2f}")
    print(f"unsynced window of {a.steps} steps: step_s={window:.4f} "
          f"tokens_per_s={a.batch * (a.src_len + a.tgt_len) / window:.0f} mfu={tflops * med / window / a.peak_tflops:.3f}")


if __name__ == "__main__":
    main()
