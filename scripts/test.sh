#!/usr/bin/env bash
# Runs the whole test suite: makes sure the services the store tests need are up
# (Redis standalone on 127.0.0.1:6379, a 3-node Redis Cluster on 127.0.0.1:7001-7003),
# then `cargo test --workspace` (extra arguments go to cargo test), then the chat
# widget's browser test (widget/test: headless Chromium from Debian's `chromium`
# package, driven by playwright-core under node >= 20). A missing browser or node skips
# that test with a message; with COLLOQUY_REQUIRE_SERVICES=1 (CI) it fails instead.
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

services_required() {
    [ "${COLLOQUY_REQUIRE_SERVICES:-}" = 1 ] || [ "${COLLOQUY_REQUIRE_SERVICES:-}" = true ]
}

widget_browser_test() {
    if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
        echo "installing chromium (Debian package) for the widget's browser test"
        { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || true
    fi
    local missing=""
    command -v chromium >/dev/null 2>&1 || missing="chromium"
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1 \
        || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
        missing="${missing:+$missing and }node >= 20 with npm"
    fi
    if [ -n "$missing" ]; then
        if services_required; then
            echo "widget browser test: $missing required (COLLOQUY_REQUIRE_SERVICES=1) but missing" >&2
            return 1
        fi
        echo "SKIPPED: widget browser test ($missing missing); set COLLOQUY_REQUIRE_SERVICES=1 to fail instead"
        return 0
    fi
    # The binary under test embeds widget/*: build it from the current sources.
    cargo build -q -p colloquy-server
    (
        cd widget/test
        PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
        # The test gives itself 280 s; this is the backstop.
        timeout --kill-after=10 300 node --test --test-timeout=120000 widget.test.mjs
    )
}

cargo test --workspace "$@"
echo "== widget browser test"
widget_browser_test
