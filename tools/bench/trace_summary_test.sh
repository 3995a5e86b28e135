#!/usr/bin/env bash
# trace_summary.py on a hand-made Kineto trace whose sums are known: two steps of a GEMM on the
# compute stream, an NCCL kernel half under it, an elementwise kernel and a copy; on the host a
# main thread (an op with a nested one, a kernel launch) and an autograd thread.  Then a trace
# with no GPU activity and a missing file must fail with their reasons.
set -uo pipefail
summary="$(dirname "$0")/trace_summary.py"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() {
  echo "FAIL: $*"
  cat "$tmp/out" 2>/dev/null
  exit 1
}
python3 - "$tmp/trace.json" <<'PY'
import json, sys
events = []
for step in range(2):
    t = step * 1000.0
    events += [
        {"ph": "X", "cat": "kernel", "name": "sm90_xmma_gemm_bf16", "ts": t, "dur": 400.0, "args": {"stream": 7}},
        {"ph": "X", "cat": "kernel", "name": "ncclDevKernel_ReduceScatter_Sum_f32", "ts": t + 200, "dur": 400.0,
         "args": {"stream": 20}},
        {"ph": "X", "cat": "kernel", "name": "at::native::vectorized_elementwise_kernel<4>", "ts": t + 700,
         "dur": 100.0, "args": {"stream": 7}},
        {"ph": "X", "cat": "gpu_memcpy", "name": "Memcpy HtoD", "ts": t + 900, "dur": 50.0, "args": {"stream": 7}},
        {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": t, "dur": 990.0, "tid": 1},
        {"ph": "X", "cat": "cpu_op", "name": "aten::addmm", "ts": t + 10, "dur": 10.0, "tid": 1},
        {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "ts": t + 5, "dur": 1.0, "tid": 1},
        {"ph": "X", "cat": "cpu_op", "name": "autograd::engine::evaluate_function", "ts": t + 100, "dur": 200.0,
         "tid": 2},
    ]
json.dump({"traceEvents": events}, open(sys.argv[1], "w"))
PY
python3 "$summary" "$tmp/trace.json" --steps 2 >"$tmp/out" 2>&1 || fail "the summary failed"
# Busy per step: 0-600 (GEMM + NCCL), 700-800, 900-950 = 750 us; the span is 1950 us over 2 steps.
grep -qF "per step: span 0.975 ms, GPU busy 0.750 ms" "$tmp/out" || fail "span / busy"
grep -qE "^  gemm +0\.400 " "$tmp/out" || fail "the GEMM family"
grep -qF "thread 1: in ATen ops / CUDA calls 0.990 ms of its 0.995 ms span, 1 kernel launches" "$tmp/out" ||
  fail "the main thread"
grep -qF "thread 2: in ATen ops / CUDA calls 0.200 ms of its 0.600 ms span, 0 kernel launches" "$tmp/out" ||
  fail "the autograd thread"
grep -qE "^ +1  aten::mm$" "$tmp/out" || fail "the launch inside aten::mm"
grep -qE "^  nccl +0\.400 " "$tmp/out" || fail "the NCCL family"
grep -qF "NCCL kernels 0.400 ms per step, 0.200 ms of it hidden under compute, 0.200 ms exposed" "$tmp/out" ||
  fail "hidden / exposed communication"
echo '{"traceEvents": [{"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": 0, "dur": 5}]}' >"$tmp/cpu.json"
python3 "$summary" "$tmp/cpu.json" --steps 1 >"$tmp/out" 2>&1 && fail "a trace without GPU activity passed"
grep -qF "no GPU activity" "$tmp/out" || fail "no reason for the empty trace"
python3 "$summary" "$tmp/missing.json" --steps 1 >"$tmp/out" 2>&1 && fail "a missing trace passed"
grep -qF "missing.json" "$tmp/out" || fail "the missing file is not named"
echo "trace_summary_test: passed"
