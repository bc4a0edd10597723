#!/usr/bin/env bash
# Side-by-side figures (issues 13 and 26): focusqa, oha and hurl against the same `focusqa sim`
# /health endpoint in the same run: a fan-out against oha, a spec of SEQUENTIAL steps against a
# Hurl file of as many entries. A peer that is not installed is skipped with a notice:
#   cargo install --locked oha
#   cargo install --locked hurl@8.0.1   (needs libcurl4-openssl-dev libxml2-dev libclang-dev)
#   [RUNS=5] scripts/peers.sh [REQUESTS=20000] [CONCURRENCY=64] [SEQUENTIAL=2000]
# Every figure is the median of RUNS runs (CPU and wall separately); the tools take turns, run
# after run. CARGO_TARGET_DIR is honoured (the binary measured is the release build there).
set -uo pipefail
cd "$(dirname "$0")/.."
n=${1:-20000}; c=${2:-64}; seq_n=${3:-2000}
cargo build -q --release || exit 2
bin=${CARGO_TARGET_DIR:-target}/release/focusqa
work=$(mktemp -d); trap 'kill $sim 2>/dev/null; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
"$bin" sim --port "$port" --kube-port 0 --kubeconfig "$work/kc.yaml" >"$work/sim.log" 2>&1 & sim=$!
for _ in $(seq 50); do grep -q "Press Ctrl-C" "$work/sim.log" && break; sleep 0.1; done
url="http://127.0.0.1:$port/health"
runs=${RUNS:-5}
timed() { # runs a command once, appending "CPU-seconds wall-seconds" to file $1
  local out=$1; shift
  local TIMEFORMAT='%U %S %R'
  { time "$@" >"$work/out" 2>&1; } 2>"$work/t"
  awk '{printf "%.3f %.3f\n", $1+$2, $3}' "$work/t" >>"$out"; }
