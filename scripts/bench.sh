#!/usr/bin/env bash
# Reproducible benchmarks (issue 7). Builds the release binaries, then runs the
# orchestrator, which starts a bare hyper "hello JSON" server (the ceiling) and
# `colloquy` on each store (memory, sqlite, redis, postgres), loads each with the
# in-repo hyper load generator, and prints a markdown table: req/s, p50, p99, server
# CPU per request and the share of the ceiling's, all measured in this run; then rate
# limits on vs off, SSE scale (10,000 slow streams held open: server RSS per stream,
# delay between chunks) and store round trips per API operation (Redis, PostgreSQL).
#
#   scripts/bench.sh            full setting (a few minutes after the build)
#   scripts/bench.sh --quick    smallest setting (a few seconds): what CI runs
#
# Other arguments go to colloquy-bench (see `colloquy-bench --help`), e.g.
# `--stores memory,sqlite`, `--output report.md`, `--connections 64`,
# `--baseline /path/to/main/colloquy` (this binary vs another, measured alternately).
# Redis: the run starts its own redis-server on a free loopback port (no persistence)
# and kills it at the end, so it never touches another Redis's keys.
# PostgreSQL: the run creates a private database with psql on COLLOQUY_POSTGRES_URL
# (default: postgres://postgres@%2Fvar%2Frun%2Fpostgresql/postgres, the local
# server's socket) and drops it at the end; with --require-all-stores a PostgreSQL
# that does not answer fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
    echo "installing redis-server (Debian package)" >&2
    apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
fi
if ! command -v psql >/dev/null 2>&1; then
    echo "installing psql (Debian package postgresql-client)" >&2
    apt-get update -qq && apt-get install -y -qq postgresql-client >/dev/null
fi

# SSE scale holds 10,000 connections open: the client and the server each need that
# many file descriptors. Raise the soft limit as far as this shell may.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

echo "== cargo build --release -p colloquy-server -p colloquy-bench" >&2
cargo build --release -p colloquy-server -p colloquy-bench >&2

target_dir="${CARGO_TARGET_DIR:-target}"
bin="$target_dir/release"
exec "$bin/colloquy-bench" \
    --colloquy "$bin/colloquy" \
    --ceiling "$bin/colloquy-ceiling" \
    "$@"
