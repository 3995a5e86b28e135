#!/usr/bin/env bash
# ZeRO-3 on several GPUs of one host beside PyTorch FSDP2, as BENCHMARKS.md records it.  Run
# from the repository root after `source .device/setup.sh`, on a machine with 2 or more GPUs:
#
#   bash tools/bench/zero3_gpu.sh [N_GPUS]
#
# 1. t5_bench through //tools:launch at ZeRO-3 on N GPUs (bf16, fp32 master weights and Adam
#    state sharded): t5-large at 16 per GPU and t5-3b at 8 per GPU, source 512 / target 128.
#    t5-large also with overlap_comm off, to measure the communication the overlap hides.
# 2. The one-GPU figures the scaling is taken from: t5_bench at ZeRO-2 and ZeRO-3, same batch.
# 3. The peer: tools/bench/peers/t5_fsdp2.py under torchrun, same models and batches.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
n=${1:-2}
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
bazel build -c opt --config=cuda //tools/bench:t5_bench //tools:launch || exit 1
bin=$PWD/bazel-out/k8-opt/bin
export ZT_LOG_LEVEL=warning
work=$(mktemp -d)
for overlap in true false; do
  echo "{\"zero_optimization\": {\"stage\": 3, \"overlap_comm\": $overlap}}" >"$work/zero3_overlap_$overlap.json"
done
ours() {  # gpus model batch config [env]
  echo "== zerotrain: $1 GPU(s), $2, batch $3 per GPU, $(basename "$4")"
  timeout 300 "$bin/tools/launch" --num_gpus "$1" "$bin/tools/bench/t5_bench" --model "$2" --batch "$3" \
    --src_len 512 --tgt_len 128 --steps 10 --warmup 3 --bf16 --deepspeed "$4" || fail "t5_bench $*"
}
peer() {  # gpus model batch
  echo "== FSDP2: $1 GPU(s), $2, batch $3 per GPU"
  (cd tools/bench/peers && timeout 300 python3 -m torch.distributed.run --standalone --nproc_per_node "$1" \
    t5_fsdp2.py --model "$2" --batch "$3" --src_len 512 --tgt_len 128 --steps 10 --warmup 3 2>&1 |
    grep -v "^W\|^\*\|OMP_NUM_THREADS") || fail "t5_fsdp2 $*"
}
ours "$n" t5-large 16 "$work/zero3_overlap_true.json"
ours "$n" t5-large 16 "$work/zero3_overlap_false.json"
peer "$n" t5-large 16
ours 1 t5-large 16 "$work/zero3_overlap_true.json"
ours "$n" t5-3b 8 "$work/zero3_overlap_true.json"
peer "$n" t5-3b 8
ours 1 t5-3b 8 "$work/zero3_overlap_true.json"
echo "zero3_gpu: $failures failure(s)"
exit $((failures > 0))
