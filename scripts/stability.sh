#!/usr/bin/env bash
# Repeats runs to show verdicts are not flaky (issue 10): the readiness thresholds
# (`p99(consumer ready) < 30s`, `max(...) < 30s`) N times in a row, then the whole shipped suite
# M times in a row, on the embedded default. Prints each failure's summary and the pass counts;
# exits 1 if any run failed.
#   scripts/stability.sh [READINESS_RUNS=50] [SUITE_RUNS=20]
set -uo pipefail
cd "$(dirname "$0")/.."
readiness_runs=${1:-50}
suite_runs=${2:-20}
cargo build -q || exit 2
bin=target/debug/focusqa
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fails=0
run() { # label, args...
  local label=$1; shift
  if ! "$bin" run --quiet --report-dir "$out/r" "$@" >"$out/log" 2>&1; then
    fails=$((fails + 1))
    echo "FAILED: $label"; grep -A3 '^Failures:' "$out/log" | sed 's/^/    /'
    return 1
  fi
}
ok=0
for i in $(seq "$readiness_runs"); do run "readiness run $i" --id '^data.consumer-readiness$' && ok=$((ok + 1)); done
echo "readiness thresholds: $ok/$readiness_runs runs passed"
ok=0
for i in $(seq "$suite_runs"); do run "suite run $i" && ok=$((ok + 1)); done
echo "shipped suite: $ok/$suite_runs runs passed"
[ "$fails" -eq 0 ]
