"""A stand-in for ``vllm serve`` in tests: the same command line, the OpenAI chat protocol.

    python fake_vllm_server.py serve MODEL --host H --port P [--dtype D] [--flags ...]

Not a model: each reply is a pure function of the request (``MODEL|seed|temperature|last user
message``), so a test can tell which seed a sample was drawn with. Behaviour knobs, from the
environment:

- ``FAKE_VLLM_ARGV``: a file to write the command line to (JSON);
- ``FAKE_VLLM_DELAY_S``: seconds to wait before listening (a slow engine start);
- ``FAKE_VLLM_DIE_AFTER``: exit (code 3) after answering this many completion requests;
- ``FAKE_VLLM_CHILD``: start a child process that sleeps (an engine core), whose pid goes to
  this file; SIGTERM then stops it before the server exits, as vLLM's server does.

An unknown ``--flag`` ends it like argparse does (``error: unrecognized arguments``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KNOWN_FLAGS = {
    "--host": 1,
    "--port": 1,
    "--dtype": 1,
    "--tensor-parallel-size": 1,
    "--generation-config": 1,
    "--max-model-len": 1,
    "--gpu-memory-utilization": 1,
    "--disable-uvicorn-access-log": 0,
    "--enforce-eager": 0,
    "--no-enable-prefix-caching": 0,
    "--enable-prefix-caching": 0,
    "--no-enable-chunked-prefill": 0,
    "--trust-remote-code": 0,
}


def parse(argv: list[str]) -> dict:
    if len(argv) < 2 or argv[0] != "serve":
        print("usage: serve MODEL [options]", file=sys.stderr)
        sys.exit(2)
    args = {"model": argv[1]}
    i = 2
    while i < len(argv):
        flag = argv[i]
        if flag not in KNOWN_FLAGS:
            print(f"vllm serve: error: unrecognized arguments: {flag}", file=sys.stderr)
            sys.exit(2)
        if KNOWN_FLAGS[flag]:
            args[flag] = argv[i + 1]
            i += 2
        else:
            args[flag] = True
            i += 1
    return args


def send_json(handler: BaseHTTPRequestHandler, code: int, obj: dict) -> None:
    """Answer a request with ``obj`` as JSON."""
    data = json.dumps(obj).encode()
    handler.send_response(code)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def main() -> None:
    args = parse(sys.argv[1:])
    if os.environ.get("FAKE_VLLM_ARGV"):
        with open(os.environ["FAKE_VLLM_ARGV"], "w") as f:
            json.dump(sys.argv[1:], f)
    if os.environ.get("FAKE_VLLM_CHILD"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(os.environ["FAKE_VLLM_CHILD"], "w") as f:
            f.write(str(child.pid))

        def stop(signum, frame):  # as vLLM's server does: stop the engine core, then exit
            child.terminate()
            child.wait()
            os._exit(0)

        signal.signal(signal.SIGTERM, stop)
    time.sleep(float(os.environ.get("FAKE_VLLM_DELAY_S", "0")))
    die_after = int(os.environ.get("FAKE_VLLM_DIE_AFTER", "0"))
    state = {"answered": 0}
    lock = threading.Lock()
    model = args["model"]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _send(self, code: int, obj: dict) -> None:
            send_json(self, code, obj)

        def do_GET(self):
            if self.path == "/health":
                self._send(200, {})
            elif self.path == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": model, "object": "model"}]})
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path != "/v1/chat/completions":
                self._send(404, {"error": "not found"})
                return
            if body.get("model") != model:
                self._send(404, {"error": f"The model `{body.get('model')}` does not exist."})
                return
            with lock:
                if die_after and state["answered"] >= die_after:
                    os._exit(3)
                state["answered"] += 1
            seed = body["seed"]
            user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
            text = f"{model}|{seed}|{body['temperature']}|{user}"
            if body.get("min_tokens"):
                text += f"|min{body['min_tokens']}"
            length = seed % 2 == 0 and body["temperature"] > 0
            self._send(
                200,
                {
                    "id": "x",
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "length" if length else "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 4 if length else 2},
                },
            )

    server = ThreadingHTTPServer((args["--host"], int(args["--port"])), Handler)
    print(f"fake vllm serving {model} on {args['--host']}:{args['--port']}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
