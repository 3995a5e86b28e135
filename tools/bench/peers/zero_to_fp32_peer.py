"""//tools:zero_to_fp32 beside DeepSpeed's zero_to_fp32 on the same model (BENCHMARKS.md).

The same fp32 parameters (t000, t001, ... of [rows, 1024], the values of tools/bench/ckpt_synth.cc)
are written as a zerotrain checkpoint (by ckpt_synth) and as a DeepSpeed one (here: ZeRO-2's
single_partition_of_fp32_groups or ZeRO-3's fp32_flat_groups per rank, with Adam's moments in
base_optimizer_state, mp_rank_00_model_states.pt with the shapes), and each converter runs as a
child process to one model.safetensors: wall time and peak RSS (wait4's ru_maxrss) of each, and the
two outputs compared tensor by tensor.

  python3 tools/bench/peers/zero_to_fp32_peer.py --synth bazel-bin/tools/bench/ckpt_synth \
      --zerotrain bazel-bin/tools/zero_to_fp32 --workdir /tmp/z2f --tensors 32 --rows 8192 --stage 2

Needs torch, deepspeed, safetensors and huggingface_hub (the peers' virtualenv).  The script
itself stays small (no torch import) and does the torch work in child processes: a child's peak
RSS counts the memory of the process it was forked from.
"""
import argparse
import collections
import os
import resource
import shutil
import subprocess
import sys
import time


def values(i, numel):
    import torch
    j = torch.arange(numel, dtype=torch.int64)
    return ((j * 7919 + i * 104729) % 1000003).to(torch.float32) * 0.25 - 1e5


def write_deepspeed(root, tensors, rows, world, stage):
    import torch
    numel = rows * 1024
    step = os.path.join(root, "global_step1")
    os.makedirs(step, exist_ok=True)
    with open(os.path.join(root, "latest"), "w") as f:
        f.write("global_step1")
    shapes = collections.OrderedDict((f"t{i:03d}", torch.Size([rows, 1024])) for i in range(tensors))
    model_states = {"module": {}, "buffer_names": [], "param_shapes": [shapes], "frozen_param_shapes": None,
                    "shared_params": {}, "ds_version": "0.19.8", "frozen_param_fragments": None}
    if stage == 2:
        torch.save(model_states, os.path.join(step, "mp_rank_00_model_states.pt"))
        flat = torch.cat([values(i, numel) for i in range(tensors)])
        shard = (flat.numel() + world - 1) // world
        parts = [flat[r * shard:(r + 1) * shard].clone() for r in range(world)]
        del flat
        key = "single_partition_of_fp32_groups"
    else:
        for r in range(world):
            torch.save(model_states, os.path.join(step, f"zero_pp_rank_{r}_mp_rank_00_model_states.pt"))
        part = (numel + world - 1) // world
        parts = []
        for r in range(world):
            pieces = []
            for i in range(tensors):
                v = values(i, numel)[r * part:(r + 1) * part]
                pieces.append(torch.cat([v, torch.zeros(part - v.numel())]))
            parts.append(torch.cat(pieces))
        key = "fp32_flat_groups"
    for r, p in enumerate(parts):
        osd = {"zero_stage": stage, "partition_count": world, key: [p], "ds_version": "0.19.8",
               "base_optimizer_state": {"state": {0: {"step": torch.tensor(1.0), "exp_avg": torch.full_like(p, 0.5),
                                                      "exp_avg_sq": torch.full_like(p, 0.25)}},
                                        "param_groups": [{"lr": 1e-3, "params": [0]}]}}
        torch.save({"optimizer_state_dict": osd, "ds_config": {}, "ds_version": "0.19.8"},
                   os.path.join(step, f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt"))


def compare(a_path, b_path):
    import torch
    from safetensors import safe_open
    with safe_open(a_path, "pt") as a, safe_open(b_path, "pt") as b:
        if sorted(a.keys()) != sorted(b.keys()):
            return 1
        return 0 if all(torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in a.keys()) else 1


def run(cmd, env=None):
    t0 = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode()
    if p.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({p.returncode}):\n{err[-2000:]}")
    return time.time() - t0, usage.ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--synth")
    ap.add_argument("--zerotrain")
    ap.add_argument("--workdir")
    ap.add_argument("--tensors", type=int, default=32)
    ap.add_argument("--rows", type=int, default=8192)
    ap.add_argument("--world", type=int, default=2)
    ap.add_argument("--stage", type=int, default=2, choices=(2, 3))
    ap.add_argument("--child", choices=("write_deepspeed", "compare"), help=argparse.SUPPRESS)
    ap.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child == "write_deepspeed":
        return write_deepspeed(a.paths[0], a.tensors, a.rows, a.world, a.stage)
    if a.child == "compare":
        return compare(*a.paths)
    shutil.rmtree(a.workdir, ignore_errors=True)
    zt_ckpt, ds_ckpt = os.path.join(a.workdir, "zt"), os.path.join(a.workdir, "ds")
    zt_out, ds_out = os.path.join(a.workdir, "zt_out"), os.path.join(a.workdir, "ds_out")
    model_mib = a.tensors * a.rows * 1024 * 4 / 2**20
    subprocess.run([a.synth, f"--out={zt_ckpt}", f"--tensors={a.tensors}", f"--rows={a.rows}", f"--world={a.world}",
                    f"--stage={a.stage}"], check=True)
    shape = [f"--tensors={a.tensors}", f"--rows={a.rows}", f"--world={a.world}", f"--stage={a.stage}"]
    subprocess.run([sys.executable, __file__, "--child=write_deepspeed", *shape, ds_ckpt], check=True)
    # Both converters read files the page cache holds (just written); each once before timing.
    ds_cmd = [sys.executable, "-c",
              "import sys; from deepspeed.utils.zero_to_fp32 import convert_zero_checkpoint_to_fp32_state_dict as c; "
              "c(sys.argv[1], sys.argv[2], safe_serialization=True)", ds_ckpt, ds_out]
    zt_cmd = [a.zerotrain, zt_ckpt, zt_out]
    print(f"this script: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB peak RSS")
    print(f"model: {a.tensors} fp32 tensors of [{a.rows}, 1024] = {model_mib:.0f} MiB, {a.world} ranks, ZeRO-{a.stage}")
    results = {}
    for name, cmd in (("zerotrain zero_to_fp32", zt_cmd), ("deepspeed zero_to_fp32", ds_cmd)):
        secs, rss = run(cmd)
        results[name] = (secs, rss)
        print(f"{name:24s} {secs:7.2f} s   peak RSS {rss:8.1f} MiB   ({rss / model_mib:.2f} x the model)")
    same = subprocess.run([sys.executable, __file__, "--child=compare",
                           os.path.join(zt_out, "model.safetensors"), os.path.join(ds_out, "model.safetensors")]).returncode == 0
    print("outputs:", "identical tensors" if same else "DIFFER")
    shutil.rmtree(a.workdir, ignore_errors=True)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