median() { # median of column $2 of file $1
  cut -d' ' -f"$2" "$1" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

cat >"$work/fan.yaml" <<Y
id: peers.fanout
title: fan-out of plain requests
steps:
  - fanout:
      count: $n
      concurrency: $c
      steps:
        - {name: health, http: {path: /health}, expect: {status: 200}}
      thresholds: [succeeded == count]
Y
printf 'default_target: t\nscope: none.yaml\ntargets:\n  t: {base_url: "http://127.0.0.1:%s"}\n' "$port" >"$work/focusqa.yaml"
# --no-history: each run alike (a history would grow from run to run and be read by the next).
# focusqa and oha take turns, so that a slower moment of the machine falls on both alike.
fq=(timed "$work/fq" "$bin" --config "$work/focusqa.yaml" run --quiet --no-history "$work/fan.yaml" --report-dir "$work/r")
: >"$work/fq"; : >"$work/oha"
for _ in $(seq "$runs"); do
  "${fq[@]}"
  command -v oha >/dev/null && timed "$work/oha" oha --no-tui -n "$n" -c "$c" "$url"
done
fq_cpu=$(median "$work/fq" 1); fq_wall=$(median "$work/fq" 2)
fq_rate=$(awk -v n="$n" -v w="$fq_wall" 'BEGIN{printf "%.0f", n/w}')
echo "focusqa fan-out: $n requests, $c in flight: ${fq_rate} req/s, $(awk -v c="$fq_cpu" -v n="$n" 'BEGIN{printf "%.1f", c*1e6/n}') us CPU/request (process total incl. start-up)"
if command -v oha >/dev/null; then
  oha_cpu=$(median "$work/oha" 1); oha_wall=$(median "$work/oha" 2)
  oha_rate=$(awk -v n="$n" -v w="$oha_wall" 'BEGIN{printf "%.0f", n/w}')
  echo "oha:             ${oha_rate} req/s, $(awk -v c="$oha_cpu" -v n="$n" 'BEGIN{printf "%.1f", c*1e6/n}') us CPU/request"
  echo "ratio focusqa/oha request rate: $(awk -v a="$fq_rate" -v b="$oha_rate" 'BEGIN{printf "%.2f", a/b}') (target >= 0.80)"
else
  echo "oha: not installed, skipped (cargo install --locked oha)"
fi
# Sequential requests, like with like (issue 26): a spec of $seq_n steps, one request each,
# against a Hurl file of $seq_n entries, same endpoint, same assertion (status 200). Both
# read and check their whole file before the first request, so loading counts for both.
{
  printf 'id: peers.sequential\ntitle: %s sequential requests, one step each\nsteps:\n' "$seq_n"
  for _ in $(seq "$seq_n"); do printf '  - {name: health, http: {path: /health}, expect: {status: 200}}\n'; done
} >"$work/seq.yaml"
for _ in $(seq "$seq_n"); do printf 'GET %s\nHTTP 200\n\n' "$url"; done >"$work/seq.hurl"
mem() { # runs a command once, appending its peak RSS in MB to file $1
  local out=$1; shift
  /usr/bin/time -f '%M' -o "$work/m" "$@" >/dev/null 2>&1
  awk '{printf "%.1f\n", $1/1024}' "$work/m" >>"$out"; }
fq_seq=("$bin" --config "$work/focusqa.yaml" run --quiet --no-history "$work/seq.yaml" --report-dir "$work/r2")
fq_val=("$bin" --config "$work/focusqa.yaml" validate "$work/seq.yaml")
# focusqa always writes results.json, junit.xml and HTML: hurl is asked for its JUnit and HTML
# reports too (the same work), and is also shown without them.
hurl_rep=(hurl --test --report-junit "$work/hr/junit.xml" --report-html "$work/hr/html" "$work/seq.hurl")
hurl_bare=(hurl --test "$work/seq.hurl")
have_hurl=$(command -v hurl >/dev/null && echo 1)
# The tools take turns, run after run, as in the fan-out above: a slower moment of the machine
# falls on all of them alike.
for f in fs fs_m fv fv_m h h_m h0 h0_m; do : >"$work/$f"; done
for _ in $(seq "$runs"); do
  timed "$work/fs" "${fq_seq[@]}"; mem "$work/fs_m" "${fq_seq[@]}"
  timed "$work/fv" "${fq_val[@]}"; mem "$work/fv_m" "${fq_val[@]}"
  if [ -n "$have_hurl" ]; then
    timed "$work/h" "${hurl_rep[@]}"; mem "$work/h_m" "${hurl_rep[@]}"
    timed "$work/h0" "${hurl_bare[@]}"; mem "$work/h0_m" "${hurl_bare[@]}"
  fi
done
fs_cpu=$(median "$work/fs" 1); fs_wall=$(median "$work/fs" 2); fs_mem=$(median "$work/fs_m" 1)
echo "focusqa sequential: $seq_n steps, ${fs_cpu} s CPU, ${fs_wall} s wall, ${fs_mem} MB peak"
echo "  of which loading (focusqa validate): $(median "$work/fv" 1) s CPU, $(median "$work/fv_m" 1) MB peak"
if [ -n "$have_hurl" ]; then
  h_cpu=$(median "$work/h" 1); h_wall=$(median "$work/h" 2); h_mem=$(median "$work/h_m" 1)
  h0_cpu=$(median "$work/h0" 1); h0_mem=$(median "$work/h0_m" 1)
  echo "hurl sequential:    $seq_n entries, ${h_cpu} s CPU, ${h_wall} s wall, ${h_mem} MB peak (JUnit and HTML reports, as focusqa writes)"
  echo "                    without reports: ${h0_cpu} s CPU, ${h0_mem} MB peak"
  echo "ratio focusqa/hurl, both writing reports: CPU $(awk -v a="$fs_cpu" -v b="$h_cpu" 'BEGIN{printf "%.2f", a/b}') (target <= 0.70), peak memory $(awk -v a="$fs_mem" -v b="$h_mem" 'BEGIN{printf "%.2f", a/b}') (target <= 1.00)"
  echo "ratio focusqa/hurl without hurl's reports: CPU $(awk -v a="$fs_cpu" -v b="$h0_cpu" 'BEGIN{printf "%.2f", a/b}'), peak memory $(awk -v a="$fs_mem" -v b="$h0_mem" 'BEGIN{printf "%.2f", a/b}')"
else
  echo "hurl: not installed, skipped (cargo install --locked hurl@8.0.1)"
fi
