#!/usr/bin/env bash
# A throwaway 3-master Redis Cluster on loopback for the Cluster contract suite.
#   scripts/redis-cluster.sh start   # prints the OTPGATE_TEST_REDIS_CLUSTER_URLS value
#   scripts/redis-cluster.sh stop
# Ports: REDIS_CLUSTER_PORTS (default "7001 7002 7003"); data and logs under
# REDIS_CLUSTER_DIR (default ${TMPDIR:-/tmp}/otpgate-redis-cluster). No persistence.
set -euo pipefail

ports=(${REDIS_CLUSTER_PORTS:-7001 7002 7003})
dir=${REDIS_CLUSTER_DIR:-${TMPDIR:-/tmp}/otpgate-redis-cluster}

urls() {
  local out=()
  for p in "${ports[@]}"; do out+=("redis://127.0.0.1:$p"); done
  (IFS=,; echo "${out[*]}")
}

stop() {
  for p in "${ports[@]}"; do
    redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true
  done
  rm -rf "$dir"
}

start() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || {
    echo "redis-server and redis-cli are needed (Debian: apt-get install redis-server)" >&2
    exit 1
  }
  stop
  mkdir -p "$dir"
  for p in "${ports[@]}"; do
    mkdir -p "$dir/$p"
    redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes \
      --cluster-config-file "$dir/$p/nodes.conf" --dir "$dir/$p" \
      --save "" --appendonly no --daemonize yes --logfile "$dir/$p/redis.log" \
      --pidfile "$dir/$p/redis.pid"
  done
  for p in "${ports[@]}"; do
    for _ in $(seq 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  local nodes=()
  for p in "${ports[@]}"; do nodes+=("127.0.0.1:$p"); done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$dir/create.log"
  # Wait until every node agrees that all slots are served.
  for p in "${ports[@]}"; do
    for _ in $(seq 100); do
      redis-cli -p "$p" cluster info | grep -q 'cluster_state:ok' && break
      sleep 0.1
    done
  done
  urls
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  urls) urls ;;
  *) echo "usage: $0 start|stop|urls" >&2; exit 2 ;;
esac
