#!/usr/bin/env bash
# The load benchmark: a minimal axum hello server (the ceiling), otpgate's send, and the full
# send -> check-with-session flow, each under wrk on loopback with the demo provider, on the
# embedded default (SQLite) and, with STORES="sqlite redis+postgres", on Redis + PostgreSQL too.
# Then each otpgate run again at half its saturated rate with an open-loop generator
# (crates/otpgate-bench/examples/rate.rs), for the latency a service sees when it is not
# saturated. Prints Markdown tables; BENCHMARKS.md records a run and these commands.
#   bench/run.sh            (DURATION=10s THREADS=2 CONNECTIONS=64 STORES=sqlite by default)
#   SERVER_BIN=/path/to/otpgate bench/run.sh   # another otpgate build (e.g. main's), same load
# Needs wrk (Debian: apt-get install wrk); redis+postgres needs REDIS_URL (default
# redis://127.0.0.1:6379/7, a database the benchmark empties before each run)
# and DATABASE_URL (default postgres://postgres@127.0.0.1:5432/otpgate_bench, created if
# missing). Every server binds 127.0.0.1; every run is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
STORES=${STORES:-sqlite}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/7}
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/otpgate_bench}
if [[ " $STORES " == *" redis+postgres "* ]] && [ "${DATABASE_URL##*/}" = otpgate_bench ]; then
  psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'otpgate_bench'" | grep -q 1 ||
    psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE otpgate_bench"
fi
PER_THREAD=${BENCH_NUMBERS_PER_THREAD:-40000}
export BENCH_NUMBERS_PER_THREAD=$PER_THREAD
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
if [[ -z "${SERVER_BIN:-}" ]]; then
  cargo build --release -q -p otpgate
  SERVER_BIN=$PWD/target/release/otpgate
fi
cargo build --release -q -p otpgate-bench --example hello --example rate
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
  [[ " $STORES " != *" redis+postgres "* ]] || redis-cli -u "$REDIS_URL" flushdb >/dev/null || true
}
trap cleanup EXIT

# Limits and the tripwire off; THREADS * PER_THREAD test numbers for bench/flow.lua.
python3 bench/config.py "$work/otpgate.toml" $((THREADS * PER_THREAD))

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
kill "${pids[-1]}"

# The store settings of one setup, appended to the configuration of a run.
store_config() { # setup run-name
  case "$1" in
    sqlite) ;; # the default: otpgate.db in the run's own directory
    redis+postgres)
      # Keys in the benchmark's Redis database; users and refresh tokens in its Postgres database.
      printf '[store]\nhot = "%s"\ndurable = "%s"\nredis_key_prefix = "bench%s-%s:"\n' \
        "$REDIS_URL" "$DATABASE_URL" "$$" "$2"
      ;;
    *) echo "unknown store setup $1 (sqlite or redis+postgres)" >&2; exit 1 ;;
  esac
}

start_otpgate() { # setup name -> pid in $otpgate_pid
  local dir="$work/$1-$2"
  # Each run starts on an empty database: the keys of the run before would expire during this
  # one, and Redis expiring a few hundred thousand keys at once is a latency spike of its own.
  [ "$1" != redis+postgres ] || redis-cli -u "$REDIS_URL" flushdb >/dev/null
  mkdir -p "$dir"
  { cat "$work/otpgate.toml"; store_config "$1" "$2"; } >"$dir/otpgate.toml"
  (cd "$dir" && exec "$SERVER_BIN" serve --config "$dir/otpgate.toml" --listen 127.0.0.1:18091 \
    >"$dir/server.log" 2>&1) &
  otpgate_pid=$!
  pids+=("$otpgate_pid")
  wait_up http://127.0.0.1:18091/healthz
}

stop_otpgate() { kill "$otpgate_pid"; wait "$otpgate_pid" 2>/dev/null || true; }

run_otpgate() { # setup name script [path]
  start_otpgate "$1" "$2"
  local line
  line=$(measure "$2 ($1)" "http://127.0.0.1:18091${4:-}" "$3")
  echo "$line|$(peak_mib "$otpgate_pid")"
  stop_otpgate
}

# A fresh server, driven at a fixed rate: "name|target/s|p50|p99|max|late|non-2xx+errors".
run_rate() { # setup name script rate
  start_otpgate "$1" "$2-half"
  local out
  out=$(target/release/examples/rate http://127.0.0.1:18091 "$3" "$4" "${DURATION%s}")
  stop_otpgate
  local v
  v() { tr ' ' '\n' <<<"$out" | awk -F= -v k="$1" '$1 == k { print $2 }'; }
  echo "$2 ($1)|$4|$(v p50_ms) ms|$(v p99_ms) ms|$(v max_ms) ms|$(v late)|$(( $(v non2xx) + $(v errors) ))"
}

results=("$hello|$hello_mem")
# GET /healthz through otpgate's whole middleware stack: the fixed cost of a request.
results+=("$(run_otpgate sqlite healthz "" /healthz)")
rates=()
for setup in $STORES; do
  send=$(run_otpgate "$setup" send bench/send.lua)
  flow=$(run_otpgate "$setup" flow bench/flow.lua)
  results+=("$send" "$flow")
  half() { python3 -c "import sys; print(int(float(sys.argv[1]) / 2))" "$(cut -d'|' -f2 <<<"$1")"; }
  rates+=("$(run_rate "$setup" send send "$(half "$send")")")
  rates+=("$(run_rate "$setup" flow flow "$(half "$flow")")")
done

hello_rps=$(cut -d'|' -f2 <<<"$hello")
echo
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| run | requests/s | vs hello | p50 | p99 | non-2xx | peak RSS MiB |"
echo "|---|---|---|---|---|---|---|"
for line in "${results[@]}"; do
  IFS='|' read -r name rps p50 p99 bad mem <<<"$line"
  ratio=$(python3 -c "import sys; print('%.1f%%' % (100 * float(sys.argv[1]) / float(sys.argv[2])))" "$rps" "$hello_rps")
  echo "| $name | $rps | $ratio | $p50 | $p99 | $bad | $mem |"
done
echo
echo "Half the saturated rate, open loop (latency from when each request was due), ${DURATION%s} s each:"
echo
echo "| run | requests/s | p50 | p99 | max | late (started > 1 ms after due) | failed |"
echo "|---|---|---|---|---|---|---|"
for line in "${rates[@]}"; do
  IFS='|' read -r name rate p50 p99 max late bad <<<"$line"
  echo "| $name | $rate | $p50 | $p99 | $max | $late | $bad |"
done
