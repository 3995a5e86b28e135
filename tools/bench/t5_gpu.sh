#!/usr/bin/env bash
# T5 on one GPU, as BENCHMARKS.md and docs/GPU.md record it.  Run on the GPU machine from the
# repository root after `source .device/setup.sh`, with WMT16 en-ro at $ZT_SHARED_DATA:
#
#   bash tools/bench/t5_gpu.sh
#
# 1. Throughput: t5-large, batch 16, source 512 / target 128, bf16: //tools/bench:t5_bench at
#    ZeRO-2 without offload and with the optimizer in host memory, then HF's
#    T5ForConditionalGeneration (tools/bench/peers/t5_hf.py) eager and with torch.compile.
# 2. The seed's command through //nlp:t5_translate: t5-large (random init) with the seed's
#    ds_config_zero2.json (ZeRO-2 + CPU optimizer offload), then bf16 without offload.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bazel build -c opt --config=cuda //tools/bench:t5_bench //nlp:t5_translate || exit 1
bin=bazel-out/k8-opt/bin
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
shape=(--model t5-large --batch 16 --src_len 512 --tgt_len 128 --steps 10 --warmup 3)
export ZT_LOG_LEVEL=warning
"$bin/tools/bench/t5_bench" "${shape[@]}" --bf16 --stage 2
"$bin/tools/bench/t5_bench" "${shape[@]}" --bf16 --stage 2 --offload_optimizer
python3 tools/bench/peers/t5_hf.py "${shape[@]}"
python3 tools/bench/peers/t5_hf.py "${shape[@]}" --compile

work=$(mktemp -d)
mkdir -p "$work/data"
ln -s "${ZT_SHARED_DATA:?set ZT_SHARED_DATA}/wmt16_en_ro" "$work/data/wmt16_en_ro"
cat >"$work/zero2_bf16.json" <<'JSON'
{"bf16": {"enabled": "auto"}, "zero_optimization": {"stage": 2, "overlap_comm": true, "contiguous_gradients": true},
 "gradient_accumulation_steps": "auto", "gradient_clipping": "auto", "train_batch_size": "auto",
 "train_micro_batch_size_per_gpu": "auto"}
JSON
cp core/config/testdata/ds_config_zero2.json "$work/"
seed=(--model_name_or_path t5-large --do_train --do_eval --per_device_train_batch_size 4
      --per_device_eval_batch_size 4 --output_dir output_dir --overwrite_output_dir --max_train_samples 500
      --num_train_epochs 1 --dataset_name wmt16 --dataset_config ro-en --source_lang en --target_lang ro
      --max_eval_samples 200 --logging_steps 25)
echo "== seed command, ds_config_zero2.json (ZeRO-2 + CPU optimizer offload), fp32"
(cd "$work" && BUILD_WORKING_DIRECTORY="$work" "$OLDPWD/$bin/nlp/t5_translate" --deepspeed ds_config_zero2.json \
  "${seed[@]}" 2>&1 | grep -v '^\[' ; cat output_dir/all_results.json)
echo "== seed command, ZeRO-2 without offload, --bf16"
(cd "$work" && BUILD_WORKING_DIRECTORY="$work" "$OLDPWD/$bin/nlp/t5_translate" --deepspeed zero2_bf16.json --bf16 \
  "${seed[@]}" 2>&1 | grep -v '^\[' ; cat output_dir/all_results.json)
