#!/usr/bin/env bash
# The load benchmark: a minimal axum hello server (the ceiling), otpgate's send, and the full
# send -> check-with-session flow, each under wrk on loopback, on the embedded default (SQLite +
# demo provider). Prints a Markdown table; BENCHMARKS.md records a run and these commands.
#   bench/run.sh            (DURATION=10s THREADS=2 CONNECTIONS=64 by default)
# Needs wrk (Debian: apt-get install wrk). Every server binds 127.0.0.1; every run is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
PER_THREAD=${BENCH_NUMBERS_PER_THREAD:-40000}
export BENCH_NUMBERS_PER_THREAD=$PER_THREAD
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
cargo build --release -q -p otpgate
cargo build --release -q -p otpgate-bench --example hello
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# Limits and the tripwire off: the benchmark measures the work of a request, not refusals.
# Test numbers (code 123456) for the flow, matching bench/flow.lua's numbering.
python3 - "$work/otpgate.toml" "$THREADS" "$PER_THREAD" <<'PY'
import sys
path, threads, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
limits = ["phone_send", "phone_send_hourly", "phone_send_daily", "ip_send", "ip_send_hourly", "prefix_send",
          "country_send", "global_send_hourly", "global_send_daily", "phone_check_failures", "ip_check"]
with open(path, "w") as f:
    f.write('[log]\nlevel = "warn"\nformat = "json"\n[tripwire]\nenabled = false\n[limits]\n')
    for l in limits:
        f.write(f"{l} = {{ count = 0, period_secs = 60 }}\n")
    f.write("[test_numbers]\n")
    for t in range(threads):
        for k in range(1, per + 1):
            n = t * per + k
            f.write(f'"+1415{200 + (n // 10000) % 800:03d}{n % 10000:04d}" = "123456"\n')
PY

wait_up() { for _ in $(seq 1 100); do curl -sf "$1" >/dev/null && return 0; sleep 0.2; done; echo "no answer from $1" >&2; return 1; }
peak_mib() { awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
measure() { # name url script -> "name|req/s|p50|p99|non-2xx"
  local out
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency ${3:+-s "$3"} "$2")
  local rps p50 p99 bad
  rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
  p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
  p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
  bad=$(awk '/Non-2xx/ { print $5 }' <<<"$out")
  echo "$1|$rps|$p50|$p99|${bad:-0}"
}

target/release/examples/hello 127.0.0.1:18090 >/dev/null 2>&1 & pids+=($!)
wait_up http://127.0.0.1:18090/
hello=$(measure hello http://127.0.0.1:18090/ "")
hello_mem=$(peak_mib "${pids[-1]}")

run_otpgate() { # name script
  local dir="$work/$1"
  mkdir -p "$dir"
  (cd "$dir" && exec "$OLDPWD/target/release/otpgate" serve --config "$work/otpgate.toml" --listen 127.0.0.1:18091 \
    >"$dir/server.log" 2>&1) &
  local pid=$!
  pids+=("$pid")
  wait_up http://127.0.0.1:18091/healthz
  local line
  line=$(measure "$1" http://127.0.0.1:18091 "$2")
  echo "$line|$(peak_mib "$pid")"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}
send=$(run_otpgate send bench/send.lua)
flow=$(run_otpgate flow bench/flow.lua)

hello_rps=$(cut -d'|' -f2 <<<"$hello")
echo
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| run | requests/s | vs hello | p50 | p99 | non-2xx | peak RSS MiB |"
echo "|---|---|---|---|---|---|---|"
for line in "$hello|$hello_mem" "$send" "$flow"; do
  IFS='|' read -r name rps p50 p99 bad mem <<<"$line"
  ratio=$(python3 -c "import sys; print('%.1f%%' % (100 * float(sys.argv[1]) / float(sys.argv[2])))" "$rps" "$hello_rps")
  echo "| $name | $rps | $ratio | $p50 | $p99 | $bad | $mem |"
done
