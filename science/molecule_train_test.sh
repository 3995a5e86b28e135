#!/usr/bin/env bash
# molecule_train end to end on rdkit-data's CHEMBL2321810 activities: the embedded default, CSV
# regression and classification under the seed's ZeRO-2 and ZeRO-3 configs, scaffold split,
# 3D conformers, two ranks, and the errors users meet.
set -uo pipefail

runfiles="${TEST_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="$runfiles/zerotrain/science/molecule_train"
configs="$runfiles/zerotrain/core/config/testdata"
chembl=/usr/share/RDKit/Contrib/FreeWilson/data
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
failures=0
export ZT_LOG_LEVEL=warning
if [[ ! -s "$chembl/CHEMBL2321810.smi" || ! -s "$chembl/CHEMBL2321810_act.csv" ]]; then
  echo "SKIPPED: $chembl/CHEMBL2321810.smi not present (apt-get install rdkit-data; ./bazelw does it)"
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
  echo "--- stderr" >&2; tail -30 "$tmp/err" >&2
  failures=$((failures + 1))
}
expect_rc() { [[ $(cat "$tmp/rc") == "$1" ]] || fail "exit code $(cat "$tmp/rc"), want $1"; }
expect_err() { grep -qF -- "$1" "$tmp/err" || fail "stderr lacks: $1"; }
expect_file() { [[ -s "$1" ]] || fail "missing or empty: $1"; }
# json FILE KEY: a top-level value of a JSON file.
json() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
loss_fell() {
  python3 - "$tmp/err" <<'PY' || fail "train_loss did not fall: $(grep -o 'train_loss [0-9.]*' "$tmp/err" | tr '\n' ' ')"
import re, sys
l = [float(x) for x in re.findall(r"train_loss ([0-9.]+)", open(sys.argv[1]).read())]
sys.exit(0 if len(l) >= 2 and l[-1] < l[0] else 1)
PY
}
small=(--layers 2 --hidden 32 --heads 4 --ffn 64 --batch_size 16 --learning_rate 1e-3)

