#!/usr/bin/env bash
# The GPU half of CI, run on the GPU machine from the repository root, with the device bundle
# copied into .device/ (see docs/GPU.md):
#
#   bash tools/gpu_ci.sh            # logs and test outputs in $OUT (or /tmp/zerotrain-gpu)
#
# Builds and runs every test with --config=cuda (the `gpu` tests included; their full output
# is in test.log), prints the environment report through ./bazelw (which must pick
# --config=cuda by itself there), and ends with `N passed, N failed` like .ci/run.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
O=${OUT:-/tmp/zerotrain-gpu}
mkdir -p "$O"
t0=$SECONDS
# shellcheck disable=SC1091
DSB_QUIET=1 source .device/setup.sh || { echo "setup.sh failed"; echo "0 passed, 1 failed"; exit 1; }
echo "== setup took $((SECONDS - t0)) s"
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv 2>&1 | tee "$O/nvidia-smi.txt"

t1=$SECONDS
bazel test --config=cuda --keep_going --test_output=all --build_event_json_file="$O/bep.json" //... >"$O/test.log" 2>&1
rc=$?
grep -E -v '^(Loading|Analyzing|\[[0-9,]+ / )' "$O/test.log" | grep -E "PASSED|FAILED|NO STATUS|ERROR|error:|\[  (PASSED|FAILED)|OK \]|SKIPPED" | tail -80
echo "== bazel test --config=cuda //... exited $rc after $((SECONDS - t1)) s"
read -r tp tf < <(python3 tools/ci/bep_summary.py "$O/bep.json")
[[ -z ${tp:-} ]] && tp=0 tf=1
[[ $rc != 0 && $tf == 0 ]] && tf=1

./bazelw run //tools:ds_report 2>"$O/ds_report.err" | tee "$O/ds_report.txt"
bazel shutdown >/dev/null 2>&1
echo "== GPU CI took $((SECONDS - t0)) s"
echo "$tp passed, $tf failed"
[[ $tf == 0 ]]
