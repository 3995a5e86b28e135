#!/usr/bin/env bash
# Where a T5 training step's GPU time goes, as BENCHMARKS.md and docs/GPU.md record it.  Run
# from the repository root after `source .device/setup.sh`:
#
#   bash tools/bench/profile_gpu.sh [OUT_DIR]
#
# 1. t5_bench, t5-large at random, bf16, source 512 / target 128, batch 16, ZeRO-2, one GPU:
#    a Kineto trace of 5 steps, summed by tools/bench/trace_summary.py (host threads' busy time
#    and kernel launches, kernel families, top kernels, GPU busy time).
# 2. With 2 or more GPUs: the same model at ZeRO-3 on every GPU through //tools:launch, timed
#    with overlap_comm false and true (untraced), then traced with overlap_comm true: how much
#    of the NCCL time runs under compute (hidden) and how much stands alone (exposed).
# The traces stay in OUT_DIR (default: a temporary directory).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out=${1:-$(mktemp -d)}
mkdir -p "$out"
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
bazel build -c opt --config=cuda //tools/bench:t5_bench //tools:launch || exit 1
bin=$PWD/bazel-out/k8-opt/bin
export ZT_LOG_LEVEL=warning
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
shape=(--model t5-large --batch 16 --src_len 512 --tgt_len 128 --bf16)
echo "== one GPU, ZeRO-2, traced"
"$bin/tools/bench/t5_bench" "${shape[@]}" --stage 2 --steps 5 --warmup 3 --trace "$out/t5_large_zero2" ||
  fail "t5_bench traced"
python3 tools/bench/trace_summary.py "$out/t5_large_zero2.rank0.json" --steps 5 || fail "summary"

gpus=$(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l)
if ((gpus >= 2)); then
  for overlap in false true; do
    echo "{\"zero_optimization\": {\"stage\": 3, \"overlap_comm\": $overlap}}" >"$out/zero3_overlap_$overlap.json"
  done
  zero3() {  # config [t5_bench flags...]
    timeout 300 "$bin/tools/launch" --num_gpus "$gpus" "$bin/tools/bench/t5_bench" "${shape[@]}" --deepspeed "$@" ||
      fail "zero3 $*"
  }
  for overlap in false true; do
    echo "== $gpus GPUs, ZeRO-3, overlap_comm $overlap"
    zero3 "$out/zero3_overlap_$overlap.json" --steps 10 --warmup 3
  done
  echo "== $gpus GPUs, ZeRO-3, overlap_comm true, traced"
  zero3 "$out/zero3_overlap_true.json" --steps 5 --warmup 3 --trace "$out/t5_large_zero3"
  python3 tools/bench/trace_summary.py "$out/t5_large_zero3.rank0.json" --steps 5 --top 12 || fail "summary"
fi
echo "profile_gpu: $failures failure(s), traces in $out"
exit $((failures > 0))
