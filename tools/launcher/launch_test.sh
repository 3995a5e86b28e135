#!/usr/bin/env bash
# //tools:launch on this machine, end to end with a small training job (launch_probe: the
# engine's test MLP): two CPU ranks through the launcher train what one process trains; ranks get
# their environment and prefixed output; a failing or killed rank stops the job within seconds
# with its code and name; SIGINT reaches every rank; a rank that never arrives at rendezvous is a
# timeout; bad input is refused with a clear message.
set -uo pipefail

# shellcheck source=tools/launcher/test_lib.sh
source "$(dirname "$0")/test_lib.sh"
# run ARGS...: the launcher, output in $tmp/log, exit code in $rc.
run() {
  timeout 120 "$launch" "$@" >"$tmp/log" 2>&1
  rc=$?
}
expect_rc() { [[ $rc == "$1" ]] || fail "exit code $rc, want $1"; }
expect_log() { grep -qF -- "$1" "$tmp/log" || fail "output lacks: $1"; }
# all_gone DIR: no pid of DIR/rank_*.pid is alive (waits up to 10 s for them to end).
all_gone() {
  local f pid deadline=$((SECONDS + 10))
  for f in "$1"/rank_*.pid; do
    pid=$(cat "$f")
    while kill -0 "$pid" 2>/dev/null; do
      ((SECONDS < deadline)) || { fail "rank process $pid ($(basename "$f")) is still running"; return; }
      sleep 0.2
    done
  done
}
# wait_pids DIR N: until N pid files are there (20 s at most).
wait_pids() {
  local deadline=$((SECONDS + 20))
  while (($(ls "$1" 2>/dev/null | wc -l) < $2)); do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

for stage in 0 2 3; do
  case_name="two CPU ranks through the launcher train what one process trains (ZeRO-$stage)"
  "$probe" --stage "$stage" --steps 6 --out "$tmp/one_$stage.txt" >"$tmp/one_$stage.log" 2>&1 ||
    { cp "$tmp/one_$stage.log" "$tmp/log"; fail "the one-process run failed"; }
  run --num_procs 2 --master_port "$(free_port)" "$probe" --stage "$stage" --steps 6 --out "$tmp/two_$stage.txt"
  expect_rc 0
  expect_log "probe: rank 0 of 2 local 0"
  expect_log "probe: rank 1 of 2 local 1"
  expect_log "[rank0] step 5 loss"
  expect_log "launch: 2 rank(s), CPU processes, world size 2, MASTER_ADDR=127.0.0.1"
  close "$tmp/one_$stage.txt" "$tmp/two_$stage.txt" || fail "final parameters differ from one process"
  grep -o 'step [0-9]* loss [0-9.e-]*' "$tmp/one_$stage.log" | awk '{print $4}' >"$tmp/loss_one"
  grep -o 'step [0-9]* loss [0-9.e-]*' "$tmp/log" | awk '{print $4}' >"$tmp/loss_two"
  close "$tmp/loss_one" "$tmp/loss_two" || fail "the loss sequence differs from one process"
  [[ $(wc -l <"$tmp/loss_two") == 6 ]] || fail "want 6 loss lines"
done

case_name="every rank's environment, and output lines prefixed with the rank"
run --num_procs 3 --master_port 29611 /bin/sh -c 'echo "$RANK/$WORLD_SIZE $LOCAL_RANK/$LOCAL_WORLD_SIZE node $NODE_RANK at $MASTER_ADDR:$MASTER_PORT gpus=${CUDA_VISIBLE_DEVICES-none}"'
expect_rc 0
for r in 0 1 2; do expect_log "[rank$r] $r/3 $r/3 node 0 at 127.0.0.1:29611 gpus=none"; done

case_name="--include picks slots; a Python program gets --local_rank as DeepSpeed passes it"
printf 'import os, sys\nprint("argv", sys.argv[1:], "rank", os.environ["RANK"])\n' >"$tmp/script.py"
run --num_procs 3 --include localhost:0,2 "$tmp/script.py" --lr 3
expect_rc 0
expect_log "[rank0] argv ['--local_rank=0', '--lr', '3'] rank 0"
expect_log "[rank1] argv ['--local_rank=1', '--lr', '3'] rank 1"
! grep -qF "[rank2]" "$tmp/log" || fail "a third rank ran"

case_name="a rank that fails stops the job with its exit code, naming it"
mkdir -p "$tmp/pids_fail"
t0=$SECONDS
run --num_procs 2 --master_port "$(free_port)" "$probe" --steps 100000 --step_sleep_ms 100 --fail_rank 1 \
  --fail_step 3 --fail_code 9 --pid_dir "$tmp/pids_fail"
expect_rc 9
expect_log "launch: rank 1 (pid"
expect_log "failed with exit code 9; stopping the other process (1)"
expect_log "launch: rank 1 failed (exit code 9): every process is stopped; exit code 9"
((SECONDS - t0 < 60)) || fail "took $((SECONDS - t0)) s"
all_gone "$tmp/pids_fail"

case_name="killing a rank mid-training (SIGKILL) ends every process within 60 s"
mkdir -p "$tmp/pids_kill"
"$launch" --num_procs 2 --master_port "$(free_port)" "$probe" --steps 100000 --step_sleep_ms 100 \
  --pid_dir "$tmp/pids_kill" >"$tmp/log" 2>&1 &
launcher=$!
if wait_pids "$tmp/pids_kill" 2 && sleep 2; then
  t0=$SECONDS
  kill -9 "$(cat "$tmp/pids_kill/rank_1.pid")"
  timeout 60 tail --pid="$launcher" -f /dev/null
  wait "$launcher"
  rc=$?
  ((SECONDS - t0 < 60)) || fail "the launcher took $((SECONDS - t0)) s to end"
  expect_rc 137
  expect_log "launch: rank 1 (pid"
  expect_log "was killed by signal 9"
  all_gone "$tmp/pids_kill"
else
  kill -9 "$launcher"
  fail "the ranks did not start"
fi

case_name="SIGINT to the launcher reaches every rank (exit 130)"
mkdir -p "$tmp/pids_int"
"$launch" --num_procs 2 --master_port "$(free_port)" "$probe" --steps 100000 --step_sleep_ms 100 \
  --pid_dir "$tmp/pids_int" >"$tmp/log" 2>&1 &
launcher=$!
if wait_pids "$tmp/pids_int" 2 && sleep 1; then
  kill -INT "$launcher"
  timeout 30 tail --pid="$launcher" -f /dev/null
  wait "$launcher"
  rc=$?
  expect_rc 130
  expect_log "launch: got SIGINT, passing it on"
  all_gone "$tmp/pids_int"
else
  kill -9 "$launcher"
  fail "the ranks did not start"
fi

case_name="a rank that never arrives at rendezvous: rank 0 times out and the job ends"
t0=$SECONDS
ZT_RENDEZVOUS_TIMEOUT_S=3 run --num_procs 2 --master_port "$(free_port)" /bin/sh -c \
  'if [ "$RANK" = 1 ]; then exec sleep 600; fi; exec "$0" --steps 2' "$probe"
expect_rc 1
expect_log "timed out"
expect_log "ZT_RENDEZVOUS_TIMEOUT_S"
expect_log "launch: rank 0 (pid"
((SECONDS - t0 < 60)) || fail "took $((SECONDS - t0)) s"

case_name="--no_ssh --node_rank starts one node's share of a hostfile here"
printf 'nodeA slots=2\nnodeB slots=2\n' >"$tmp/hostfile"
run --hostfile "$tmp/hostfile" --no_ssh --node_rank 1 --cpu /bin/sh -c 'echo "rank $RANK of $WORLD_SIZE local $LOCAL_RANK master $MASTER_ADDR"'
expect_rc 0
expect_log "[rank2] rank 2 of 4 local 0 master nodeA"
expect_log "[rank3] rank 3 of 4 local 1 master nodeA"

case_name="bad input is refused with a message that says what is wrong"
run --num_prcos 2 "$probe"
expect_rc 2
expect_log "unknown option --num_prcos (did you mean --num_procs?)"
printf 'good slots=2\nbad;rm slots=1\n' >"$tmp/bad_hostfile"
run --hostfile "$tmp/bad_hostfile" --cpu "$probe"
expect_rc 2
expect_log "bad_hostfile:2: 'bad;rm' is not a host name"
run --hostfile "$tmp/hostfile" --num_gpus 4 "$probe"
expect_rc 2
expect_log "--num_gpus 4 but host 'nodeA' has slots=2"
run --hostfile "$tmp/hostfile" --include nodeC "$probe"
expect_rc 2
expect_log "--include: host 'nodeC' is not in"
run --num_procs 2 "$tmp/no_such_program"
expect_rc 2
expect_log "no such file"
if ! ls /dev/nvidia0 >/dev/null 2>&1; then
  run --num_gpus 2 "$probe"
  expect_rc 2
  expect_log "this machine has no NVIDIA GPU"
fi
busy=$(free_port)
python3 -c 'import socket,sys,time; s=socket.socket(); s.bind(("",int(sys.argv[1]))); s.listen(); time.sleep(30)' "$busy" &
holder=$!
sleep 0.5
run --num_procs 2 --master_port "$busy" "$probe"
kill "$holder" 2>/dev/null
expect_rc 1
expect_log "MASTER_PORT $busy is already in use"

finish_tests "all launcher checks passed"
