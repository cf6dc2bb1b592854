#!/usr/bin/env bash
# Runs the whole test suite: makes sure the services the store tests need are up
# (Redis standalone on 127.0.0.1:6379, a 3-node Redis Cluster on 127.0.0.1:7001-7003),
# then `cargo test --workspace`. Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

ensure_redis_binaries() {
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        echo "installing redis-server (Debian package)"
        apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
    fi
}

ensure_redis() {
    ensure_redis_binaries
    if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
        echo "starting redis-server on 127.0.0.1:6379"
        redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
        for _ in $(seq 1 50); do
            redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
            sleep 0.1
        done
    fi
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null
}

ensure_redis
if [ -z "${COLLOQUY_REDIS_CLUSTER_NODES:-}" ]; then
    nodes="$(adapters/redis/scripts/cluster.sh start | tail -n 1)"
    trap 'adapters/redis/scripts/cluster.sh stop' EXIT
    export COLLOQUY_REDIS_CLUSTER_NODES="$nodes"
fi

cargo test --workspace "$@"
