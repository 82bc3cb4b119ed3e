#!/usr/bin/env bash
# Memory with a million live verifications on Redis: otpgate (hot store Redis, codes valid for
# an hour so none expires during the fill, demo provider) receives COUNT first sends to distinct
# numbers at RATE/s (open loop, rate.rs), then the script reads Redis's used_memory and key
# count and otpgate's peak resident memory. Uses Redis database REDIS_DB, which it empties
# before and after.
#   bench/redis-memory.sh   (COUNT=1000000 RATE=4000 REDIS_DB=7 by default)
#   SERVER_BIN=/path/to/otpgate bench/redis-memory.sh   # another build (e.g. main's) instead
# Every server binds 127.0.0.1; the run is bounded (COUNT / RATE seconds plus the drain).
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-1000000}
RATE=${RATE:-4000}
REDIS_DB=${REDIS_DB:-7}
REDIS=${REDIS:-127.0.0.1:6379}
if [[ -z "${SERVER_BIN:-}" ]]; then
  cargo build --release -q -p otpgate
  SERVER_BIN=$PWD/target/release/otpgate
fi
cargo build --release -q -p otpgate-bench --example rate
work=$(mktemp -d)
pids=()
rcli() { redis-cli -h "${REDIS%:*}" -p "${REDIS#*:}" -n "$REDIS_DB" "$@"; }
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rcli flushdb >/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
rcli flushdb >/dev/null
before=$(rcli info memory | awk -F: '/^used_memory:/ { print $2 }' | tr -d '\r')
python3 bench/config.py "$work/otpgate.toml" 0 '[codes]' 'ttl_secs = 3600' '[store]' \
  "hot = \"redis://$REDIS/$REDIS_DB\"" 'durable = "sqlite://otpgate.db"'
(cd "$work" && exec "$SERVER_BIN" serve --config "$work/otpgate.toml" --listen 127.0.0.1:18094 \
  >"$work/server.log" 2>&1) &
server=$!
pids+=("$server")
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18094/healthz >/dev/null && break; sleep 0.2; done
# First number 1,000,000: none of them is a test number, every send goes through the provider.
load=$(target/release/examples/rate http://127.0.0.1:18094 send "$RATE" "$(python3 -c "print($COUNT / $RATE)")" 1000000)
after=$(rcli info memory | awk -F: '/^used_memory:/ { print $2 }' | tr -d '\r')
keys=$(rcli dbsize)
# One key of each kind: the layout since issue 19 (a phone's packed value `v2:`, the buckets of
# the id index `ix:` and of the resend values `rs:`), else the one before it (`v:`, `vid:`, `sv:`).
first_key() { for p in "$@"; do k=$(rcli --scan --pattern "$p" | head -1) || true; [[ -n "$k" ]] && { echo "$k"; return; }; done; true; }
sample=$(first_key '*:v2:*' '*:v:*') # head closes the pipe early
id_sample=$(first_key '*:ix:*' '*:vid:*')
resend_sample=$(first_key '*:rs:*' '*:sv:*')
# A bucket's MEMORY USAGE is for all its entries: say how many.
entries() { [[ "$(rcli type "$1")" == hash && "$1" != *":sv:"* ]] && echo " ($(rcli hlen "$1") entries)"; true; }
echo "load: $load"
ok=$(tr ' ' '\n' <<<"$load" | awk -F= '$1 == "ok" { print $2 }')
echo "redis keys: $keys; used_memory: $(( (after - before) / 1048576 )) MiB above the empty database" \
  "($(( (after - before) / ok )) bytes per verification); MEMORY USAGE of one verification value:" \
  "$(rcli memory usage "$sample") bytes; of one id key: $(rcli memory usage "$id_sample")$(entries "$id_sample");" \
  "of one resend value: $(rcli memory usage "$resend_sample")$(entries "$resend_sample")"
echo "otpgate peak RSS: $(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$server/status") MiB"
