#!/usr/bin/env python3
"""Writes loss_scaler.json: DeepSpeed's DynamicLossScaler (the ZeRO path) replayed over fixed
overflow sequences: the scale and hysteresis after every update, and where it raises at the
minimum scale.  loss_scaler_test.cc replays the same sequences.

    /tmp/peers/bin/python core/precision/testdata/make_loss_scaler_fixtures.py core/precision/testdata/loss_scaler.json
"""
import json
import random
import sys

from deepspeed.runtime.fp16 import loss_scaler
from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler

# update_scale asks deepspeed.comm for the rank only to decide whether to log; one process
# without a process group is rank 0.
loss_scaler.dist.get_rank = lambda: 0


def replay(args, overflows):
    s = DynamicLossScaler(**args)
    scales, hyst, raised_at = [], [], None
    for i, o in enumerate(overflows):
        try:
            s.update_scale(o)
        except Exception as e:  # DeepSpeed raises a bare Exception at the minimum scale
            if "already at minimum" not in str(e):
                raise
            raised_at = i
            break
        scales.append(s.cur_scale)
        hyst.append(s.cur_hysteresis)
    return scales, hyst, raised_at


def main():
    rng = random.Random(1234)
    cases = []
    configs = [
        ("window3_hyst2", dict(init_scale=2.0**4, scale_window=3, min_scale=1, delayed_shift=2,
                               consecutive_hysteresis=False)),
        ("window3_hyst2_consecutive", dict(init_scale=2.0**4, scale_window=3, min_scale=1, delayed_shift=2,
                                           consecutive_hysteresis=True)),
        ("window2_no_hyst_min4", dict(init_scale=2.0**5, scale_window=2, min_scale=4, delayed_shift=1,
                                      consecutive_hysteresis=False)),
        ("window5_hyst3", dict(init_scale=2.0**16, scale_window=5, min_scale=1, delayed_shift=3,
                               consecutive_hysteresis=False)),
    ]
    for name, args in configs:
        for k in range(3):
            overflows = [rng.random() < 0.35 for _ in range(40)]
            scales, hyst, raised = replay(args, overflows)
            cases.append({"name": "%s_%d" % (name, k), "args": args, "overflows": overflows, "scales": scales,
                          "hysteresis": hyst, "raised_at": raised})
    # Run into the minimum: overflows only.
    args = dict(init_scale=2.0**3, scale_window=10, min_scale=1, delayed_shift=2, consecutive_hysteresis=False)
    overflows = [True] * 10
    scales, hyst, raised = replay(args, overflows)
    cases.append({"name": "down_to_minimum", "args": args, "overflows": overflows, "scales": scales,
                  "hysteresis": hyst, "raised_at": raised})
    with open(sys.argv[1], "w") as f:
        json.dump({"deepspeed": __import__("deepspeed").__version__, "cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
