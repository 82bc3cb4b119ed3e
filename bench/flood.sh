#!/usr/bin/env bash
# The connection flood: slow and idle connections held against a release otpgate on loopback,
# plain HTTP and TLS, while a normal client keeps asking (crates/otpgate-bench/examples/flood.rs).
# Reports the flood connections the server held and how it ended them, the server's memory, and
# the normal client's latency. BENCHMARKS.md records a run and this command.
#
#   bench/flood.sh                      # DURATION=20 SLOW=500 IDLE=500 TLS_SLOW=200 TLS_IDLE=600
#   SERVER_BIN=/path/to/otpgate bench/flood.sh   # another build (e.g. an older one) instead
#   KEEP_WORK=1 bench/flood.sh                    # keep the configs, certificate and server log
#
# Four runs, each on a fresh server: plain and TLS, with the flood from 50 loopback addresses
# (127.0.0.2-51, under the per-address caps: the deadlines must end it) and from one address
# (the per-address caps shed it). Needs openssl (a self-signed certificate) and curl. Every
# server binds 127.0.0.1; every run is bounded by DURATION seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-20}
SLOW=${SLOW:-500}
IDLE=${IDLE:-500}
TLS_SLOW=${TLS_SLOW:-200}
TLS_IDLE=${TLS_IDLE:-600}
PLAIN_PORT=${PLAIN_PORT:-18180}
TLS_PORT=${TLS_PORT:-18543}
command -v openssl >/dev/null || { echo "openssl is needed" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 1; }

if [[ -z "${SERVER_BIN:-}" ]]; then
  cargo build --release -q -p otpgate
  SERVER_BIN=target/release/otpgate
fi
cargo build --release -q -p otpgate-bench --example flood
flood=target/release/examples/flood
# Two sockets per flood connection in this shell's children (client and server side).
ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d)
server=""
cleanup() {
  [[ -n "$server" ]] && kill "$server" 2>/dev/null || true
  [[ -n "${KEEP_WORK:-}" ]] || rm -rf "$work"
}
trap cleanup EXIT

# A leaf certificate for localhost (rustls refuses a CA certificate as a server's own).
cat >"$work/cert.cnf" <<EOF
[req]
distinguished_name = dn
x509_extensions = leaf
prompt = no
[dn]
CN = localhost
[leaf]
subjectAltName = DNS:localhost
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
EOF
openssl req -x509 -config "$work/cert.cnf" -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

# Only keys every version knows: the new edge keys keep their defaults. Per-IP send limits
# off, so the normal client's sends measure the edge, not a 429.
config() { # mode -> config file
  local file="$work/otpgate-$1.toml"
  cat >"$file" <<EOF
listen = "127.0.0.1:$([[ $1 == tls ]] && echo "$TLS_PORT" || echo "$PLAIN_PORT")"
[store]
hot = "sqlite://$work/otpgate-$1.db"
durable = "sqlite://$work/otpgate-$1.db"
[limits]
ip_send = { count = 0, period_secs = 60 }
ip_send_hourly = { count = 0, period_secs = 3600 }
prefix_send = { count = 0, period_secs = 3600 }
[tripwire]
enabled = false
[log]
level = "warn"
EOF
  if [[ $1 == tls ]]; then
    printf '[tls]\ncert_file = "%s"\nkey_file = "%s"\n' "$work/cert.pem" "$work/key.pem" >>"$file"
  fi
  echo "$file"
}

wait_up() { # url [curl options]
  for _ in $(seq 1 100); do curl -sf "${@:2}" "$1" >/dev/null && return 0; sleep 0.2; done
  echo "no answer from $1" >&2
  return 1
}

echo "otpgate: $SERVER_BIN ($("$SERVER_BIN" --version))"
rows=()
for mode in plain tls; do
  for sources in 50 1; do
    file=$(config "$mode")
    "$SERVER_BIN" serve --config "$file" >"$work/server.log" 2>&1 &
    server=$!
    if [[ $mode == tls ]]; then
      wait_up "https://localhost:$TLS_PORT/healthz" --cacert "$work/cert.pem" --resolve "localhost:$TLS_PORT:127.0.0.1"
      out=$("$flood" "127.0.0.1:$TLS_PORT" "$DURATION" "$server" --tls "$work/cert.pem" \
        --slow "$TLS_SLOW" --idle "$TLS_IDLE" --sources "$sources")
    else
      wait_up "http://127.0.0.1:$PLAIN_PORT/healthz"
      out=$("$flood" "127.0.0.1:$PLAIN_PORT" "$DURATION" "$server" --slow "$SLOW" --idle "$IDLE" --sources "$sources")
    fi
    grep -v '^row:' <<<"$out"
    echo
    rows+=("$(sed -n 's/^row: //p' <<<"$out")")
    kill "$server"
    wait "$server" 2>/dev/null || true
    server=""
    rm -f "$work"/otpgate-*.db*
  done
done

echo "| mode | flood (slow+idle from addresses) | held mean / peak | closed by server (shed at once) | mean lifetime | server RSS start → peak | /healthz p50 / p99 / max | send p50 / p99 / max | normal requests failed |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
