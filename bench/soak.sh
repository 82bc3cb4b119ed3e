#!/usr/bin/env bash
# The soak: otpgate on the embedded default (SQLite + demo provider) under a moderate, steady
# load — the send -> check-with-session flow at RATE requests/s (open loop, rate.rs) for
# SOAK_SECS — with the server's resident memory sampled every 10 s. Memory is flat when the
# last sample is no higher than the sample at 2 minutes plus a small allowance (caches fill in
# the first minutes). Prints the samples and a verdict; BENCHMARKS.md records a run.
#   bench/soak.sh           (SOAK_SECS=600 RATE=1000 by default)
# Every server binds 127.0.0.1; the run is bounded by SOAK_SECS.
set -euo pipefail
cd "$(dirname "$0")/.."
SOAK_SECS=${SOAK_SECS:-600}
RATE=${RATE:-1000}
NUMBERS=80000
cargo build --release -q -p otpgate
cargo build --release -q -p otpgate-bench --example rate
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
python3 bench/config.py "$work/otpgate.toml" "$NUMBERS"
(cd "$work" && exec "$OLDPWD/target/release/otpgate" serve --config "$work/otpgate.toml" --listen 127.0.0.1:18093 \
  >"$work/server.log" 2>&1) &
server=$!
pids+=("$server")
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18093/healthz >/dev/null && break; sleep 0.2; done

rss_kib() { awk '/VmRSS/ { print $2 }' "/proc/$server/status"; }
# The numbers cycle through the test numbers: one comes round again every NUMBERS sends, long
# after its verification was approved, so every check approves and issues a session.
target/release/examples/rate http://127.0.0.1:18093 flow "$RATE" "$SOAK_SECS" 1 "$NUMBERS" >"$work/rate.txt" &
load=$!
pids+=("$load")
echo "seconds,rss_mib,threads"
samples=()
for ((t = 0; t <= SOAK_SECS; t += 10)); do
  kill -0 "$load" 2>/dev/null || [ "$t" -ge "$SOAK_SECS" ] || { echo "the load generator stopped early" >&2; exit 1; }
  rss=$(rss_kib)
  samples+=("$rss")
  echo "$t,$(( rss / 1024 )),$(awk '/Threads/ { print $2 }' "/proc/$server/status")"
  [ "$t" -ge "$SOAK_SECS" ] || sleep 10
done
wait "$load"
echo
echo "load: $(cat "$work/rate.txt")"
at2=${samples[12]:-${samples[-1]}}
last=${samples[-1]}
peak=$(printf '%s\n' "${samples[@]}" | sort -n | tail -1)
echo "rss at 2 min: $(( at2 / 1024 )) MiB, at the end: $(( last / 1024 )) MiB, peak: $(( peak / 1024 )) MiB"
# Flat: the end is within 10% (or 8 MiB, whichever is more) of the 2-minute sample.
allowance=$(( at2 / 10 > 8192 ? at2 / 10 : 8192 ))
if [ "$last" -le $(( at2 + allowance )) ]; then echo "memory: flat"; else echo "memory: GREW"; exit 1; fi
