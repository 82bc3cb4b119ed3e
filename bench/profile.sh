#!/usr/bin/env bash
# Where a request spends its instructions: otpgate (a release build, the bench/config.py
# configuration with the benchmark's 80,000 test numbers, SQLite) under
# `valgrind --tool=callgrind`, counters zeroed once it answers and dumped after
# `wrk -t1 -c4` with one of the benchmark's scripts. Prints instructions per request and keeps
# the profile for `callgrind_annotate --inclusive=yes` (its path is printed). Counts hold steady on
# a shared, loaded machine, where requests/s do not; they leave out the kernel's socket work.
#   bench/profile.sh send|flow|healthz      (SECONDS_PER_RUN=8 by default)
#   SERVER_BIN=/path/to/otpgate bench/profile.sh flow   # another build (e.g. main's)
# Needs valgrind and wrk. The server binds 127.0.0.1; the run is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:?send, flow or healthz}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-8}
if [[ -z "${SERVER_BIN:-}" ]]; then
  cargo build --release -q -p otpgate
  SERVER_BIN=$PWD/target/release/otpgate
fi
case $what in
  send) url=http://127.0.0.1:18096; script=(-s bench/send.lua) ;;
  flow) url=http://127.0.0.1:18096; script=(-s bench/flow.lua) ;;
  healthz) url=http://127.0.0.1:18096/healthz; script=() ;;
  *) echo "send, flow or healthz" >&2; exit 2 ;;
esac
work=$(mktemp -d /tmp/otpgate-profile.XXXXXX)
server=""
cleanup() { [ -z "$server" ] || kill "$server" 2>/dev/null || true; }
trap cleanup EXIT
export BENCH_NUMBERS_PER_THREAD=${BENCH_NUMBERS_PER_THREAD:-40000}
python3 bench/config.py "$work/otpgate.toml" $((2 * BENCH_NUMBERS_PER_THREAD))
(cd "$work" && exec valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
  "$SERVER_BIN" serve --config "$work/otpgate.toml" --listen 127.0.0.1:18096 >"$work/server.log" 2>&1) &
server=$!
for _ in $(seq 1 300); do curl -sf http://127.0.0.1:18096/healthz >/dev/null && break; sleep 0.2; done
callgrind_control -z "$server" >/dev/null 2>&1
out=$(timeout $((SECONDS_PER_RUN + 30)) wrk -t1 -c4 -d"${SECONDS_PER_RUN}s" "${script[@]}" "$url")
callgrind_control -d "$server" >/dev/null 2>&1
kill "$server"; wait "$server" 2>/dev/null || true; server=""
requests=$(awk '/requests in/ { print $1 }' <<<"$out")
# The dump `-d` wrote (cg.out.1): the load alone, not the start or the shutdown.
ir=$(awk '/^(summary|totals):/ { print $2; exit }' "$work/cg.out.1")
echo "$what: $requests requests, $(python3 -c "import sys; print(round(int(sys.argv[1]) / int(sys.argv[2])))" "$ir" "$requests") instructions per request"
echo "profile: $work/cg.out.1 (callgrind_annotate --inclusive=yes $work/cg.out.1)"
