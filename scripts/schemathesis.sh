#!/usr/bin/env bash
# Contract fuzzing: builds otpgate (debug), serves it on a free loopback port from a temp dir with
# the demo provider, and runs schemathesis against its own /openapi.json with every check it has
# (`--checks all`: 5xx, status codes, content types, bodies and headers outside the documented
# contract, schema-violating requests accepted, schema-valid ones refused, unsupported methods,
# ignored authentication, …). Findings that are not defects are configured, with the reason, in
# scripts/schemathesis.toml. Always stops the server.
#
#   scripts/schemathesis.sh                 # defaults below
#   ST_MAX_EXAMPLES=50 ST_MAX_TIME=120 scripts/schemathesis.sh
#
# Installs schemathesis with pip into a venv under ${TMPDIR:-/tmp} (reused between runs).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

max_examples=${ST_MAX_EXAMPLES:-30}
max_time=${ST_MAX_TIME:-120}
schemathesis_version=${ST_VERSION:-4.32.5}
venv=${ST_VENV:-${TMPDIR:-/tmp}/otpgate-schemathesis-venv}

if [[ ! -x "$venv/bin/schemathesis" ]] || ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$schemathesis_version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$schemathesis_version"
fi

cargo build -q -p otpgate
bin="$root/target/debug/otpgate"

work=$(mktemp -d "${TMPDIR:-/tmp}/otpgate-schemathesis.XXXXXX")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# Demo provider, SQLite in the temp dir, default limits: 429 is part of the contract too.
(cd "$work" && exec env RUST_LOG=warn "$bin" serve --listen "127.0.0.1:$port" >"$work/server.log" 2>&1) &
server_pid=$!

base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  if curl -fsS "$base/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "otpgate did not start:" >&2
    cat "$work/server.log" >&2
    exit 1
  fi
  sleep 0.1
done

# A signed-in user (the development test number), so the authenticated operations are tested past
# their 401 and `ignored_auth` can tell whether authentication is enforced.
curl -fsS -X POST "$base/v1/verifications" -H 'content-type: application/json' -d '{"phone":"+15005550006"}' >/dev/null
token=$(curl -fsS -X POST "$base/v1/verifications/check" -H 'content-type: application/json' \
  -d '{"phone":"+15005550006","code":"123456"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["session"]["access_token"])')

status=0
# From the temp dir: schemathesis keeps a cache of past failures (.schemathesis/) in its cwd.
cd "$work"
SCHEMATHESIS_HOOKS="$root/scripts/schemathesis_hooks.py" \
  "$venv/bin/schemathesis" --config-file "$root/scripts/schemathesis.toml" run "$base/openapi.json" \
  --checks "${ST_CHECKS:-all}" \
  --header "Authorization: Bearer $token" \
  --max-examples "$max_examples" \
  --max-time "$max_time" \
  --request-timeout 15 \
  --seed "${ST_SEED:-8}" \
  --generation-database none \
  --no-color \
  --report junit --report-dir "$work/report" || status=$?

if [[ $status -ne 0 ]]; then
  echo "--- server log (last 50 lines)"
  tail -n 50 "$work/server.log" || true
fi
exit $status