# A CSV of the first 150 molecules: pIC50 and a 0/1 class (above the median), a quoted name column.
python3 - "$chembl" <<'PY' >"$tmp/mols.csv"
import csv, sys
d = sys.argv[1]
act = {r["Name"]: r["Act"] for r in csv.DictReader(open(f"{d}/CHEMBL2321810_act.csv"))}
rows = [line.split()[:2] for line in open(f"{d}/CHEMBL2321810.smi").readlines()[:150]]
median = sorted(float(act[name]) for _, name in rows)[len(rows) // 2]
w = csv.writer(sys.stdout)
w.writerow(["name, id", "smiles", "pIC50", "active"])
for smi, name in rows:
    w.writerow([f"mol {name}", smi, act[name], int(float(act[name]) >= median)])
PY

case_name="no data flags: the embedded default"
run --epochs 3 "${small[@]}" --output_dir default
expect_rc 0
expect_err "the embedded default"
expect_err "test: RMSE"
grep -qE "^step [0-9]+/[0-9]+ \| epoch [0-9.]+ \| loss [0-9.]+ .* samples/s \| .* tokens/s" "$tmp/err" ||
  fail "no step line with throughput"
expect_err "===== molecule_train: summary ====="
expect_err "best valid RMSE"
expect_err "default/predictions.csv  the test split's predictions"
for f in metrics.json predictions.csv checkpoint/config.json checkpoint/model.safetensors checkpoint/targets.json; do
  expect_file "default/$f"
done
for key in test_rmse test_mae test_r2 baseline_rmse baseline_mae baseline_r2 valid_rmse; do
  json default/metrics.json "$key" >/dev/null 2>&1 || fail "metrics.json lacks $key"
done
n=$(json default/metrics.json test_samples 2>/dev/null || echo 0)
[[ $(($(wc -l <default/predictions.csv) - 1)) == "$n" && $n -gt 50 ]] || fail "predictions.csv has not $n test rows"
loss_fell

case_name="CSV regression, scaffold split, the seed's ZeRO-2 config (CPU offload)"
run --train_file mols.csv --smiles_column smiles --target_columns pIC50 --split scaffold \
  --deepspeed "$configs/ds_config_zero2.json" --epochs 4 "${small[@]}" --output_dir zero2
expect_rc 0
expect_err "engine: ZeRO stage 2"
expect_err "split (scaffold"
[[ $(json zero2/metrics.json test_rmse 2>/dev/null) =~ ^[0-9.]+$ ]] || fail "no numeric test_rmse"

case_name="CSV classification (0/1 targets found automatically), ZeRO-3"
run --train_file mols.csv --target_columns active --deepspeed "$configs/ds_config_zero3.json" --epochs 3 \
  "${small[@]}" --output_dir zero3
expect_rc 0
expect_err "engine: ZeRO stage 3"
expect_err "task: classification"
[[ $(json zero3/metrics.json baseline_roc_auc 2>/dev/null) == 0.5 ]] || fail "baseline_roc_auc is not 0.5"
[[ $(json zero3/metrics.json test_roc_auc 2>/dev/null) =~ ^[0-9.]+$ ]] || fail "no numeric test_roc_auc"
expect_file zero3/checkpoint/model.safetensors

case_name="3D conformers"
head -41 mols.csv >mols40.csv
run --train_file mols40.csv --target_columns pIC50 --conformers --epochs 2 "${small[@]}" --output_dir conf
expect_rc 0
expect_err "3D (ETKDGv3 seed 0"
expect_err "and 3D distances"

case_name="two ranks (RANK/WORLD_SIZE/MASTER_ADDR as torchrun sets them), ZeRO-2"
port=$((20000 + RANDOM % 20000))
for r in 0 1; do
  RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    "$bin" --train_file mols.csv --target_columns pIC50 --deepspeed "$configs/ds_config_zero2.json" --epochs 2 \
    "${small[@]}" --output_dir two --use_cpu >"$tmp/out.$r" 2>"$tmp/err.$r" &
  pids[$r]=$!
done
for r in 0 1; do
  wait "${pids[$r]}" || { cp "$tmp/err.$r" "$tmp/err"; fail "rank $r failed"; }
done
grep -qF "engine: ZeRO stage 2, 2 rank(s)" "$tmp/err.0" || { cp "$tmp/err.0" "$tmp/err"; fail "not 2 ranks"; }
n=$(json two/metrics.json test_samples 2>/dev/null || echo 0)
[[ $(($(wc -l <two/predictions.csv) - 1)) == "$n" ]] || fail "predictions.csv has not $n rows"

case_name="--save_steps and --resume_from_checkpoint: the resumed run ends as the uninterrupted one (ZeRO-2)"
args=(--train_file mols.csv --target_columns pIC50 --deepspeed "$configs/ds_config_zero2.json" --epochs 3 "${small[@]}")
run "${args[@]}" --output_dir whole --save_steps 5 --save_total_limit 2
expect_rc 0
ckpts=($(cd whole && ls -d checkpoint-[0-9]* 2>/dev/null | sort -t- -k2 -n))
[[ ${#ckpts[@]} == 2 && -f "whole/${ckpts[0]}/latest" ]] || fail "save_total_limit 2 kept: ${ckpts[*]}"
run "${args[@]}" --output_dir resumed --resume_from_checkpoint "whole/${ckpts[0]}"
expect_rc 0
expect_err "resumed from $tmp/whole/${ckpts[0]}/global_step"
cmp -s whole/checkpoint/model.safetensors resumed/checkpoint/model.safetensors || fail "the final weights differ"
[[ $(json whole/metrics.json test_rmse) == $(json resumed/metrics.json test_rmse) ]] || fail "test_rmse differs"
run "${args[@]}" --output_dir whole --resume_from_checkpoint latest
expect_rc 0
expect_err "resumed from $tmp/whole/${ckpts[1]}/global_step"

case_name="errors name the file, the column, the flag"
run --train_file missing.csv --target_columns x --output_dir e1
expect_rc 1
expect_err "$tmp/missing.csv"
run --train_file mols.csv --target_columns logP --output_dir e2
expect_rc 1
expect_err "logP"
run --train_file mols.csv --target_columns pIC50 --task guess --output_dir e3
expect_rc 1
expect_err "--task guess"
run --train_file mols.csv --output_dir e4
expect_rc 1
expect_err "--target_columns is required"
run --train_file mols.csv --target_columns pIC50 --output_dir zero2
expect_rc 1
expect_err "pass --overwrite_output_dir"

if [[ $failures -gt 0 ]]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "all molecule_train cases passed"
