#!/usr/bin/env bash
# t5_translate end to end on a small T5 and WMT16 samples: the seed's flags and DeepSpeed configs
# (ZeRO-2 with CPU offload, ZeRO-3 with both offloads), HF's outputs, a saved model loading back
# to the same eval loss, and the errors users meet.
set -uo pipefail

runfiles="${TEST_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="$runfiles/zerotrain/nlp/t5_translate"
launch="$runfiles/zerotrain/tools/launch"
configs="$runfiles/zerotrain/core/config/testdata"
wmt="$runfiles/shared_data/wmt16_en_ro"
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
failures=0
export ZT_LOG_LEVEL=warning
if [[ ! -s "$wmt/train.json" ]]; then
  echo "SKIPPED: wmt16_en_ro not present (set ZT_SHARED_DATA or put the data at ../shared/data)"
  exit 0
fi

# --use_cpu: the job's logic on Gloo wherever the test runs (tools/bench/t5_gpu.sh covers GPUs).
run() {
  "$bin" "$@" --use_cpu >"$tmp/out" 2>"$tmp/err"
  echo $? >"$tmp/rc"
}
fail() {
  echo "FAIL [$case_name]: $*" >&2
  echo "--- stderr" >&2; tail -30 "$tmp/err" >&2
  failures=$((failures + 1))
}
expect_rc() { [[ $(cat "$tmp/rc") == "$1" ]] || fail "exit code $(cat "$tmp/rc"), want $1"; }
expect_err() { grep -qF -- "$1" "$tmp/err" || fail "stderr lacks: $1"; }
expect_file() { [[ -s "$1" ]] || fail "missing or empty: $1"; }
# json FILE KEY: the value of a top-level key of a JSON file.
json() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }

# The seed's --dataset_name lookup finds a local copy under the working directory's data/.
work="$tmp/work"
mkdir -p "$work/data/wmt16_en_ro" "$work/tiny"
head -300 "$wmt/train.json" >"$work/data/wmt16_en_ro/train.json"
head -40 "$wmt/validation.json" >"$work/data/wmt16_en_ro/validation.json"
cat >"$work/tiny/config.json" <<'JSON'
{"model_type": "t5", "vocab_size": 800, "d_model": 64, "d_kv": 16, "num_heads": 4, "d_ff": 128,
 "num_layers": 2, "num_decoder_layers": 2, "feed_forward_proj": "relu", "dropout_rate": 0.1}
JSON
export BUILD_WORKING_DIRECTORY="$work"

common=(--model_name_or_path tiny --do_train --do_eval --per_device_train_batch_size 8
        --per_device_eval_batch_size 8 --overwrite_output_dir --num_train_epochs 2 --dataset_name wmt16
        --dataset_config ro-en --source_lang en --target_lang ro --tokenizer_vocab_size 800
        --learning_rate 3e-3 --max_source_length 48 --max_target_length 48 --logging_steps 10
        --predict_with_generate --generation_max_length 16 --save_steps 25 --save_total_limit 2
        --eval_strategy steps --eval_steps 25)

for zero in zero2 zero3; do
  case_name="seed flags with ds_config_$zero.json"
  run --deepspeed "$configs/ds_config_$zero.json" --output_dir "out_$zero" "${common[@]}"
  expect_rc 0
  out="$work/out_$zero"
  for f in config.json model.safetensors spiece.model all_results.json train_results.json eval_results.json \
      trainer_state.json; do
    expect_file "$out/$f"
  done
  expect_err "wmt16 ro-en from its local copy in $work/data/wmt16_en_ro"
  expect_err "source prefix (T5's default): \"translate English to Romanian: \""
  # The engine's step lines (not a terminal: plain lines) and the end-of-job summary.
  grep -qE "^step [0-9]+/[0-9]+ \| epoch [0-9.]+ \| loss [0-9.]+ \| lr .* samples/s \| .* tokens/s \| .* TFLOPS/rank \| RSS " \
    "$tmp/err" || fail "no step line with throughput"
  expect_err "===== t5_translate: summary ====="
  expect_err "best eval_loss"
  expect_err "$out/model.safetensors  the trained model"
  [[ $(cat "$tmp/rc") == 0 ]] || continue
  for key in train_loss train_runtime train_samples_per_second eval_loss eval_bleu eval_gen_len epoch; do
    json "$out/all_results.json" "$key" >/dev/null 2>&1 || fail "all_results.json lacks $key"
  done
  # 76 steps: checkpoints at 25, 50, 75, the newest two kept; evaluation at the same steps.
  [[ -d "$out/checkpoint-50" && -d "$out/checkpoint-75" && ! -e "$out/checkpoint-25" ]] ||
    fail "checkpoints: $(ls "$out" | tr '\n' ' ')"
  expect_file "$out/checkpoint-75/model.safetensors"
  python3 - "$out/trainer_state.json" <<'PY' || fail "no mid-training eval_loss at steps 25, 50, 75"
