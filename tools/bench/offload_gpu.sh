#!/usr/bin/env bash
# ZeRO-Offload on one GPU, as BENCHMARKS.md records it: a ~1B-parameter bf16 transformer stack
# at stage 2 with and without offload_optimizer (and stage 3 with the parameter shards offloaded
# too), then PyTorch FSDP with and without CPUOffload on the same model and batch.  Run on the
# GPU machine from the repository root after `source .device/setup.sh`:
#
#   bash tools/bench/offload_gpu.sh [GAS]      # default 16 micro-batches of 8 x 512 per step
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
gas=${1:-16}
model=(--layers=20 --dim=2048 --heads=16 --seq=512 --micro=8 --gas="$gas")
threads=$(nproc)
bazel build -c opt --config=cuda //tools/bench:zero_stages
bench=bazel-bin/tools/bench/zero_stages
"$bench" --backend=nccl --world=1 --bf16 "${model[@]}" --threads="$threads" --steps=5 --warmup=2 \
  --stages=2 --offload=none,optimizer
"$bench" --backend=nccl --world=1 --bf16 "${model[@]}" --threads="$threads" --steps=3 --warmup=1 \
  --stages=3 --offload=optimizer,both
peer=(python3 tools/bench/peers/zero_stages_fsdp.py --world 1 --layers 20 --dim 2048 --heads 16 --seq 512 --micro 8
  --gas "$gas" --bf16 --strategies SHARD_GRAD_OP)
"${peer[@]}" --steps 5 --warmup 2
"${peer[@]}" --steps 3 --warmup 1 --cpu_offload
