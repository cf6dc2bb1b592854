#!/usr/bin/env bash
# Mutation testing of store adapters and rate limiters against the conformance
# suite: cargo-mutants changes the code one small way at a time (a `>` becomes `>=`,
# a function returns a default, ...) and runs the conformance tests (the adapter's
# tests/conformance*.rs targets, nothing else); a mutant that survives is a
# behaviour the suite does not check.
#
#   scripts/mutants.sh                       # the memory adapter
#   scripts/mutants.sh memory sqlite         # colloquy-memory, then colloquy-sqlite
#   scripts/mutants.sh limiter redis-limiter # the rate limiters
#
# Targets: an adapter's name (`memory`, `sqlite`, `postgres`, `redis`: the whole
# crate against its conformance*.rs targets), or a rate limiter:
# - `limiter`: core's in-process `LocalRateLimiter` (core/src/local/limiter.rs) and
#   the rules every limiter shares (`gcra`, `check_in_order` in core/src/ratelimit.rs), against the
#   rate-limiter contracts run on it (core/tests/conformance_rate_limiter.rs);
# - `redis-limiter`: `RedisRateLimiter` (adapters/redis/src/limiter.rs) against the
#   same contracts on standalone Redis and Redis Cluster
#   (adapters/redis/tests/conformance_rate_limits.rs; needs both running, see
#   adapters/redis/scripts/cluster.sh).
#
# Prints caught / missed / timeout / unviable per target, and exits non-zero when
# any mutant was missed or timed out. Results: target/mutants/<target>/mutants.out/
# (missed.txt lists survivors). Exclusions live in .cargo/mutants.toml, each with
# the reason no black-box contract can catch it.
#
# Environment: MUTANTS_TIMEOUT (seconds per mutant's test run, default 300);
# COLLOQUY_CONTRACT_TIMEOUT_SECS (default here 10, so a mutant that hangs a
# contract fails it, and counts as caught, well within MUTANTS_TIMEOUT);
# MUTANTS_ARGS (more cargo-mutants flags, e.g. `--in-place` in a disposable
# checkout whose target/ is already built, which saves copying and rebuilding the
# tree).
# Takes a while: run it in the background with a log file on a small machine.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo mutants --version >/dev/null 2>&1; then
    echo "installing cargo-mutants"
    cargo install --locked cargo-mutants
fi

timeout="${MUTANTS_TIMEOUT:-300}"
export COLLOQUY_CONTRACT_TIMEOUT_SECS="${COLLOQUY_CONTRACT_TIMEOUT_SECS:-10}"
# Each mutant builds in cargo-mutants' own scratch copy of the tree; a shared
# target directory would mix its builds with the developer's.
unset CARGO_TARGET_DIR

adapters=("$@")
if [ ${#adapters[@]} -eq 0 ]; then
    adapters=(memory)
fi

count() {
    if [ -f "$1" ]; then grep -c . "$1" || true; else echo 0; fi
}

failed=0
summary=()
for adapter in "${adapters[@]}"; do
    out="target/mutants/$adapter"
    mkdir -p "$out"
    # What to mutate, and the tests that judge it.
    case "$adapter" in
        limiter)
            # Of ratelimit.rs only the port's shared rules (GCRA, check_in_order);
            # the policy's parsing and admission are the service's, which its own
            # tests check.
            mutate=(-p colloquy-core --file core/src/local/limiter.rs --file core/src/ratelimit.rs
                --re 'limiter\.rs|gcra|check_in_order')
            tests=(--test conformance_rate_limiter)
            ;;
        redis-limiter)
            mutate=(-p colloquy-redis --file adapters/redis/src/limiter.rs)
            tests=(--test conformance_rate_limits)
            ;;
        *)
            mutate=(-p "colloquy-$adapter")
            tests=()
            for file in "adapters/$adapter"/tests/conformance*.rs; do
                [ -e "$file" ] && tests+=(--test "$(basename "$file" .rs)")
            done
            if [ ${#tests[@]} -eq 0 ]; then
                echo "adapters/$adapter/tests has no conformance*.rs test target" >&2
                exit 2
            fi
            ;;
    esac
    # The test targets go to every cargo call (the build too), so a mutant builds
    # only the targets that judge it.
    cargo_args=()
    for arg in "${tests[@]}"; do
        cargo_args+=("--cargo-arg=$arg")
    done
    echo "== cargo mutants ${mutate[*]} ${tests[*]} (timeout ${timeout}s per mutant)"
    status=0
    # shellcheck disable=SC2086 # MUTANTS_ARGS is a list of flags
    cargo mutants "${mutate[@]}" "${cargo_args[@]}" --timeout "$timeout" --output "$out" \
        ${MUTANTS_ARGS:-} || status=$?
    results="$out/mutants.out"
    caught=$(count "$results/caught.txt")
    missed=$(count "$results/missed.txt")
    timeouts=$(count "$results/timeout.txt")
    unviable=$(count "$results/unviable.txt")
    summary+=("$adapter: caught $caught, missed $missed, timeout $timeouts, unviable $unviable")
    if [ "$status" -ne 0 ] || [ "$missed" -ne 0 ] || [ "$timeouts" -ne 0 ]; then
        failed=1
        if [ "$missed" -ne 0 ]; then
            echo "missed in $adapter:"
            cat "$results/missed.txt"
        fi
        if [ "$timeouts" -ne 0 ]; then
            echo "timed out in $adapter:"
            cat "$results/timeout.txt"
        fi
    fi
done

echo "== mutants summary"
printf '%s\n' "${summary[@]}"
exit "$failed"