import json, sys
steps = [e["step"] for e in json.load(open(sys.argv[1]))["log_history"] if "eval_loss" in e]
sys.exit(0 if steps == [25, 50, 75] else 1)
PY
  python3 - "$out/trainer_state.json" <<'PY' || fail "the logged loss did not fall"
import json, sys
h = [e["loss"] for e in json.load(open(sys.argv[1]))["log_history"] if "loss" in e]
sys.exit(0 if len(h) >= 3 and h[-1] < h[0] - 0.5 else 1)
PY
done

# checkpoint-N holds the engine's whole state: a run resumed from checkpoint-50 logs the same
# losses, grad norms, learning rates and eval losses (dropout included) and ends with the same
# weights, byte for byte, as the uninterrupted run.
for zero in zero2 zero3; do
  case_name="resume from checkpoint-50 equals the uninterrupted run ($zero)"
  out="$work/out_$zero"
  [[ -f "$out/checkpoint-50/latest" ]] || { fail "no engine state in checkpoint-50: $(ls "$out/checkpoint-50")"; continue; }
  run --deepspeed "$configs/ds_config_$zero.json" --output_dir "resumed_$zero" "${common[@]}" \
    --resume_from_checkpoint "out_$zero/checkpoint-50"
  expect_rc 0
  expect_err "resumed from $out/checkpoint-50/global_step50: step 50"
  cmp -s "$out/model.safetensors" "$work/resumed_$zero/model.safetensors" || fail "the final weights differ"
  python3 - "$out" "$work/resumed_$zero" <<'PY' || fail "the histories differ"
import json, sys
a, b = (json.load(open(f"{d}/trainer_state.json"))["log_history"] for d in sys.argv[1:])
t = [json.load(open(f"{d}/all_results.json"))["train_loss"] for d in sys.argv[1:]]
sys.exit(0 if a == b and t[0] == t[1] else f"{a}\n{b}\n{t}")
PY
done

case_name="--resume_from_checkpoint latest continues from the newest checkpoint in --output_dir"
run --deepspeed "$configs/ds_config_zero3.json" --output_dir out_zero3 "${common[@]}" --resume_from_checkpoint latest
expect_rc 0
expect_err "resumed from $work/out_zero3/checkpoint-75/global_step75: step 75"

case_name="a corrupt or missing checkpoint is refused, naming the file"
cp -r "$work/out_zero2/checkpoint-75" "$work/corrupt"
python3 - "$work/corrupt/global_step75/zero_rank_00000_states.bin" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(1000); b = f.read(1); f.seek(1000); f.write(bytes([b[0] ^ 1]))
PY
run --deepspeed "$configs/ds_config_zero2.json" --output_dir c1 "${common[@]}" --resume_from_checkpoint corrupt
expect_rc 1
expect_err "$work/corrupt/global_step75/zero_rank_00000_states.bin: crc32c"
expect_err "the file is corrupt"
run --deepspeed "$configs/ds_config_zero2.json" --output_dir c2 "${common[@]}" --resume_from_checkpoint nowhere
expect_rc 1
expect_err "--resume_from_checkpoint nowhere: $work/nowhere does not exist"

case_name="two ranks through //tools:launch (DeepSpeed's launcher flags), ZeRO-2"
# --num_procs: CPU processes, as the job runs with --use_cpu (a GPU machine has its own test).
"$launch" --num_procs 2 --master_port $((20000 + RANDOM % 20000)) \
  "$bin" --deepspeed "$configs/ds_config_zero2.json" --output_dir out_2ranks "${common[@]}" --max_train_samples 128 \
  --save_steps 8 \
  --do_predict --test_file "$wmt/validation.json" --max_predict_samples 11 --use_cpu >"$tmp/out" 2>"$tmp/err"
echo $? >"$tmp/rc"
expect_rc 0
expect_err "launch: 2 rank(s), CPU processes, world size 2"
grep -qF "engine: ZeRO stage 2, 2 rank(s)" <(grep -F "[rank0]" "$tmp/err") || fail "rank 0 did not train on 2 ranks"
! grep -F "[rank1]" "$tmp/err" | grep -qF "engine: ZeRO stage" || fail "rank 1 printed what only rank 0 prints"
expect_file "$work/out_2ranks/model.safetensors"
expect_file "$work/out_2ranks/eval_results.json"

