#!/usr/bin/env bash
# The largest T5 that trains on one GPU with ZeRO-3 and both offloads to host memory, as
# BENCHMARKS.md records it.  Run from the repository root after `source .device/setup.sh`:
#
#   bash tools/bench/largest_offload_gpu.sh MODEL [BATCH]
#
# t5_bench at ZeRO-3 with offload_param and offload_optimizer on the CPU (pinned), bf16, one
# GPU, source 512 / target 128, 1 warm-up and 3 timed steps; GNU time reports the peak RSS.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
model=${1:?usage: largest_offload_gpu.sh MODEL [BATCH]}
batch=${2:-4}
bazel build -c opt --config=cuda //tools/bench:t5_bench || exit 1
cfg=$(mktemp --suffix=.json)
cat >"$cfg" <<'JSON'
{"zero_optimization": {"stage": 3, "offload_param": {"device": "cpu", "pin_memory": true},
                       "offload_optimizer": {"device": "cpu", "pin_memory": true}}}
JSON
free -g | head -2
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1
timer=()
[[ -x /usr/bin/time ]] && timer=(/usr/bin/time -f "peak RSS %M KiB, wall %e s")
ZT_LOG_LEVEL=warning "${timer[@]}" bazel-out/k8-opt/bin/tools/bench/t5_bench \
  --model "$model" --batch "$batch" --src_len 512 --tgt_len 128 --steps 3 --warmup 1 --bf16 --deepspeed "$cfg"
