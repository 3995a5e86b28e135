#!/usr/bin/env bash
# //tools:launch on GPUs: one rank per GPU over NCCL (launch_probe --gpu) trains what one GPU
# trains, on 1 GPU and on 2 where the machine has them; each rank sees the node's GPUs in
# CUDA_VISIBLE_DEVICES and uses its LOCAL_RANK; --include picks a GPU; a rank killed in the
# middle of NCCL training ends the job within 60 s.
set -uo pipefail

# shellcheck source=tools/launcher/test_lib.sh
source "$(dirname "$0")/test_lib.sh"

gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ')
if ((gpus == 0)); then
  echo "SKIPPED: no GPU (nvidia-smi -L lists none)"
  exit 0
fi
echo "$gpus GPU(s)"

for stage in 2 3; do
  case_name="one GPU, one process (reference), ZeRO-$stage"
  "$probe" --gpu --stage "$stage" --steps 6 --out "$tmp/ref_$stage.txt" >"$tmp/log" 2>&1 || fail "failed"
  for n in 1 2; do
    ((n <= gpus)) || { echo "SKIPPED [$n GPUs]: this machine has $gpus"; continue; }
    case_name="launch --num_gpus $n, ZeRO-$stage"
    timeout 300 "$launch" --num_gpus "$n" --master_port "$(free_port)" "$probe" --gpu --stage "$stage" --steps 6 \
      --out "$tmp/n${n}_$stage.txt" >"$tmp/log" 2>&1
    rc=$?
    [[ $rc == 0 ]] || fail "exit code $rc"
    visible=$(seq -s, 0 $((n - 1)))
    for ((r = 0; r < n; r++)); do
      grep -qF "probe: rank $r of $n local $r pid" "$tmp/log" || fail "no rank $r of $n"
      grep -qF "CUDA_VISIBLE_DEVICES=$visible" "$tmp/log" || fail "CUDA_VISIBLE_DEVICES is not $visible"
    done
    grep -qF "launch: $n rank(s), CUDA_VISIBLE_DEVICES=$visible" "$tmp/log" || fail "no launch line"
    echo "[$case_name] $(close "$tmp/ref_$stage.txt" "$tmp/n${n}_$stage.txt" || fail "parameters differ from one GPU")"
  done
done

if ((gpus >= 2)); then
  case_name="--include localhost:1 runs one rank on the second GPU"
  timeout 300 "$launch" --include localhost:1 --master_port "$(free_port)" "$probe" --gpu --steps 2 >"$tmp/log" 2>&1 ||
    fail "exit code $?"
  grep -qF "probe: rank 0 of 1 local 0" "$tmp/log" || fail "no single rank"
  grep -qF "CUDA_VISIBLE_DEVICES=1" "$tmp/log" || fail "not on GPU 1"

  case_name="killing a rank during NCCL training ends the job within 60 s"
  mkdir -p "$tmp/pids"
  "$launch" --num_gpus 2 --master_port "$(free_port)" "$probe" --gpu --steps 1000000 --step_sleep_ms 50 \
    --pid_dir "$tmp/pids" >"$tmp/log" 2>&1 &
  launcher=$!
  for _ in $(seq 100); do [[ -s $tmp/pids/rank_1.pid && -s $tmp/pids/rank_0.pid ]] && break; sleep 0.3; done
  sleep 3
  t0=$SECONDS
  kill -9 "$(cat "$tmp/pids/rank_1.pid")"
  timeout 60 tail --pid="$launcher" -f /dev/null
  wait "$launcher"
  rc=$?
  echo "[$case_name] the launcher ended $((SECONDS - t0)) s after the kill with exit code $rc"
  [[ $rc == 137 ]] || fail "exit code $rc, want 137"
  grep -qF "was killed by signal 9" "$tmp/log" || fail "the rank's death is not named"
  sleep 1
  kill -0 "$(cat "$tmp/pids/rank_0.pid")" 2>/dev/null && fail "rank 0 is still running"
fi

finish_tests "all GPU launcher checks passed"
