#!/usr/bin/env bash
# The launcher on the GPU machine, as docs/GPU.md records it.  Run from the repository root
# after `source .device/setup.sh` (ZT_SHARED_DATA names the WMT16 copy):
#
#   bash tools/bench/launch_gpu.sh
#
# 1. t5_translate (t5-small at random, bf16, 4,000 WMT16 pairs, batch 32 per GPU) through
#    `launch --num_gpus 1` and `--num_gpus 2` (when there are two): train time and samples/s.
# 2. launch_probe under torchrun --no-python on the GPUs (NCCL), where python3 has torch.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bazel build -c opt --config=cuda //tools:launch //nlp:t5_translate //tools/launcher:launch_probe || exit 1
bin=bazel-out/k8-opt/bin
gpus=$(nvidia-smi -L | grep -c '^GPU ')
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
w=$(mktemp -d)
mkdir -p "$w/data"
ln -s "$ZT_SHARED_DATA/wmt16_en_ro" "$w/data/wmt16_en_ro"
for n in 1 2; do
  ((n <= gpus)) || continue
  echo "== launch --num_gpus $n //nlp:t5_translate (t5-small, bf16)"
  (cd "$w" && ZT_LOG_LEVEL=info timeout 400 "$OLDPWD/$bin/tools/launch" --num_gpus "$n" "$OLDPWD/$bin/nlp/t5_translate" \
    --model_name_or_path t5-small --do_train --do_eval --bf16 --per_device_train_batch_size 32 \
    --per_device_eval_batch_size 32 --max_train_samples 4000 --max_eval_samples 256 --num_train_epochs 1 \
    --dataset_name wmt16 --dataset_config ro-en --source_lang en --target_lang ro --output_dir "out_$n" \
    --logging_steps 25 --tokenizer_vocab_size 8000 --learning_rate 1e-3 --max_source_length 128 \
    --max_target_length 128 2>&1) | grep -E "^launch|engine: ZeRO|'loss'|train:|eval:|error" | cut -c1-220
  echo "rc=${PIPESTATUS[0]}"
done
if python3 -c 'import torch.distributed.run' 2>/dev/null; then
  echo "== torchrun --nproc_per_node=$gpus --no-python launch_probe --gpu (NCCL)"
  ZT_LOG_LEVEL=warning timeout 200 python3 -m torch.distributed.run --nproc_per_node="$gpus" --no-python "$bin/tools/launcher/launch_probe" \
    --gpu --stage 3 --steps 4 2>&1 | grep -E "probe:|step|params|error|Error" | head -12
  echo "rc=${PIPESTATUS[0]}"
fi
