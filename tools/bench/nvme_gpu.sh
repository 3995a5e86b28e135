#!/usr/bin/env bash
# ZeRO-Infinity on one GPU, as BENCHMARKS.md records it: the disk first (tools:io_bench, with fio
# beside it where fio is installed), then a ~300M-parameter bf16 transformer stack at stage 3
# with the optimizer state in host memory (offload_optimizer cpu) and on NVMe (swap files in
# DIR, 4 host buffers of one sub-group each: 1.2 GB of host memory for 3.6 GB of fp32 state), and
# with the bf16 parameter shards on NVMe as well (max_in_cpu 0).
# Run on the GPU machine from the repository root after `source .device/setup.sh`:
#
#   bash tools/bench/nvme_gpu.sh DIR
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
dir=${1:?usage: nvme_gpu.sh DIR (a directory on the disk to swap to)}
mkdir -p "$dir"
bazel build -c opt --config=cuda //tools:io_bench //tools/bench:zero_stages
df -h "$dir"
bazel-bin/tools/io_bench --dir "$dir" --file_size 4G --block_size 1M --queue_depth 32 --threads 1 ||
  bazel-bin/tools/io_bench --dir "$dir" --file_size 4G --block_size 1M --queue_depth 32 --threads 1 --direct=false
bazel-bin/tools/io_bench --dir "$dir" --file_size 4G --block_size 1M --queue_depth 32 --threads 4 --fio=false ||
  true
bazel-bin/tools/bench/zero_stages --backend=nccl --world=1 --bf16 --layers=24 --dim=1024 --heads=16 --seq=512 \
  --micro=8 --gas=4 --threads="$(nproc)" --steps=3 --warmup=1 --stages=3 --offload=none,optimizer,nvme,nvme_both \
  --nvme_path="$dir" --sub_group_size=25000000 --buffer_count=4
