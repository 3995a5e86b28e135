#!/usr/bin/env bash
# //tools:report's page in a real browser: headless Chromium loads it and dumps the DOM its inline
# script built, and the DOM must hold every expected chart as an <svg> with one polyline point per
# finite CSV row, data-rendered="<charts>" on <body>, and an empty #report-errors.  A copy of the
# page with broken data must show the error instead (so the checks can fail).
#
# Skips (exit 0, saying why) when no Chromium is found: $ZT_CHROMIUM, then chromium and
# chromium-browser on PATH.  CI installs Debian's chromium (third_party/apt-packages.txt).
set -uo pipefail

runfiles="${TEST_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}/zerotrain"
bin="$runfiles/tools/report"
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
failures=0

chrome=""
for candidate in "${ZT_CHROMIUM:-}" chromium chromium-browser; do
  [[ -z $candidate ]] && continue
  if command -v "$candidate" >/dev/null 2>&1; then
    chrome=$(command -v "$candidate")
    break
  fi
  if [[ $candidate == "${ZT_CHROMIUM:-}" ]]; then
    echo "FAIL: ZT_CHROMIUM=$ZT_CHROMIUM is not an executable" >&2
    exit 1
  fi
done
if [[ -z $chrome ]]; then
  echo "SKIP: no Chromium found (set ZT_CHROMIUM, or apt-get install chromium); the page was not checked in a browser"
  exit 0
