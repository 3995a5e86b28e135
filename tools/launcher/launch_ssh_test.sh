#!/usr/bin/env bash
# The launcher across two "hosts" on one machine: 127.0.0.2 and 127.0.0.3 (both local on Linux),
# served by an sshd this test starts on a free port with its own keys.  A DeepSpeed hostfile
# puts two ranks on the first host and one on the second; the launcher reaches both over ssh
# (--launcher_args "-F CONFIG") and each node launcher starts its ranks.  Checks: three ranks
# train as one process does; a rank failing on the second host stops every rank; SIGTERM or
# SIGKILL to the launcher stops the ranks on both hosts; an unreachable host; no shell injection
# through the hostfile or the program's arguments; the same through pdsh where it is installed.
# Skips without root, sshd or ssh.  Nothing
# here uses the machine's own sshd (port 22) or ~/.ssh.
set -uo pipefail

if [[ $(id -u) != 0 ]]; then
  echo "SKIPPED: not root (sshd must run as root to log in as this user)"
  exit 0
fi
if [[ ! -x /usr/sbin/sshd ]]; then
  echo "SKIPPED: no /usr/sbin/sshd (apt-get install openssh-server)"
  exit 0
fi
for tool in ssh ssh-keygen; do
  if ! command -v "$tool" >/dev/null; then
    echo "SKIPPED: no $tool on PATH (apt-get install openssh-client)"
    exit 0
  fi
done

runfiles="${TEST_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/zerotrain"
launch="$runfiles/tools/launch"
probe="$runfiles/tools/launcher/launch_probe"
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
failures=0
failures_before=0  # failures before the current case
export ZT_LOG_LEVEL=warning
case_name="setup"

