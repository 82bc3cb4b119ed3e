#!/usr/bin/env bash
# What each middleware layer costs: otpgate's server (the `layers` example, a release build) with
# one layer removed at a time (BENCH_WITHOUT_LAYERS, read once at start), run under
# `valgrind --tool=callgrind`, counting the server's instructions per request for `GET /healthz`
# and for a send to a new number (bench/send.lua, SQLite, the bench/config.py configuration).
# Instruction counts hold steady on a shared, loaded machine, where requests/s do not; they
# leave out the kernel (the socket calls), which no layer changes. Prints a Markdown table.
#   bench/layers.sh        (SECONDS_PER_RUN=8 CONNECTIONS=4 by default)
# Needs valgrind and wrk. Every server binds 127.0.0.1; every run is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${SECONDS_PER_RUN:-8}
CONNECTIONS=${CONNECTIONS:-4}
LAYERS=${LAYERS:-"none request_id metrics access_log transport cors security_headers deadline catch_panic body_limit all"}
cargo build --release -q -p otpgate-bench --example layers
work=$(mktemp -d)
server=""
cleanup() { [ -z "$server" ] || kill "$server" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
python3 bench/config.py "$work/otpgate.toml" 0

# Instructions per request: counters zeroed once the server answers, dumped after the load.
measure() { # without url script -> Ir per request
  local dir="$work/$1-$RANDOM"
  mkdir -p "$dir"
  (cd "$dir" && BENCH_WITHOUT_LAYERS="${1/none/}" exec valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" \
    "$OLDPWD/target/release/examples/layers" "$work/otpgate.toml" 127.0.0.1:18095 >"$dir/server.log" 2>&1) &
  server=$!
  for _ in $(seq 1 300); do curl -sf http://127.0.0.1:18095/healthz >/dev/null && break; sleep 0.2; done
  callgrind_control -z "$server" >/dev/null 2>&1
  local out
  out=$(timeout $((SECONDS_PER_RUN + 30)) wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" ${3:+-s "$3"} "$2")
  callgrind_control -d "$server" >/dev/null 2>&1
  kill "$server"; wait "$server" 2>/dev/null || true; server=""
  local requests ir
  requests=$(awk '/requests in/ { print $1 }' <<<"$out")
  # The dump `-d` wrote (cg.out.1): the load alone, not the start or the shutdown.
  ir=$(awk '/^(summary|totals):/ { print $2; exit }' "$dir/cg.out.1")
  python3 -c "import sys; print(round(int(sys.argv[1]) / int(sys.argv[2])))" "$ir" "$requests"
}

echo "| without | /healthz Ir/request | send Ir/request |"
echo "|---|---|---|"
for layer in $LAYERS; do
  h=$(measure "$layer" http://127.0.0.1:18095/healthz "")
  s=$(measure "$layer" http://127.0.0.1:18095 bench/send.lua)
  echo "| $layer | $h | $s |"
done
