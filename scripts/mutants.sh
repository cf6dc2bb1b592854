#!/usr/bin/env bash
# Mutation testing of store adapters against the conformance suite: cargo-mutants
# changes the adapter's code one small way at a time (a `>` becomes `>=`, a function
# returns a default, ...) and runs the adapter's conformance tests (its
# tests/conformance*.rs targets, nothing else); a mutant that survives is a
# behaviour the suite does not check.
#
#   scripts/mutants.sh                 # the memory adapter
#   scripts/mutants.sh memory sqlite   # colloquy-memory, then colloquy-sqlite
#
# Prints caught / missed / timeout / unviable per adapter, and exits non-zero when
# any mutant was missed or timed out. Results: target/mutants/<adapter>/mutants.out/
# (missed.txt lists survivors). Exclusions live in .cargo/mutants.toml, each with
# the reason no black-box contract can catch it.
#
# Environment: MUTANTS_TIMEOUT (seconds per mutant's test run, default 300);
# COLLOQUY_CONTRACT_TIMEOUT_SECS (default here 10, so a mutant that hangs a
# contract fails it, and counts as caught, well within MUTANTS_TIMEOUT).
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
    echo "== cargo mutants -p colloquy-$adapter (timeout ${timeout}s per mutant)"
    tests=()
    for file in "adapters/$adapter"/tests/conformance*.rs; do
        [ -e "$file" ] && tests+=(--test "$(basename "$file" .rs)")
    done
    if [ ${#tests[@]} -eq 0 ]; then
        echo "adapters/$adapter/tests has no conformance*.rs test target" >&2
        exit 2
    fi
    status=0
    cargo mutants -p "colloquy-$adapter" --jobs 1 --timeout "$timeout" --output "$out" \
        -- "${tests[@]}" || status=$?
    results="$out/mutants.out"
    caught=$(count "$results/caught.txt")
    missed=$(count "$results/missed.txt")
    timeouts=$(count "$results/timeout.txt")
    unviable=$(count "$results/unviable.txt")
    summary+=("$adapter: caught $caught, missed $missed, timeout $timeouts, unviable $unviable")
    if [ "$status" -ne 0 ] || [ "$missed" -ne 0 ] || [ "$timeouts" -ne 0 ]; then
        failed=1
        if [ "$missed" -ne 0 ]; then
            echo "missed in colloquy-$adapter:"
            cat "$results/missed.txt"
        fi
        if [ "$timeouts" -ne 0 ]; then
            echo "timed out in colloquy-$adapter:"
            cat "$results/timeout.txt"
        fi
    fi
done

echo "== mutants summary"
printf '%s\n' "${summary[@]}"
exit "$failed"