# fail TEXT: counts a failure; the first of a case shows the end of the launcher's output.
fail() {
  echo "FAIL [$case_name]: $*" >&2
  if ((failures == failures_before)); then
    if [[ -f $tmp/out ]]; then echo "--- stdout (tail)" >&2; tail -20 "$tmp/out" >&2; fi
    if [[ -f $tmp/err ]]; then echo "--- stderr (tail)" >&2; tail -30 "$tmp/err" >&2; fi
    echo "---" >&2
  fi
  failures=$((failures + 1))
}
case_no=0
# finish TEXT: says how the case went, with TEXT (timings); its output stays in $tmp/caseN.{out,err}.
finish() {
  case_no=$((case_no + 1))
  cp "$tmp/out" "$tmp/case$case_no.out" 2>/dev/null
  cp "$tmp/err" "$tmp/case$case_no.err" 2>/dev/null
  if ((failures == failures_before)); then
    echo "ok [$case_name] $*"
  else
    echo "FAILED [$case_name] $*"
  fi
  failures_before=$failures
}
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }
# A TCP port nobody listens on now.
free_port() { python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }
# is_probe PID: whether PID runs this test's probe (not some process that got a reused pid).
is_probe() { { tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null | grep -qF -- "$probe"; }
# alive PIDFILE...: the pids of those files still running the probe.
alive() {
  local f p
  for f in "$@"; do
    [[ -s $f ]] || continue
    p=$(cat "$f")
    is_probe "$p" && echo "$p"
  done
}
# wait_gone SECONDS PIDFILE...: until none of them runs; returns 1 if some still do.
wait_gone() {
  local until=$((SECONDS + $1))
  shift
  while [[ -n $(alive "$@") ]]; do
    ((SECONDS >= until)) && return 1
    sleep 0.2
  done
}
# probe_procs: processes still running the probe of this test (ranks, or launchers/ssh naming it).
probe_procs() { pgrep -f -- "$probe" || true; }
wait_no_probe() {
  local until=$((SECONDS + $1))
  while [[ -n $(probe_procs) ]]; do
    ((SECONDS >= until)) && return 1
    sleep 0.2
  done
}

sshd_pid=""
bg_pid=""
pid_dir=""
cleanup() {
  local f p
  [[ -n $bg_pid ]] && kill -KILL "$bg_pid" 2>/dev/null
  for f in "$tmp"/pids*/rank_*.pid ${pid_dir:+"$pid_dir"/rank_*.pid}; do
    [[ -s $f ]] && p=$(cat "$f") && is_probe "$p" && kill -KILL "$p" 2>/dev/null
  done
  if [[ -n $sshd_pid ]]; then
    kill -TERM "$sshd_pid" 2>/dev/null
    wait "$sshd_pid" 2>/dev/null
  fi
}
trap cleanup EXIT

# ---- sshd on 127.0.0.2 and 127.0.0.3 -------------------------------------------------------------
ssh_dir="$tmp/ssh"
rm -rf "$ssh_dir"
mkdir -p "$ssh_dir"
ssh-keygen -q -t ed25519 -N '' -f "$ssh_dir/host_key" </dev/null || { fail "ssh-keygen (host key) failed"; exit 1; }
ssh-keygen -q -t ed25519 -N '' -f "$ssh_dir/id_user" </dev/null || { fail "ssh-keygen (user key) failed"; exit 1; }
cp "$ssh_dir/id_user.pub" "$ssh_dir/authorized_keys"
chmod 600 "$ssh_dir/host_key" "$ssh_dir/id_user" "$ssh_dir/authorized_keys"
ssh_port=$(free_port)
cat >"$ssh_dir/sshd_config" <<EOF
Port $ssh_port
ListenAddress 127.0.0.2
ListenAddress 127.0.0.3
HostKey $ssh_dir/host_key
AuthorizedKeysFile $ssh_dir/authorized_keys
PubkeyAuthentication yes
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile $ssh_dir/sshd.pid
PrintMotd no
MaxStartups 50
MaxSessions 50
LogLevel INFO
EOF
cat >"$ssh_dir/ssh_config" <<EOF
Host *
  Port $ssh_port
  User root
  IdentityFile $ssh_dir/id_user
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  GlobalKnownHostsFile /dev/null
  LogLevel ERROR
  BatchMode yes
  ConnectTimeout 10
EOF
cfg="$ssh_dir/ssh_config"
# sshd's privilege separation directory is compiled in; a container may not have it.
if ! { mkdir -p /run/sshd && chmod 755 /run/sshd; }; then
  fail "cannot make sshd's privilege separation directory /run/sshd"
  exit 1
fi
if ! /usr/sbin/sshd -t -f "$ssh_dir/sshd_config" >"$ssh_dir/sshd_check.log" 2>&1; then
  cat "$ssh_dir/sshd_check.log" >&2
  fail "sshd -t rejects the test's sshd_config"
  exit 1
fi
/usr/sbin/sshd -D -e -f "$ssh_dir/sshd_config" </dev/null >"$ssh_dir/sshd.log" 2>&1 &
sshd_pid=$!
t0=$(now)
ready=0
deadline=$((SECONDS + 20))
while ((SECONDS < deadline)); do
  if ! kill -0 "$sshd_pid" 2>/dev/null; then break; fi
  if timeout 10 ssh -F "$cfg" 127.0.0.2 true </dev/null 2>/dev/null &&
     timeout 10 ssh -F "$cfg" 127.0.0.3 true </dev/null 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.2
done
if ((ready == 0)); then
  echo "--- sshd log" >&2; tail -30 "$ssh_dir/sshd.log" >&2
  timeout 10 ssh -F "$cfg" 127.0.0.2 true </dev/null
  fail "sshd on 127.0.0.2/127.0.0.3 port $ssh_port does not let this test's key log in"
  exit 1
fi
echo "sshd (pid $sshd_pid) on 127.0.0.2 and 127.0.0.3 port $ssh_port, ready in $(since "$t0") s"

# Everything runs in a working directory of the test's own: the launcher starts remote ranks in
# the directory it was started in, and injected commands would leave their files here.
work="$tmp/work"
mkdir -p "$work"
cd "$work" || exit 1
rm -f "$tmp"/out "$tmp"/err "$tmp"/*.txt

hostfile="$tmp/hostfile"
cat >"$hostfile" <<'EOF'
# two "hosts" on this machine: two ranks on the first, one on the second

127.0.0.2 slots=2
127.0.0.3 slots=1
EOF

# run SECONDS ARGS...: the launcher with ARGS under a time limit; stdout, stderr, exit code and
# the seconds it took in $tmp.
run() {
  local limit=$1
  shift
  local t
  t=$(now)
  timeout -k 10 "$limit" "$launch" "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
  echo $? >"$tmp/rc"
  since "$t" >"$tmp/secs"
}
expect_rc() { [[ $(cat "$tmp/rc") == "$1" ]] || fail "exit code $(cat "$tmp/rc"), want $1"; }
expect_err() { grep -qF -- "$1" "$tmp/err" || fail "stderr lacks: $1"; }
# Lines from ranks (node launchers pass them on prefixed, the top launcher unchanged).
expect_rank_lines() {
  local r
  for r in "$@"; do
    grep -q "^\[rank$r\] probe: rank $r of 3 " "$tmp/err" || fail "no line from [rank$r] (probe: rank $r of 3)"
  done
}
multi=(--hostfile "$hostfile" --cpu --master_addr 127.0.0.2 --launcher_args "-F $cfg" --stop_grace 2)

# ---- 1 ----------------------------------------------------------------------------------------------
case_name="three ranks on two hosts over ssh train as one process does"
port=$(free_port)
run 120 "${multi[@]}" --master_port "$port" "$probe" --stage 2 --steps 6 --out "$tmp/multi.txt"
expect_rc 0
expect_rank_lines 0 1 2
expect_err "3 ranks on 2 hosts (127.0.0.2 x2, 127.0.0.3 x1) through ssh"
secs1=$(cat "$tmp/secs")
cp "$tmp/out" "$tmp/multi.out"
env -u RANK -u WORLD_SIZE -u LOCAL_RANK -u LOCAL_WORLD_SIZE -u MASTER_ADDR -u MASTER_PORT \
  timeout 120 "$probe" --stage 2 --steps 6 --out "$tmp/one.txt" </dev/null >"$tmp/one.out" 2>"$tmp/one.err" ||
  fail "the one-process probe failed: $(tail -5 "$tmp/one.err")"
python3 - "$tmp/one.txt" "$tmp/multi.txt" "$tmp/one.out" "$tmp/multi.out" <<'PY' || fail "three ranks differ from one process"
import re, sys
one, multi = ([float(x) for x in open(p).read().split()] for p in sys.argv[1:3])
if not one or len(one) != len(multi):
    sys.exit(f"parameter counts: one process {len(one)}, three ranks {len(multi)}")
worst = max(abs(a - b) for a, b in zip(one, multi))
if worst > 1e-5:
    sys.exit(f"parameters differ by up to {worst}")
def losses(path, prefix):
    pat = re.compile(re.escape(prefix) + r"step (\d+) loss (\S+)$")
    return [(int(m[1]), float(m[2])) for m in map(pat.match, open(path).read().splitlines()) if m]
lo, lm = losses(sys.argv[3], ""), losses(sys.argv[4], "[rank0] ")
if len(lo) != 6 or [s for s, _ in lo] != [s for s, _ in lm]:
    sys.exit(f"loss lines: one process {lo}, three ranks {lm}")
for (s, a), (_, b) in zip(lo, lm):
    if abs(a - b) > 1e-5:
        sys.exit(f"step {s} loss: one process {a}, three ranks {b}")
print(f"{len(one)} parameters within {worst:.2g}; 6 losses match")
PY
finish "(${secs1} s)"

# ---- 2 ----------------------------------------------------------------------------------------------
case_name="a rank failing on the second host stops every rank"
port=$(free_port)
mkdir -p "$tmp/pids2"
run 60 "${multi[@]}" --master_port "$port" "$probe" --stage 2 --steps 1000 --step_sleep_ms 300 \
  --fail_rank 2 --fail_step 2 --fail_code 9 --pid_dir "$tmp/pids2"
expect_rc 9
grep -qE "rank 2 .*failed with exit code 9" "$tmp/err" || fail "stderr does not say rank 2 failed with exit code 9"
grep -qF "probe: rank 2 fails on purpose at step 2" "$tmp/err" || fail "stderr lacks rank 2's own last line"
pids=("$tmp"/pids2/rank_{0,1,2}.pid)
for f in "${pids[@]}"; do [[ -s $f ]] || fail "no pid file $f: did every rank start?"; done
wait_gone 5 "${pids[@]}" || fail "ranks still running: $(alive "${pids[@]}")"
wait_no_probe 5 || fail "probe processes left: $(ps -o pid=,args= -p "$(probe_procs | paste -sd,)")"
finish "($(cat "$tmp/secs") s, exit $(cat "$tmp/rc"))"

# ---- 3 ----------------------------------------------------------------------------------------------
# The node launchers learn that the first machine's launcher is gone from their standard input
# (ssh's end of the session), whether the launcher stops its ssh children (SIGTERM) or dies at
# once and takes them along (SIGKILL: its children die with it).
for sig in TERM KILL; do
  case_name="SIG$sig to the launcher stops the ranks on both hosts"
  want_rc=$((128 + $(kill -l "$sig")))
  port=$(free_port)
  mkdir -p "$tmp/pids3$sig"
  pids=("$tmp/pids3$sig"/rank_{0,1,2}.pid)
  # In a subshell that keeps its exit code, so that bash reports no "Killed" here.
  rm -f "$tmp/bg_pid" "$tmp/bg_rc"
  (
    "$launch" "${multi[@]}" --master_port "$port" "$probe" --stage 2 --steps 1000 --step_sleep_ms 300 \
      --pid_dir "$tmp/pids3$sig" </dev/null >"$tmp/out" 2>"$tmp/err" &
    echo $! >"$tmp/bg_pid"
    wait $!
    echo $? >"$tmp/bg_rc"
  ) 2>/dev/null &
  sub_pid=$!
  for ((i = 0; i < 50; i++)); do [[ -s $tmp/bg_pid ]] && break; sleep 0.1; done
  bg_pid=$(cat "$tmp/bg_pid")
  # Until every rank has written its pid and training runs (rank 0 printed a step).
  deadline=$((SECONDS + 60))
  until [[ -s ${pids[0]} && -s ${pids[1]} && -s ${pids[2]} ]] && grep -q "^\[rank0\] step 1 loss" "$tmp/out"; do
    if ! kill -0 "$bg_pid" 2>/dev/null || ((SECONDS >= deadline)); then break; fi
    sleep 0.2
  done
  grep -q "^\[rank0\] step 1 loss" "$tmp/out" || fail "the job did not get to step 1 within 60 s"
  t_kill=$(now)
  kill "-$sig" "$bg_pid"
  for ((i = 0; i < 150; i++)); do
    [[ -s $tmp/bg_rc ]] && break
    sleep 0.2
  done
  secs_exit=$(since "$t_kill")
  rc=$(cat "$tmp/bg_rc" 2>/dev/null)
  if [[ -z $rc ]]; then
    fail "the launcher still runs 30 s after SIG$sig"
    kill -KILL "$bg_pid" 2>/dev/null
  fi
  wait "$sub_pid"
  bg_pid=""
  [[ $rc == "$want_rc" ]] || fail "launcher exit code $rc after SIG$sig, want $want_rc"
  wait_gone 30 "${pids[@]}" || fail "ranks still running 30 s after SIG$sig: $(alive "${pids[@]}")"
  secs_gone=$(since "$t_kill")
  expect_rank_lines 0 1 2
  wait_no_probe 5 || fail "probe processes left: $(ps -o pid=,args= -p "$(probe_procs | paste -sd,)")"
  finish "(launcher exited ${secs_exit} s after SIG$sig with $rc; every rank gone after ${secs_gone} s)"
done

# ---- pdsh ------------------------------------------------------------------------------------------
# The same hosts through pdsh (its ssh module, our ssh config through PDSH_SSH_ARGS_APPEND; node
# ranks from pdsh's %n): training, a failing rank on the second host, SIGTERM to the launcher.
# pdsh stops no node when another fails, so the launcher does on the node's failure line; the
# node launchers stop their ranks when pdsh's sessions go (their output's reader is gone).
if ! command -v pdsh >/dev/null; then
  echo "SKIPPED [pdsh cases]: no pdsh on PATH (apt-get install pdsh)"
else
  export PDSH_SSH_ARGS_APPEND="-F $cfg"
  pdsh_multi=(--hostfile "$hostfile" --cpu --master_addr 127.0.0.2 --launcher pdsh --stop_grace 2)

  case_name="three ranks on two hosts through pdsh train as one process does"
  run 120 "${pdsh_multi[@]}" --master_port "$(free_port)" "$probe" --stage 2 --steps 6 --out "$tmp/pdsh.txt"
  expect_rc 0
  expect_err "3 ranks on 2 hosts (127.0.0.2 x2, 127.0.0.3 x1) through pdsh"
  for r in 0 1 2; do grep -q "probe: rank $r of 3 " "$tmp/err" || fail "no line from rank $r"; done
  python3 - "$tmp/one.txt" "$tmp/pdsh.txt" <<'PY2' || fail "pdsh's three ranks differ from one process"
import sys
a, b = ([float(x) for x in open(p).read().split()] for p in sys.argv[1:])
if not a or len(a) != len(b) or max(abs(x - y) for x, y in zip(a, b)) > 1e-5:
    sys.exit("differ")
PY2
  finish "($(cat "$tmp/secs") s)"

  case_name="through pdsh, a rank failing on the second host stops every rank"
  mkdir -p "$tmp/pids_pdsh"
  run 60 "${pdsh_multi[@]}" --master_port "$(free_port)" "$probe" --stage 2 --steps 1000 --step_sleep_ms 300 \
    --fail_rank 2 --fail_step 2 --fail_code 9 --pid_dir "$tmp/pids_pdsh"
  expect_rc 9
  grep -qE "rank 2 .*failed with exit code 9" "$tmp/err" || fail "stderr does not say rank 2 failed with exit code 9"
  pids=("$tmp"/pids_pdsh/rank_{0,1,2}.pid)
  wait_gone 15 "${pids[@]}" || fail "ranks still running: $(alive "${pids[@]}")"
  wait_no_probe 5 || fail "probe processes left: $(ps -o pid=,args= -p "$(probe_procs | paste -sd,)")"
  finish "($(cat "$tmp/secs") s, exit $(cat "$tmp/rc"))"

  case_name="through pdsh, SIGTERM to the launcher stops the ranks on both hosts"
  mkdir -p "$tmp/pids_pdsh_term"
  pids=("$tmp"/pids_pdsh_term/rank_{0,1,2}.pid)
  "$launch" "${pdsh_multi[@]}" --master_port "$(free_port)" "$probe" --stage 2 --steps 1000 --step_sleep_ms 300 \
    --pid_dir "$tmp/pids_pdsh_term" </dev/null >"$tmp/out" 2>"$tmp/err" &
  bg_pid=$!
  deadline=$((SECONDS + 60))
  until [[ -s ${pids[0]} && -s ${pids[1]} && -s ${pids[2]} ]] && grep -q "step 1 loss" "$tmp/out"; do
    if ! kill -0 "$bg_pid" 2>/dev/null || ((SECONDS >= deadline)); then break; fi
    sleep 0.2
  done
  t_kill=$(now)
  kill -TERM "$bg_pid"
  timeout 30 tail --pid="$bg_pid" -f /dev/null
  wait "$bg_pid"
  rc=$?
  bg_pid=""
  [[ $rc == 143 ]] || fail "launcher exit code $rc after SIGTERM, want 143"
  wait_gone 30 "${pids[@]}" || fail "ranks still running 30 s after SIGTERM: $(alive "${pids[@]}")"
  wait_no_probe 5 || fail "probe processes left: $(ps -o pid=,args= -p "$(probe_procs | paste -sd,)")"
  finish "(every rank gone $(since "$t_kill") s after SIGTERM)"
  unset PDSH_SSH_ARGS_APPEND
fi

# ---- 4 ----------------------------------------------------------------------------------------------
case_name="an unreachable host fails the job with ssh's 255"
port=$(free_port)
cat >"$tmp/hostfile4" <<'EOF'
127.0.0.2 slots=1
127.0.0.4 slots=1
EOF
run 60 --hostfile "$tmp/hostfile4" --cpu --launcher_args "-F $cfg" --stop_grace 2 --master_port "$port" \
  "$probe" --stage 2 --steps 1000 --step_sleep_ms 300
expect_rc 255
expect_err "node 1 (127.0.0.4)"
expect_err "ssh exits with 255 when it cannot reach or log in to a host"
wait_no_probe 15 || fail "probe processes left: $(ps -o pid=,args= -p "$(probe_procs | paste -sd,)")"
finish "($(cat "$tmp/secs") s, exit $(cat "$tmp/rc"))"

# ---- 5 ----------------------------------------------------------------------------------------------
case_name="a host name with shell syntax is rejected"
printf '%s\n' "127.0.0.3 slots=1" "127.0.0.2;touch\$IFS$tmp/pwned slots=1" >"$tmp/hostfile5"
run 30 --hostfile "$tmp/hostfile5" --cpu --launcher_args "-F $cfg" "$probe" --steps 1
expect_rc 2
expect_err "$tmp/hostfile5:2: '127.0.0.2;touch\$IFS$tmp/pwned' is not a host name"
[[ ! -e $tmp/pwned ]] || fail "$tmp/pwned exists: the host name reached a shell"
finish "($(cat "$tmp/secs") s)"

case_name="program arguments with shell syntax reach the ranks intact over ssh"
# Relative to the working directory, where the ranks start; what a shell would make of it
# (commands, $HOME, quotes) would leave 'injected*' files or a differently named file.
name="a b;touch injected1 && touch injected2|touch injected3 \$(touch injected4)\`touch injected5\`'q\"\$HOME>x*"
# Every rank, the one on the second host too, writes its pid file into this directory.
pid_dir="$tmp/a b;touch $tmp/injected"
mkdir -p "$pid_dir"
port=$(free_port)
run 60 "${multi[@]}" --master_port "$port" "$probe" --stage 2 --steps 1 --out "$name" --pid_dir "$pid_dir"
expect_rc 0
[[ -s $work/$name ]] || fail "no file named exactly: $name (in $work: $(ls "$work" | tr '\n' ' '))"
for r in 0 1 2; do
  [[ -s $pid_dir/rank_$r.pid ]] || fail "rank $r did not get --pid_dir '$pid_dir' as it was given"
done
leftovers=$(cd "$work" && ls -d injected* x 2>/dev/null; ls -d "$tmp"/injected* 2>/dev/null)
[[ -z $leftovers ]] || fail "a shell ran part of an argument: $leftovers"
finish "($(cat "$tmp/secs") s)"

case_name="the test leaves no rank behind"
wait_no_probe 5 || fail "probe processes left: $(ps -o pid=,args= -p "$(probe_procs | paste -sd,)")"

if ((failures > 0)); then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "all cases passed"
