#!/usr/bin/env bash
# Monitoring on the GPU machine, as docs/GPU.md records it.  Run from the repository root after
# `source .device/setup.sh` (ZT_SHARED_DATA names the WMT16 copy):
#
#   bash tools/bench/monitor_gpu.sh OUT_DIR
#
# 1. The monitoring tests under --config=cuda (GPU memory and peak lookup through CUDA).
# 2. t5_translate (t5-small at random, bf16, ZeRO-2, 2 GPUs through //tools:launch when there
#    are two) with steps_per_print, wall_clock_breakdown, comms_logger, flops_profiler,
#    tensorboard and csv_monitor: its step lines (MFU, GPU memory), communication table, flops
#    profile and end-of-job summary go to OUT_DIR/t5.log, its monitor files to OUT_DIR/t5/.
# 3. //tools:report over the CSV files: OUT_DIR/report.html.
set -uo pipefail
out=${1:?usage: monitor_gpu.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
bazel test -c opt --config=cuda --test_output=errors --test_env=ZT_LOG_LEVEL=warning \
  //core/util:device_stats_test //core/monitor:step_line_test //core/engine:engine_report_test \
  //core/engine:job_summary_test //core/comm:comms_logger_test //core/profiler:flops_profiler_test ||
  fail "the monitoring tests"
bazel build -c opt --config=cuda //tools:launch //nlp:t5_translate //tools:report || exit 1
bin=$PWD/bazel-out/k8-opt/bin
gpus=$(nvidia-smi -L | grep -c '^GPU ')
n=$((gpus >= 2 ? 2 : 1))
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
w=$(mktemp -d)
mkdir -p "$w/data"
ln -s "$ZT_SHARED_DATA/wmt16_en_ro" "$w/data/wmt16_en_ro"
cat >"$w/ds_config.json" <<JSON
{
  "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
  "train_batch_size": "auto", "gradient_clipping": "auto",
  "bf16": {"enabled": "auto"},
  "zero_optimization": {"stage": 2, "overlap_comm": true, "contiguous_gradients": true},
  "steps_per_print": 20,
  "wall_clock_breakdown": true,
  "comms_logger": {"enabled": true, "prof_all": true},
  "flops_profiler": {"enabled": true, "profile_step": 5, "module_depth": 3, "top_modules": 3,
                     "detailed": true, "output_file": "$out/flops_profile.txt"},
  "tensorboard": {"enabled": true, "output_path": "$out/t5", "job_name": "tb"},
  "csv_monitor": {"enabled": true, "output_path": "$out/t5", "job_name": "csv"}
}
JSON
cd "$w" || exit 1
echo "== t5_translate on $n GPU(s), t5-small, bf16, ZeRO-2, 100 steps, every monitor on"
t0=$SECONDS
ZT_LOG_LEVEL=warning timeout 500 "$bin/tools/launch" --num_gpus "$n" "$bin/nlp/t5_translate" \
  --deepspeed ds_config.json --output_dir t5_out --model_name_or_path t5-small --do_train --bf16 \
  --per_device_train_batch_size 32 --max_train_samples 8000 --num_train_epochs 1 --max_steps 100 \
  --dataset_name wmt16 --dataset_config ro-en --source_lang en --target_lang ro --logging_steps 50 \
  --tokenizer_vocab_size 8000 --learning_rate 1e-3 --max_source_length 128 --max_target_length 128 \
  --save_steps 0 --overwrite_output_dir >"$out/t5.log" 2>&1 || fail "t5_translate"
echo "rc ($((SECONDS - t0)) s)"
grep -E "^step |time per step|^=====|throughput|memory |Flops Profiler|fwd flops|all_reduce|all_gather|error" \
  "$out/t5.log" | cut -c1-260 | head -60
ls "$out/t5/csv" "$out/t5/tb" || fail "no monitor files"
"$bin/tools/report" "$out/t5" --out "$out/report.html" || fail "tools/report"
echo "monitor_gpu: $failures failure(s)"
exit $((failures > 0))