case_name="a checkpoint of two ranks resumes on one (universal checkpoint)"
[[ -f "$work/out_2ranks/checkpoint-8/latest" ]] || fail "no checkpoint-8: $(ls "$work/out_2ranks")"
run --deepspeed "$configs/ds_config_zero2.json" --output_dir from_2ranks "${common[@]}" --max_train_samples 128 \
  --save_steps 8 --resume_from_checkpoint out_2ranks/checkpoint-8
expect_rc 0
expect_err "resumed from $work/out_2ranks/checkpoint-8/global_step8: step 8, epoch 1, micro-batch 0"

# Evaluation is split across ranks (5 eval batches: 3 on rank 0, 2 on rank 1; 11 predictions in
# batches of 8) and gathered in order: one rank on the saved model gets the same figures and lines.
case_name="two ranks evaluate and predict what one rank does"
run --model_name_or_path out_2ranks --do_eval --do_predict --predict_with_generate --output_dir one_rank \
  --validation_file "$work/data/wmt16_en_ro/validation.json" --test_file "$wmt/validation.json" \
  --max_predict_samples 11 --source_lang en --target_lang ro --max_source_length 48 --max_target_length 48 \
  --per_device_eval_batch_size 8 --generation_max_length 16
expect_rc 0
python3 - "$work/out_2ranks/eval_results.json" "$work/one_rank/eval_results.json" <<'PY' || fail "eval differs"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
for k in ("eval_loss", "eval_bleu", "eval_gen_len"):
    if abs(a[k] - b[k]) > 1e-4:
        sys.exit(f"{k}: two ranks {a[k]}, one rank {b[k]}")
PY
cmp -s "$work/out_2ranks/generated_predictions.txt" "$work/one_rank/generated_predictions.txt" ||
  fail "generated_predictions.txt of two ranks differs from one rank's"
[[ $(wc -l <"$work/one_rank/generated_predictions.txt" 2>/dev/null) == 11 ]] || fail "not 11 predictions"

case_name="a saved model directory loads back (weights and tokenizer) to the same eval loss"
want=$(json "$work/out_zero2/eval_results.json" eval_loss)
run --model_name_or_path out_zero2 --do_eval --output_dir reload --dataset_name wmt16 --dataset_config_name ro-en \
  --source_lang en --target_lang ro --max_source_length 48 --max_target_length 48 --per_device_eval_batch_size 8
expect_rc 0
got=$(json "$work/reload/eval_results.json" eval_loss 2>/dev/null || echo missing)
python3 -c "import sys; sys.exit(0 if abs(float('$got') - float('$want')) < 1e-5 else 1)" 2>/dev/null ||
  fail "eval_loss after reload $got, at the end of training $want"

case_name="do_predict writes generated_predictions.txt"
run --model_name_or_path out_zero2 --do_predict --predict_with_generate --test_file "$wmt/validation.json" \
  --max_predict_samples 7 --output_dir predict --source_lang en --target_lang ro --generation_max_length 8
expect_rc 0
[[ $(wc -l <"$work/predict/generated_predictions.txt" 2>/dev/null) == 7 ]] || fail "not 7 predictions"
json "$work/predict/predict_results.json" predict_bleu >/dev/null 2>&1 || fail "no predict_bleu"

case_name="no output_dir"
run --do_train --train_file "$wmt/train.json" --source_lang en --target_lang ro --model_name_or_path tiny
expect_rc 1
expect_err "--output_dir is required"

case_name="non-empty output_dir without --overwrite_output_dir"
run --do_train --train_file "$wmt/train.json" --source_lang en --target_lang ro --model_name_or_path tiny \
  --output_dir out_zero2
expect_rc 1
expect_err "already exists and is not empty. Use --overwrite_output_dir"

case_name="dataset without a local copy says which files to pass"
run --do_train --dataset_name wmt14 --dataset_config de-en --source_lang en --target_lang de \
  --model_name_or_path tiny --output_dir nowhere
expect_rc 1
expect_err "no local copy"
expect_err "--train_file train.json --validation_file validation.json"

case_name="missing and broken DeepSpeed configs name the file"
run --deepspeed no_such.json "${common[@]}" --output_dir bad1
expect_rc 1
expect_err "$work/no_such.json"
echo '{"zero_optimization": {"stage": 2,}' >"$work/broken.json"
run --deepspeed broken.json "${common[@]}" --output_dir bad2
expect_rc 1
expect_err "$work/broken.json: not a JSON object"
echo '{"zero_optimization": {"stgae": 2}}' >"$work/typo.json"
run --deepspeed typo.json "${common[@]}" --output_dir bad3
expect_rc 1
expect_err "stgae"

case_name="unknown architecture"
run --model_name_or_path t5-huge --do_train --train_file "$wmt/train.json" --source_lang en --target_lang ro \
  --output_dir bad4
expect_rc 1
expect_err "t5-huge"

if ((failures > 0)); then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "all t5_translate cases passed"
