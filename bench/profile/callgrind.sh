#!/usr/bin/env bash
# Instructions per request of one API operation, counted by callgrind (reproducible,
# unlike timings on a shared machine), for one or more `colloquy` binaries.
#
#   bench/profile/callgrind.sh [--requests N] [--op create-message|chat] BIN...
#
# Each binary runs `--store memory --model echo --log-level warn` under
# `valgrind --tool=callgrind --instr-atstart=no`; a client (python3, one keep-alive
# connection) creates a session, warms up with N/4 requests, then instrumentation is
# switched on for exactly N requests (callgrind_control -i on/off) and dumped. Prints
# instructions per request and the top functions (inclusive) of each binary; the
# callgrind files are left in the printed directory for callgrind_annotate.
set -euo pipefail

requests=2000
op=create-message
bins=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --requests) requests="$2"; shift 2 ;;
        --op) op="$2"; shift 2 ;;
        *) bins+=("$1"); shift ;;
    esac
done
[[ ${#bins[@]} -gt 0 ]] || { echo "usage: $0 [--requests N] [--op create-message|chat] BIN..." >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 2; }

out="$(mktemp -d /tmp/colloquy-callgrind.XXXXXX)"
echo "callgrind files in $out" >&2

client() { # port phase(warm|measure) count
    python3 - "$@" <<'PY'
import http.client, json, sys
port, op, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
def call(method, path, body):
    conn.request(method, path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    if r.status not in (200, 201):
        sys.exit(f"{method} {path}: {r.status} {data[:200]!r}")
    return json.loads(data)
session = call("POST", "/api/chats/sessions/", {})["session_id"]
path = "/api/chats/messages/" if op == "create-message" else "/api/chats/messages/chat/"
body = {"session_id": session, "message": "hello from the benchmark"}
for _ in range(count):
    call("POST", path, body)
PY
}

for bin in "${bins[@]}"; do
    name="$(basename "$(dirname "$(dirname "$bin")")")-$(basename "$bin")"
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    file="$out/callgrind.$name.out"
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$file" \
        "$bin" --bind "127.0.0.1:$port" --store memory --model echo --log-level warn \
        >"$out/$name.log" 2>&1 &
    pid=$!
    for _ in $(seq 600); do
        curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
        kill -0 "$pid" 2>/dev/null || { cat "$out/$name.log" >&2; exit 1; }
        sleep 0.2
    done
    client "$port" "$op" $((requests / 4))
    callgrind_control -i on "$pid" >/dev/null
    client "$port" "$op" "$requests"
    callgrind_control -i off "$pid" >/dev/null
    kill -TERM "$pid"; wait "$pid" || true
    total="$(callgrind_annotate "$file" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); t = $1} END {print t}')"
    echo "== $bin: $op, $requests requests: $total instructions, $((total / requests)) per request"
    callgrind_annotate --inclusive=yes "$file" 2>/dev/null | sed -n '/file:function/,$p' | awk 'NR <= 45'
done
