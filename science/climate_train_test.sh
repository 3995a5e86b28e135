#!/usr/bin/env bash
# climate_train end to end on libncarg-data's sample fields (tas, uas, vas: 12 monthly steps on
# a 96 x 192 grid): --inspect, the embedded default, --files/--variables with the seed's ZeRO-2
# and ZeRO-3 configs, two ranks, predictions.nc read back, and the errors users meet.
set -uo pipefail

runfiles="${TEST_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="$runfiles/zerotrain/science/climate_train"
configs="$runfiles/zerotrain/core/config/testdata"
nug=/usr/share/ncarg/data/nug
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
failures=0
export ZT_LOG_LEVEL=warning
if [[ ! -s "$nug/tas_rectilinear_grid_2D.nc" ]]; then
  echo "SKIPPED: $nug/tas_rectilinear_grid_2D.nc not present (apt-get install libncarg-data; ./bazelw does it)"
  exit 0
fi
export BUILD_WORKING_DIRECTORY="$tmp"
cd "$tmp" || exit 1

run() {
  "$bin" "$@" --use_cpu >"$tmp/out" 2>"$tmp/err"
  echo $? >"$tmp/rc"
}
fail() {
  echo "FAIL [$case_name]: $*" >&2
  echo "--- stdout" >&2; tail -10 "$tmp/out" >&2
  echo "--- stderr" >&2; tail -30 "$tmp/err" >&2
  failures=$((failures + 1))
}
expect_rc() { [[ $(cat "$tmp/rc") == "$1" ]] || fail "exit code $(cat "$tmp/rc"), want $1"; }
expect_err() { grep -qF -- "$1" "$tmp/err" || fail "stderr lacks: $1"; }
expect_out() { grep -qF -- "$1" "$tmp/out" || fail "stdout lacks: $1"; }
expect_file() { [[ -s "$1" ]] || fail "missing or empty: $1"; }
json() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
small=(--embed 32 --depth 1 --heads 2 --patch 8 --batch_size 2 --epochs 2)
files="$nug/tas_rectilinear_grid_2D.nc,$nug/uas_rectilinear_grid_2D.nc,$nug/vas_rectilinear_grid_2D.nc"

case_name="--inspect"
run --files "$nug/*as_rectilinear_grid_2D.nc" --variables tas,uas --inspect
expect_rc 0
expect_out "tas"
expect_out "K"
expect_out "uas"
expect_out "m s-1"
[[ ! -e climate_output ]] || fail "--inspect wrote outputs"

case_name="no data flags: the embedded default"
run "${small[@]}" --output_dir default
expect_rc 0
expect_err "the embedded default"
expect_err "lat-weighted RMSE"
grep -qE "^step [0-9]+/[0-9]+ \| epoch [0-9.]+ \| loss [0-9.]+ .* samples/s \| .* tokens/s" "$tmp/err" ||
  fail "no step line with throughput"
expect_err "===== climate_train: summary ====="
expect_err "test RMSE tas"
for f in metrics.json predictions.nc checkpoint/config.json checkpoint/model.safetensors checkpoint/normalization.json; do
  expect_file "default/$f"
done
for key in test_rmse_tas test_acc_tas persistence_rmse_tas persistence_acc_tas climatology_rmse_tas test_rmse \
    persistence_rmse climatology_rmse; do
  json default/metrics.json "$key" >/dev/null 2>&1 || fail "metrics.json lacks $key"
done

case_name="predictions.nc reads back with the input's grid, attributes and the valid times"
run --files default/predictions.nc --variables tas,uas,vas --inspect
expect_rc 0
expect_out "K"
expect_out "2005-11-16"  # the first test forecast is valid in November (from October's fields)

case_name="--files/--variables with the seed's ZeRO-2 config, lead 2"
run --files "$files" --variables tas,vas --lead_steps 2 --train_fraction 0.5 --valid_fraction 0.25 \
  --deepspeed "$configs/ds_config_zero2.json" "${small[@]}" --output_dir zero2
expect_rc 0
expect_err "engine: ZeRO stage 2"
expect_err "valid_rmse"
[[ $(json zero2/metrics.json test_rmse_vas 2>/dev/null) =~ ^[0-9.]+$ ]] || fail "no numeric test_rmse_vas"

case_name="ZeRO-3"
run --files "$files" --variables tas --deepspeed "$configs/ds_config_zero3.json" "${small[@]}" --output_dir zero3
expect_rc 0
expect_err "engine: ZeRO stage 3"
expect_file zero3/checkpoint/model.safetensors

case_name="two ranks (RANK/WORLD_SIZE/MASTER_ADDR as torchrun sets them), ZeRO-2"
port=$((20000 + RANDOM % 20000))
for r in 0 1; do
  RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    "$bin" --files "$files" --variables tas,uas,vas --deepspeed "$configs/ds_config_zero2.json" "${small[@]}" \
    --output_dir two --use_cpu >"$tmp/out.$r" 2>"$tmp/err.$r" &
  pids[$r]=$!
done
for r in 0 1; do
  wait "${pids[$r]}" || { cp "$tmp/err.$r" "$tmp/err"; fail "rank $r failed"; }
done
grep -qF "engine: ZeRO stage 2, 2 rank(s)" "$tmp/err.0" || { cp "$tmp/err.0" "$tmp/err"; fail "not 2 ranks"; }
expect_file two/predictions.nc

case_name="--save_steps and --resume_from_checkpoint: the resumed run ends as the uninterrupted one (ZeRO-2)"
args=(--files "$files" --variables tas,uas --deepspeed "$configs/ds_config_zero2.json" "${small[@]}")
run "${args[@]}" --output_dir whole --save_steps 2
expect_rc 0
ckpts=($(cd whole && ls -d checkpoint-[0-9]* 2>/dev/null | sort -t- -k2 -n))
[[ ${#ckpts[@]} -ge 2 && -f "whole/${ckpts[0]}/latest" ]] || fail "checkpoints: ${ckpts[*]}"
run "${args[@]}" --output_dir resumed --resume_from_checkpoint "whole/${ckpts[0]}"
expect_rc 0
expect_err "resumed from $tmp/whole/${ckpts[0]}/global_step"
cmp -s whole/checkpoint/model.safetensors resumed/checkpoint/model.safetensors || fail "the final weights differ"
[[ $(json whole/metrics.json test_rmse) == $(json resumed/metrics.json test_rmse) ]] || fail "test_rmse differs"

case_name="errors name the file, the variable, the flag"
run --files "$tmp/missing.nc" --variables tas --output_dir e1
expect_rc 1
expect_err "missing.nc"
run --files "$files" --variables pr --output_dir e2
expect_rc 1
expect_err "pr"
run --files "$files" --output_dir e3
expect_rc 1
expect_err "--variables is required"
run --files "$files" --variables tas --lead_steps 11 --output_dir e4
expect_rc 1
expect_err "pass files with more time steps"
run --files "$files" --variables tas --output_dir default
expect_rc 1
expect_err "pass --overwrite_output_dir"

if [[ $failures -gt 0 ]]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "all climate_train cases passed"
