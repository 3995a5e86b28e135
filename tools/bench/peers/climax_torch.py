#!/usr/bin/env python3
"""GPU peer of //tools/bench:climax_bench: science/climate/climax.cc's architecture in PyTorch.

    python3 tools/bench/peers/climax_torch.py --height 128 --width 256 [--compile]

Per-variable patch embedding, variable embedding, cross-attention aggregation over the variables,
position and lead-time embeddings, pre-norm ViT blocks (F.scaled_dot_product_attention), an MLP
head to patches, the residual forecast and the latitude-weighted MSE: the same parameters and
FLOPs as ours.  fp32 parameters, torch.autocast bf16, torch.optim.AdamW(fused=True), lr 1e-4,
gradient clipping 1.0 (as the engine's config); median step time over --steps after --warmup
(loss synchronised), peak CUDA memory (max_memory_allocated) over the timed steps.
"""
import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def __init__(self, d, heads, ratio):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, ratio * d), nn.Linear(ratio * d, d)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class Climax(nn.Module):
    def __init__(self, v, h, w, p, d, depth, heads, ratio=4):
        super().__init__()
        self.v, self.p, self.d, self.heads = v, p, d, heads
        self.hp, self.wp = math.ceil(h / p) * p, math.ceil(w / p) * p
        tokens = (self.hp // p) * (self.wp // p)
        self.patch_weight = nn.Parameter(torch.randn(v, d, p * p) * 0.02)
        self.patch_bias = nn.Parameter(torch.zeros(v, d))
        self.variable_embedding = nn.Parameter(torch.randn(v, d) * 0.02)
        self.query = nn.Parameter(torch.randn(1, d) * 0.02)
        self.q, self.kv = nn.Linear(d, d, bias=False), nn.Linear(d, 2 * d, bias=False)
        self.out = nn.Linear(d, d)
        self.position_embedding = nn.Parameter(torch.randn(tokens, d) * 0.02)
        self.lead = nn.Linear(1, d)
        self.blocks = nn.ModuleList(Block(d, heads, ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, v * p * p))

    def forward(self, x, lead_hours):
        b, v, h, w = x.shape
        p, d, H = self.p, self.d, self.heads
        xp = F.pad(x, (0, self.wp - w, 0, self.hp - h))
        gh, gw = self.hp // p, self.wp // p
        patches = xp.view(b, v, gh, p, gw, p).permute(0, 1, 2, 4, 3, 5).reshape(b, v, gh * gw, p * p)
        emb = patches @ self.patch_weight.transpose(1, 2).unsqueeze(0)
        emb = emb + (self.patch_bias + self.variable_embedding).view(1, v, 1, d)
        tokens = emb.permute(0, 2, 1, 3).reshape(b * gh * gw, v, d)
        k, val = self.kv(tokens).chunk(2, dim=-1)
        heads = lambda t: t.view(t.shape[0], t.shape[1], H, d // H).transpose(1, 2)
        q = heads(self.q(self.query).unsqueeze(0).expand(b * gh * gw, 1, d))
        a = F.scaled_dot_product_attention(q, heads(k), heads(val)).transpose(1, 2).reshape(b, gh * gw, d)
        t = self.out(a) + self.position_embedding + self.lead((lead_hours / 100).view(b, 1)).unsqueeze(1)
        for blk in self.blocks:
            t = blk(t)
        y = self.head(self.norm(t)).view(b, gh, gw, v, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, v, self.hp, self.wp)
        return x + y[:, :, :h, :w]


def main():
    ap = argparse.ArgumentParser()
    for name, default in [("variables", 5), ("height", 32), ("width", 64), ("patch", 2), ("embed", 1024),
                          ("depth", 8), ("heads", 16), ("batch", 16), ("steps", 10), ("warmup", 3)]:
        ap.add_argument("--" + name, type=int, default=default)
    ap.add_argument("--compile", action="store_true")
    a = ap.parse_args()
    torch.manual_seed(1)
    model = Climax(a.variables, a.height, a.width, a.patch, a.embed, a.depth, a.heads).cuda().train()
    params = sum(x.numel() for x in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    step_model = torch.compile(model) if a.compile else model
    x = torch.randn(a.batch, a.variables, a.height, a.width, device="cuda")
    y = torch.randn_like(x)
    lat = torch.linspace(-87, 87, a.height, device="cuda")
    wl = (torch.cos(lat * math.pi / 180) / torch.cos(lat * math.pi / 180).mean()).view(1, 1, -1, 1)
    lead = torch.full((a.batch,), 6.0, device="cuda")
    times = []
    for step in range(a.warmup + a.steps):
        if step == a.warmup:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            pred = step_model(x, lead)
        loss = ((pred.float() - y) ** 2 * wl).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        if step >= a.warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"climax_torch: {a.height}x{a.width} grid, {a.variables} variables, patch {a.patch}, embed {a.embed}, "
          f"{a.depth} blocks ({params / 1e6:.0f}M params), batch {a.batch}, bf16 autocast, "
          f"{'torch.compile' if a.compile else 'eager'}, torch {torch.__version__}")
    print(f"step_s={med:.4f} samples_per_s={a.batch / med:.1f} "
          f"peak_gpu_gb={torch.cuda.max_memory_allocated() / 1e9:.2f}")


if __name__ == "__main__":
    main()
