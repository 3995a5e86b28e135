#!/usr/bin/env bash
# molecule_train and the pair-bias attention kernel on one GPU, as BENCHMARKS.md and docs/GPU.md
# record them.  Run on the GPU machine from the repository root after `source .device/setup.sh`:
#
#   bash tools/bench/molecule_gpu.sh
#
# Where rdkit-data is not installed (the GPU machine), ZT_CHEMBL_DIR names a directory holding
# its CHEMBL2321810.smi and CHEMBL2321810_act.csv.
#
# 1. //ops/cuda:pair_bias_attention_benchmark: fused kernel vs the ATen reference, forward +
#    backward time and peak memory at growing molecule sizes.
# 2. //science:molecule_train on the embedded CHEMBL2321810 set: ZeRO-2 and ZeRO-3 with bf16,
#    3D conformers, a larger model at ZeRO-3, and the same run with the reference attention.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bazel build -c opt --config=cuda //science:molecule_train //ops/cuda:pair_bias_attention_benchmark || exit 1
bin=bazel-out/k8-opt/bin
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
export ZT_LOG_LEVEL=warning
"$bin/ops/cuda/pair_bias_attention_benchmark"
"$bin/ops/cuda/pair_bias_attention_benchmark" --d=64 --h=16

data=()
if [[ -n ${ZT_CHEMBL_DIR:-} ]]; then
  data=(--train_file "$ZT_CHEMBL_DIR/CHEMBL2321810.smi" --activity_file "$ZT_CHEMBL_DIR/CHEMBL2321810_act.csv"
    --target_columns Act)
fi
work=$(mktemp -d)
for stage in 2 3; do
  cat >"$work/zero${stage}_bf16.json" <<JSON
{"bf16": {"enabled": "auto"}, "zero_optimization": {"stage": $stage},
 "gradient_accumulation_steps": 1, "gradient_clipping": "auto", "train_micro_batch_size_per_gpu": "auto"}
JSON
done
run() {  # name, flags...
  local name=$1
  shift
  echo "== molecule_train $name: $*"
  local t0=$SECONDS
  "$bin/science/molecule_train" "${data[@]}" --bf16 "$@" --output_dir "$work/$name" --overwrite_output_dir 2>&1 |
    grep -E "^(data|split|model|engine|epoch (1|10|20|30)/|test|molecule_train)" | cut -c1-400
  echo "== $name: $((SECONDS - t0)) s; metrics: $(tr -d ' \n' <"$work/$name/metrics.json" 2>/dev/null)"
}
run zero2_bf16 --deepspeed "$work/zero2_bf16.json"
run zero3_bf16 --deepspeed "$work/zero3_bf16.json"
run zero2_bf16_3d --deepspeed "$work/zero2_bf16.json" --conformers
run zero3_bf16_large --deepspeed "$work/zero3_bf16.json" --layers 12 --hidden 768 --heads 12 --ffn 3072 \
  --epochs 10 --learning_rate 1e-4
ZT_PAIR_BIAS_ATTENTION=reference run zero3_bf16_large_reference_attention --deepspeed "$work/zero3_bf16.json" \
  --layers 12 --hidden 768 --heads 12 --ffn 3072 --epochs 10 --learning_rate 1e-4