fi
# Ubuntu's chromium-browser is a shim for the snap, which cannot read pages under Bazel's
# private directories: not a browser this test can use.
if [[ -z ${ZT_CHROMIUM:-} && ( $(readlink -f "$chrome") == /snap/* || $(head -c 4096 "$chrome" | tr -d '\0') == *snap* ) ]]; then
  echo "SKIP: $chrome is the snap's shim, which cannot open files under the test's directories (set ZT_CHROMIUM to a non-snap Chromium)"
  exit 0
fi
echo "chromium: $chrome ($("$chrome" --version 2>/dev/null | head -1))"

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# ---- a small run: rows per metric, some non-finite ----------------------------------------------
job="$tmp/run/ds_logs/my_job"
rm -rf "$tmp/run" && mkdir -p "$job"
# csv NAME HEADER VALUE...: DeepSpeed's layout, steps 64, 128, ...
csv() {
  local file=$1 header=$2 step=64 v
  shift 2
  printf 'step,%s\r\n' "$header" >"$job/$file"
  for v in "$@"; do
    printf '%s,%s\r\n' "$step" "$v" >>"$job/$file"
    step=$((step + 64))
  done
}
csv Train_Samples_train_loss.csv train_loss 10.5 8.25 nan 6.0 5.5 5.25
csv Train_Samples_lr.csv lr 1e-05 2e-05 3e-05 4e-05 5e-05 5e-05
csv Train_Samples_samples_per_sec.csv samples_per_sec 101.5 120.25 119.0 121.0 122.5
csv Train_Samples_tokens_per_sec.csv tokens_per_sec 25984.0 30784.0 inf 30976.0 31360.0
csv Train_Samples_gpu_mem_allocated_gib.csv gpu_mem_allocated_gib 1.5 2.25 2.25 2.25 2.25 2.25
csv Train_Samples_weird_metric.csv weird_metric 3.0 -1.0 0.0
csv Eval_Samples_hostile.csv '</script><b id=pwned>x</b>' 1.0 2.0
charts=6  # loss, lr, throughput, memory, two under "Other metrics"

html="$tmp/report.html"
"$bin" "$tmp/run" --out "$html" >"$tmp/report.out" 2>"$tmp/report.err"
rc=$?
if [[ $rc != 0 ]]; then
  echo "FAIL: report exited $rc" >&2
  cat "$tmp/report.out" "$tmp/report.err" >&2
  exit 1
fi
grep -qF "report: wrote $html (1 job, $charts charts)" "$tmp/report.out" || fail "stdout: $(cat "$tmp/report.out")"

# dump FILE OUT: the DOM after the page's scripts ran.
dump() {
  mkdir -p "$tmp/home"
  HOME="$tmp/home" timeout 60 "$chrome" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --no-first-run --no-default-browser-check --disable-extensions --disable-background-networking \
    --user-data-dir="$tmp/chromium-profile" --dump-dom "file://$1" >"$2" 2>"$2.stderr"
  local rc=$?
  if [[ $rc == 124 ]]; then
    fail "chromium timed out after 60 s on $1"
  elif [[ $rc != 0 || ! -s $2 ]]; then
    fail "chromium exited $rc with $(wc -c <"$2") bytes of DOM; its stderr ends:"
    tail -20 "$2.stderr" >&2
  fi
}

dom="$tmp/dom.html"
dump "$html" "$dom"

grep -q "<body data-rendered=\"$charts\"" "$dom" || fail "<body> does not say data-rendered=\"$charts\": $(grep -o '<body[^>]*>' "$dom")"
errors=$(grep -o '<pre id="report-errors">[^<]*</pre>' "$dom")
[[ $errors == '<pre id="report-errors"></pre>' ]] || fail "script errors: $(sed -n '/id="report-errors"/,/<\/pre>/p' "$dom")"

# expect CHART SERIES POINTS: the chart's <svg> and the series' polyline with POINTS points in it.
expect() {
  local chart=$1 series=$2 want=$3 line points
  grep -q "<svg [^>]*data-key=\"$chart\"" "$dom" || fail "no <svg> for chart $chart"
  line=$(grep -o '<polyline [^>]*>' "$dom" | grep -F "data-chart=\"$chart\"" | grep -F "data-series=\"$series\"")
  if [[ -z $line ]]; then
    fail "no polyline for $series in chart $chart"
    return
  fi
  points=$(sed -E 's/.* points="([^"]*)".*/\1/' <<<"$line" | wc -w)
  [[ $points == "$want" ]] || fail "$chart/$series: $points points drawn, want $want (its finite rows)"
  # Every point is a pair of finite coordinates inside the plot.
  sed -E 's/.* points="([^"]*)".*/\1/' <<<"$line" | tr ' ' '\n' | grep -vqE '^-?[0-9]+(\.[0-9]+)?,-?[0-9]+(\.[0-9]+)?$' &&
    fail "$chart/$series: a point is not x,y numbers: $line"
}
expect loss train_loss 5
expect lr lr 6
expect throughput samples_per_sec 5
expect throughput tokens_per_sec 4
expect memory gpu_mem_allocated_gib 6
expect other weird_metric 3
[[ $(grep -o '<polyline ' "$dom" | wc -l) == 7 ]] || fail "$(grep -o '<polyline ' "$dom" | wc -l) polylines, want 7"
# The hostile metric name is text, never markup.
grep -q 'id="pwned"' "$dom" && fail "a metric name became an element: <b id=\"pwned\">"
grep -qF '&lt;/script&gt;&lt;b id=pwned&gt;x&lt;/b&gt;' "$dom" || fail "the hostile metric name is not shown as text"
# Axes, ticks and legends were drawn (text the script made).
grep -qF 'step (samples trained)</text>' "$dom" || fail "no x axis label"
grep -qF 'samples_per_sec (left)</text>' "$dom" || fail "no throughput legend"
[[ $(grep -o '<text [^>]*text-anchor="end"' "$dom" | wc -l) -ge 12 ]] || fail "too few y tick labels"

# ---- the checks can fail: a page whose data does not parse reports it -------------------------------
broken="$tmp/broken.html"
sed 's/id="report-data">{/id="report-data">{oops/' "$html" >"$broken"
dump "$broken" "$tmp/broken_dom.html"
grep -q '<body data-rendered="0"' "$tmp/broken_dom.html" || fail "broken page: data-rendered is not 0"
grep -qF '<pre id="report-errors">report data: SyntaxError' "$tmp/broken_dom.html" ||
  fail "broken page: no error shown: $(grep -o '<pre id="report-errors">[^<]*' "$tmp/broken_dom.html")"

if ((failures > 0)); then
  echo "$failures check(s) failed; the DOM is $dom" >&2
  exit 1
fi
echo "PASS: $charts charts drawn in $("$chrome" --version 2>/dev/null | head -1)"
