# Shared by the launcher's shell tests (source it): where the binaries are, failure counting,
# free ports and comparing the probe's parameter files.
#   launch, probe, tmp       the launcher, launch_probe, the test's scratch directory
#   case_name                set it before each case; fail TEXT counts a failure of that case
#                            and shows the end of $tmp/log
#   free_port                a TCP port free a moment ago
#   close A B                A and B hold the same numbers (one per line) within 1e-5; prints the
#                            largest difference
#   finish_tests             the summary line and the exit status
runfiles="${TEST_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
launch="$runfiles/zerotrain/tools/launch"
probe="$runfiles/zerotrain/tools/launcher/launch_probe"
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
export ZT_LOG_LEVEL=warning
failures=0
case_name=""

fail() {
  echo "FAIL [$case_name]: $*" >&2
  echo "--- output" >&2
  tail -25 "$tmp/log" >&2
  failures=$((failures + 1))
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("",0)); print(s.getsockname()[1])'; }
close() {
  python3 - "$1" "$2" <<'PY'
import sys
a, b = ([float(x) for x in open(p).read().split()] for p in sys.argv[1:])
if len(a) != len(b) or not a:
    sys.exit(f"{len(a)} values vs {len(b)}")
worst = max(abs(x - y) for x, y in zip(a, b))
print(f"max difference {worst:.3g}")
if worst > 1e-5:
    sys.exit(1)
PY
}
finish_tests() {
  if ((failures > 0)); then
    echo "$failures check(s) failed"
    exit 1
  fi
  echo "$1"
}
