#!/usr/bin/env python3
"""Sums the GPU side of a Chrome trace that t5_bench --trace (Kineto) wrote.

    python3 tools/bench/trace_summary.py TRACE.rank0.json --steps 5 [--top 25]

Prints, per step: for the host, each busy thread's time inside ATen ops and CUDA runtime calls
against its span, the kernel launches, and which outermost ops (an ATen op, an autograd
function) made the most launches; for the GPU, the span from the first to the last
activity, the time it was busy (the union of kernels, copies and memsets), the time by kernel
family (GEMM, NCCL, the project's own kernels, elementwise, ...), the top kernels by time, and
for communication the time NCCL kernels ran while compute kernels ran too (hidden) and alone
(exposed).  A host thread busy for about the whole step means the step waits on the host.
Standard library only.
"""
import argparse
import bisect
import collections
import json
import re
import sys

FAMILIES = [  # first match wins
    ("nccl", re.compile(r"nccl", re.I)),
    ("gemm", re.compile(r"gemm|cutlass|xmma|nvjet|cublas|sm\d+_", re.I)),
    ("zerotrain", re.compile(r"zt::")),
    ("attention/softmax", re.compile(r"softmax|fmha|flash|attention", re.I)),
    ("reduce", re.compile(r"reduce", re.I)),
    ("copy/cat", re.compile(r"copy|cat|memcpy|memset|index|gather|scatter", re.I)),
    ("elementwise", re.compile(r"elementwise|vectorized|unrolled", re.I)),
]


def family(name):
    for label, pattern in FAMILIES:
        if pattern.search(name):
            return label
    return "other"


def merge(intervals):
    """The union of [start, end) intervals as sorted, disjoint [start, end] lists."""
    out = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return out


def union_length(intervals):
    """Total length covered by [start, end) intervals."""
    return sum(end - start for start, end in merge(intervals))


def intersection_length(a, b):
    """Length covered by both unions a and b (each a merged, sorted list)."""
    i = j = 0
    total = 0.0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            total += hi - lo
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def is_launch(e):
    """A CUDA runtime call that launches a kernel."""
    return e.get("ph") == "X" and e.get("cat") == "cuda_runtime" and "LaunchKernel" in e.get("name", "")


def host_summary(events, per_step, steps):
    """The three busiest host threads: time inside ATen ops / CUDA runtime calls, launches."""
    host = [e for e in events if e.get("ph") == "X" and e.get("cat") in ("cpu_op", "cuda_runtime") and "dur" in e]
    if not host:
        return
    by_tid = collections.defaultdict(list)
    launches = collections.Counter()
    for e in host:
        by_tid[e.get("tid")].append((e["ts"], e["ts"] + e["dur"]))
        if is_launch(e):
            launches[e.get("tid")] += 1
    busy = {tid: union_length(iv) for tid, iv in by_tid.items()}
    print("host, per step (the three busiest threads):")
    for tid, b in sorted(busy.items(), key=lambda kv: -kv[1])[:3]:
        iv = by_tid[tid]
        span = max(end for _, end in iv) - min(start for start, _ in iv)
        print(f"  thread {tid}: in ATen ops / CUDA calls {b * per_step:.3f} ms of its {span * per_step:.3f} ms span, "
              f"{launches[tid] / steps:.0f} kernel launches")


def launches_by_op(events, steps, top):
    """Kernel launches per step, by the outermost ATen op or autograd function that made them."""
    ops = sorted((e for e in events if e.get("ph") == "X" and e.get("cat") == "cpu_op" and "dur" in e),
                 key=lambda e: (e["ts"], -e["dur"]))
    outer = collections.defaultdict(list)  # thread -> [(start, end, name)] of ops no other op encloses
    for e in ops:
        spans = outer[e.get("tid")]
        if spans and e["ts"] < spans[-1][1]:
            continue
        spans.append((e["ts"], e["ts"] + e["dur"], e["name"]))
    starts = {tid: [start for start, _, _ in spans] for tid, spans in outer.items()}
    counts = collections.Counter()
    for e in events:
        if not is_launch(e):
            continue
        spans = outer.get(e.get("tid"), [])
        i = bisect.bisect_right(starts.get(e.get("tid"), []), e["ts"]) - 1
        inside = i >= 0 and e["ts"] < spans[i][1]
        counts[spans[i][2] if inside else "(outside any op)"] += 1
    if not counts:
        return
    print(f"kernel launches per step by the outermost op (top {top}):")
    for name, n in counts.most_common(top):
        print(f"  {n / steps:7.0f}  {name}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace")
    parser.add_argument("--steps", type=int, required=True, help="steps the trace holds")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    if args.steps < 1:
        sys.exit("trace_summary: --steps must be at least 1")
    try:
        with open(args.trace) as f:
            events = json.load(f).get("traceEvents", [])
    except (OSError, ValueError) as e:
        sys.exit(f"trace_summary: {args.trace}: {e}")
    per_step = 1.0 / args.steps / 1000.0  # microseconds in the trace -> ms per step
    host_summary(events, per_step, args.steps)
    launches_by_op(events, args.steps, args.top)
    gpu = [e for e in events
           if e.get("ph") == "X" and e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset") and "dur" in e]
    if not gpu:
        sys.exit(f"trace_summary: {args.trace}: no GPU activity (was it a CUDA run with CUPTI?)")
    spans = [(e["ts"], e["ts"] + e["dur"]) for e in gpu]
    span = max(end for _, end in spans) - min(start for start, _ in spans)
    busy = union_length(spans)
    print(f"{args.trace}: {len(gpu)} GPU activities over {args.steps} step(s)")
    print(f"per step: span {span * per_step:.3f} ms, GPU busy {busy * per_step:.3f} ms "
          f"({100 * busy / span:.0f}% of the span)")

    by_family = collections.Counter()
    by_name = collections.Counter()
    count = collections.Counter()
    by_stream = collections.Counter()
    for e in gpu:
        name = e["name"] if e["cat"] == "kernel" else e["cat"]
        by_family[family(name)] += e["dur"]
        by_name[name] += e["dur"]
        count[name] += 1
        by_stream[e.get("args", {}).get("stream", e.get("tid"))] += e["dur"]
    total = sum(by_family.values())
    print("\nby family (ms per step, share of summed kernel time):")
    for label, dur in by_family.most_common():
        print(f"  {label:20s} {dur * per_step:8.3f}  {100 * dur / total:5.1f}%")
    print("\nby stream (ms per step):")
    for stream, dur in by_stream.most_common():
        print(f"  stream {stream}: {dur * per_step:8.2f}")
    print(f"\ntop {args.top} (ms per step, calls per step, name):")
    for name, dur in by_name.most_common(args.top):
        short = name if len(name) <= 120 else name[:60] + " ... " + name[-55:]  # keeps the functor
        print(f"  {dur * per_step:8.2f} {count[name] / args.steps:6.0f}  {short}")

    comm = merge((e["ts"], e["ts"] + e["dur"]) for e in gpu if family(e["name"]) == "nccl")
    compute = merge((e["ts"], e["ts"] + e["dur"]) for e in gpu if family(e["name"]) != "nccl")
    if comm:
        comm_time = sum(end - start for start, end in comm)
        hidden = intersection_length(comm, compute)
        print(f"\ncommunication: NCCL kernels {comm_time * per_step:.3f} ms per step, "
              f"{hidden * per_step:.3f} ms of it hidden under compute, "
              f"{(comm_time - hidden) * per_step:.3f} ms exposed")


if __name__ == "__main__":
    main()
