#!/usr/bin/env bash
# The largest T5 that trains on one GPU with ZeRO-3 and both offloads, as BENCHMARKS.md records
# it.  Run from the repository root after `source .device/setup.sh`:
#
#   bash tools/bench/largest_offload_gpu.sh MODEL [BATCH] [NVME_DIR]
#
# t5_bench at ZeRO-3, bf16, one GPU, source 512 / target 128, 1 warm-up and 3 timed steps; GNU
# time reports the peak RSS.  Without NVME_DIR, offload_param and offload_optimizer go to host
# memory (pinned).  With it, both go to NVMe under NVME_DIR (ZeRO-Infinity): the fp32 master
# weights and moments (12 bytes a parameter) and the bf16 parameter shards (2 bytes) in swap
# files, only --buffer_count sub-groups of the optimizer state in host memory at once; the
# script first checks that the directory's file system has room for them.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
model=${1:?usage: largest_offload_gpu.sh MODEL [BATCH] [NVME_DIR]}
batch=${2:-4}
nvme=${3:-}
bazel build -c opt --config=cuda //tools/bench:t5_bench || exit 1
bench=bazel-out/k8-opt/bin/tools/bench/t5_bench
cfg=$(mktemp --suffix=.json)
if [[ -z "$nvme" ]]; then
  cat >"$cfg" <<'JSON'
{"zero_optimization": {"stage": 3, "offload_param": {"device": "cpu", "pin_memory": true},
                       "offload_optimizer": {"device": "cpu", "pin_memory": true}}}
JSON
else
  mkdir -p "$nvme" || exit 1
  params=$("$bench" --model "$model" --print_params) || exit 1
  need=$((params * 14))
  free=$(($(df --output=avail -B1 "$nvme" | tail -1)))
  echo "swap: $nvme, ${params} parameters need $((need / 1000000000)) GB, $((free / 1000000000)) GB free"
  if ((free < need + need / 20)); then
    echo "largest_offload_gpu.sh: $nvme has $((free / 1000000000)) GB free; $model's swapped state needs" \
      "$((need / 1000000000)) GB (+5%)" >&2
    exit 1
  fi
  cat >"$cfg" <<JSON
{"zero_optimization": {"stage": 3, "sub_group_size": 100000000,
  "offload_param": {"device": "nvme", "nvme_path": "$nvme", "pin_memory": true, "max_in_cpu": 0},
  "offload_optimizer": {"device": "nvme", "nvme_path": "$nvme", "pin_memory": true, "buffer_count": 4,
                        "pipeline_read": true, "pipeline_write": true, "fast_init": true}}}
JSON
fi
free -g | head -2
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1
timer=()
[[ -x /usr/bin/time ]] && timer=(/usr/bin/time -f "peak RSS %M KiB, wall %e s")
ZT_LOG_LEVEL=warning "${timer[@]}" "$bench" --model "$model" --batch "$batch" --src_len 512 --tgt_len 128 --steps 3 \
  --warmup 1 --window_steps 0 --bf16 --deepspeed "$cfg"
status=$?
[[ -n "$nvme" ]] && rm -rf "${nvme:?}"/*
exit $status
