#!/usr/bin/env bash
# ds_config on the seed configs and on broken inputs: exit codes and the lines users read.
set -uo pipefail

runfiles="${TEST_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}/zerotrain"
bin="$runfiles/tools/ds_config"
data="$runfiles/core/config/testdata"
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
failures=0

# run ARGS...: runs ds_config; leaves stdout, stderr and the exit code in $tmp.
run() {
  "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
  echo $? >"$tmp/rc"
}
fail() {
  echo "FAIL [$case_name]: $*" >&2
  echo "--- stdout" >&2; cat "$tmp/out" >&2
  echo "--- stderr" >&2; cat "$tmp/err" >&2
  failures=$((failures + 1))
}
expect_rc() { [[ $(cat "$tmp/rc") == "$1" ]] || fail "exit code $(cat "$tmp/rc"), want $1"; }
expect_out() { grep -qF -- "$1" "$tmp/out" || fail "stdout lacks: $1"; }
expect_err() { grep -qF -- "$1" "$tmp/err" || fail "stderr lacks: $1"; }
expect_no_err() { ! grep -qF -- "$1" "$tmp/err" || fail "stderr has: $1"; }

case_name="seed zero2 is valid and lists the job's autos"
run check "$data/ds_config_zero2.json"
expect_rc 0
expect_out '"stage": 2'
expect_out '"train_batch_size": "auto"'
expect_out '"allgather_bucket_size": 200000000'
[[ $(head -c1 "$tmp/out") == "{" ]] || fail "stdout is not a JSON object"
expect_no_err 'not implemented yet'
expect_err '"auto" values resolved at run time by the job: train_batch_size, train_micro_batch_size_per_gpu, gradient_accumulation_steps, gradient_clipping, optimizer.params.lr'

case_name="seed zero3 with both CPU offloads is fully implemented"
run check "$data/ds_config_zero3.json"
expect_rc 0
expect_no_err 'not implemented yet'
expect_out '"offload_param": {'
expect_err 'zero_optimization.stage3_prefetch_bucket_size'

case_name="--set fills values before resolution"
run check "$data/ds_config_zero2.json" --set optimizer.params.lr=1e-4 --set train_micro_batch_size_per_gpu=4 \
  --set=gradient_accumulation_steps=2 --set train_batch_size=16 --world_size 2
expect_rc 0
expect_out '"lr": 0.0001'
expect_out '"train_micro_batch_size_per_gpu": 4'
expect_out '"train_batch_size": 16'
expect_err '"auto" values resolved at run time by the job: gradient_clipping, optimizer.params.betas'
expect_no_err 'optimizer.params.lr,'

case_name="batch arithmetic with --world_size"
run check "$data/ds_config_zero2.json" --set train_batch_size=32 --set train_micro_batch_size_per_gpu=3 \
  --set gradient_accumulation_steps=null --world_size 2
expect_rc 2
expect_err 'ds_config: error: '
expect_err 'train_batch_size 32 != train_micro_batch_size_per_gpu 3 x gradient_accumulation_steps 5 x world size 2'

case_name="a misspelt key is refused with a suggestion"
printf '{"train_batch_size": 8, "zero_optimization": {"reduce_bucket_sise": 5e8}}' >"$tmp/typo.json"
run check "$tmp/typo.json"
expect_rc 2
expect_err 'unknown key "zero_optimization.reduce_bucket_sise"; did you mean "reduce_bucket_size"?'
[[ $(wc -l <"$tmp/err") == 1 ]] || fail "the error is not one line"

case_name="malformed JSON names line and column"
run check "$data/docs_flops_profiler_trailing_comma.json"
expect_rc 2
expect_err 'invalid JSON at line 9, column 5'

case_name="a --set path outside the schema is refused"
run check "$data/ds_config_zero2.json" --set zero_optimization.stag=3
expect_rc 2
expect_err 'ds_config: error: --set zero_optimization.stag=3: unknown key "zero_optimization.stag"; did you mean "stage"?'

case_name="a relative FILE is read from the user's directory under bazel run"
(cd "$tmp" && BUILD_WORKING_DIRECTORY="$data" "$bin" check ds_config_zero3.json >"$tmp/out" 2>"$tmp/err"; echo $? >"$tmp/rc")
expect_rc 0

case_name="a missing file"
run check "$tmp/missing.json"
expect_rc 2
expect_err 'missing.json: cannot open: No such file or directory'

case_name="usage errors"
run
expect_rc 2
expect_err 'usage: ds_config check FILE'
run lint "$data/ds_config_zero2.json"
expect_rc 2
expect_err 'unknown command "lint"'
run check "$data/ds_config_zero2.json" --world_size zero
expect_rc 2
expect_err '--world_size needs a positive integer'
run check "$data/ds_config_zero2.json" --set
expect_rc 2
expect_err '--set needs a value'
run check
expect_rc 2
expect_err 'check needs a FILE'
run --help
expect_rc 0
expect_out 'usage: ds_config check FILE'

if ((failures > 0)); then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "all ds_config checks passed"
