#!/usr/bin/env bash
# Starts or stops a throwaway 3-master Redis Cluster on 127.0.0.1:7001-7003.
#
#   scripts/cluster.sh start   # prints the COLLOQUY_REDIS_CLUSTER_NODES value
#   scripts/cluster.sh stop
#
# No persistence; node files live in a temp dir removed by `stop`.
# Override the ports with COLLOQUY_CLUSTER_PORTS="7001 7002 7003".
set -euo pipefail

PORTS=(${COLLOQUY_CLUSTER_PORTS:-7001 7002 7003})
STATE_DIR="${TMPDIR:-/tmp}/colloquy-redis-cluster"

nodes() {
  local out=() p
  for p in "${PORTS[@]}"; do out+=("127.0.0.1:$p"); done
  local IFS=,
  echo "${out[*]}"
}

stop() {
  local p
  for p in "${PORTS[@]}"; do
    redis-cli -h 127.0.0.1 -p "$p" shutdown nosave >/dev/null 2>&1 || true
  done
  # Wait (bounded) until every port is closed.
  local deadline=$((SECONDS + 10))
  for p in "${PORTS[@]}"; do
    while redis-cli -h 127.0.0.1 -p "$p" ping >/dev/null 2>&1; do
      if ((SECONDS > deadline)); then
        echo "node on port $p did not stop" >&2
        exit 1
      fi
      sleep 0.1
    done
  done
  rm -rf "$STATE_DIR"
}

start() {
  stop
  mkdir -p "$STATE_DIR"
  local p
  for p in "${PORTS[@]}"; do
    mkdir -p "$STATE_DIR/$p"
    redis-server --port "$p" --bind 127.0.0.1 \
      --cluster-enabled yes --cluster-config-file "nodes-$p.conf" \
      --cluster-node-timeout 2000 \
      --save "" --appendonly no \
      --daemonize yes --dir "$STATE_DIR/$p" \
      --logfile "$STATE_DIR/$p/redis.log"
  done
  local deadline=$((SECONDS + 15))
  for p in "${PORTS[@]}"; do
    until redis-cli -h 127.0.0.1 -p "$p" ping >/dev/null 2>&1; do
      if ((SECONDS > deadline)); then
        echo "node on port $p did not start" >&2
        exit 1
      fi
      sleep 0.1
    done
  done
  local addrs=()
  for p in "${PORTS[@]}"; do addrs+=("127.0.0.1:$p"); done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
  deadline=$((SECONDS + 30))
  for p in "${PORTS[@]}"; do
    until redis-cli -h 127.0.0.1 -p "$p" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; do
      if ((SECONDS > deadline)); then
        echo "cluster did not reach cluster_state:ok (node $p)" >&2
        exit 1
      fi
      sleep 0.1
    done
  done
  echo "$(nodes)"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  nodes) nodes ;;
  *)
    echo "usage: $0 start|stop|nodes" >&2
    exit 2
    ;;
esac
