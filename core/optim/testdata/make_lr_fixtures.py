#!/usr/bin/env python3
"""Writes lr_schedules.json: the learning rates (and OneCycle's betas) that DeepSpeed's own
schedulers produce, step by step, for the cases lr_schedule_test.cc replays.

    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install torch==2.11.0 deepspeed==0.19.8
    /tmp/peers/bin/python core/optim/testdata/make_lr_fixtures.py core/optim/testdata/lr_schedules.json

Protocol (DeepSpeed's engine): the lr at construction is the first update's; scheduler.step()
follows every applied update.  Each case records lr after construction and after each step.
"""
import json
import sys

import torch
from deepspeed.runtime import lr_schedules

STEPS = 24
CASES = [
    ("warmup_log", "WarmupLR", 0.01, {"warmup_min_lr": 0.0, "warmup_max_lr": 0.001, "warmup_num_steps": 10}),
    ("warmup_linear_default_max", "WarmupLR", 0.01,
     {"warmup_min_lr": 1e-5, "warmup_num_steps": 7, "warmup_type": "linear"}),
    ("warmup_one_step", "WarmupLR", 0.003, {"warmup_num_steps": 1}),
    ("warmup_decay_log", "WarmupDecayLR", 0.01,
     {"total_num_steps": 20, "warmup_min_lr": 1e-6, "warmup_max_lr": 3e-4, "warmup_num_steps": 5}),
    ("warmup_decay_linear_default_max", "WarmupDecayLR", 0.01,
     {"total_num_steps": 15, "warmup_num_steps": 4, "warmup_type": "linear"}),
    ("warmup_cosine", "WarmupCosineLR", 2e-3,
     {"total_num_steps": 18, "warmup_num_steps": 6, "warmup_min_ratio": 0.1, "cos_min_ratio": 0.01}),
    ("warmup_cosine_linear", "WarmupCosineLR", 1e-3,
     {"total_num_steps": 12, "warmup_num_steps": 3, "warmup_type": "linear"}),
    ("range_test", "LRRangeTest", 0.01,
     {"lr_range_test_min_lr": 1e-4, "lr_range_test_step_size": 3, "lr_range_test_step_rate": 2.0}),
    ("range_test_staircase", "LRRangeTest", 0.01,
     {"lr_range_test_min_lr": 1e-4, "lr_range_test_step_size": 3, "lr_range_test_step_rate": 2.0,
      "lr_range_test_staircase": True}),
    ("one_cycle", "OneCycle", 0.01,
     {"cycle_min_lr": 1e-4, "cycle_max_lr": 1e-2, "cycle_first_step_size": 5, "cycle_second_step_size": 7,
      "decay_lr_rate": 0.1, "decay_step_size": 2, "cycle_min_mom": 0.85, "cycle_max_mom": 0.95,
      "decay_mom_rate": 0.05}),
    ("one_cycle_stairs_no_decay", "OneCycle", 0.01,
     {"cycle_min_lr": 1e-3, "cycle_max_lr": 5e-3, "cycle_first_step_size": 6, "cycle_first_stair_count": 3}),
    ("one_cycle_no_momentum", "OneCycle", 0.01,
     {"cycle_min_lr": 1e-3, "cycle_max_lr": 2e-3, "cycle_first_step_size": 4, "cycle_momentum": False,
      "decay_lr_rate": 0.5, "decay_step_size": 3}),
]


def run(kind, optimizer_lr, params):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=optimizer_lr)
    sched = getattr(lr_schedules, kind)(opt, **params)
    lrs, betas = [], []
    for step in range(STEPS + 1):
        if step:
            sched.step()
        group = opt.param_groups[0]
        lrs.append(group["lr"])
        betas.append(list(group["betas"]))
    return lrs, betas


def main():
    out = []
    for name, kind, optimizer_lr, params in CASES:
        lrs, betas = run(kind, optimizer_lr, params)
        out.append({"name": name, "type": kind, "optimizer_lr": optimizer_lr, "params": params, "lrs": lrs,
                    "betas": betas})
    # DeepSpeed logs to stdout, so the fixture goes to a file.
    with open(sys.argv[1], "w") as f:
        json.dump({"deepspeed": __import__("deepspeed").__version__, "cases": out}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
