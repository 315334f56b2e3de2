"""A stand-in OpenAI-compatible judge for tests, with ``vllm serve``'s command line (so it can
also be started by ``judge_serve`` through the vllm-server machinery):

    python fake_judge_server.py serve MODEL --host 127.0.0.1 --port P [vllm flags ...]

Not a model: a fixed rule. It reads the two responses between ``<response_A>`` and
``<response_B>`` tags of the judging prompt; the longer one is better; equal lengths go to the
one shown first (a position bias). Its reply is the winning letter. With ``logprobs`` asked
for (and ``FAKE_JUDGE_NO_LOGPROBS`` unset), the verdict token carries top log-probabilities:
A 0.8 / B 0.1 when A wins, A 0.3 / B 0.6 when B wins, so P(A) = 8/9 or 1/3 (biased to A).

An instruction containing ``GARBLE`` always gets a reply with no verdict; one containing
``ONCE`` gets that only at temperature 0 (the first ask). Knobs, from the environment:

- ``FAKE_JUDGE_LOG``: a file that gets one line per chat request (``status comparison``);
- ``FAKE_JUDGE_FAIL``: ``429:2,500:1``: answer the first chat requests with these statuses;
- ``FAKE_JUDGE_DELAY_S``: seconds to wait before each chat reply;
- ``FAKE_JUDGE_KEY``: the only API key accepted (401 otherwise);
- ``FAKE_JUDGE_NO_LOGPROBS``: never return log-probabilities;
- ``FAKE_JUDGE_DECORATE``: wrap the letter in markdown (``**Response A**``).
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sampling"))
from fake_vllm_server import parse, send_json  # noqa: E402  (vllm serve's command line)

_TAG = {k: re.compile(rf"<response_{k}>\n(.*?)\n</response_{k}>", re.DOTALL) for k in "AB"}


def verdict(prompt: str) -> str | None:
    """The rule: the longer response; equal lengths: the first shown. None without both."""
    a, b = _TAG["A"].search(prompt), _TAG["B"].search(prompt)
    if a is None or b is None:
        return None
    return "B" if len(b.group(1)) > len(a.group(1)) else "A"


def main() -> None:
    args = parse(sys.argv[1:])
    model = args["model"]
    fails: list[int] = []
    for part in filter(None, os.environ.get("FAKE_JUDGE_FAIL", "").split(",")):
        code, _, count = part.partition(":")
        fails += [int(code)] * int(count or 1)
    delay = float(os.environ.get("FAKE_JUDGE_DELAY_S", "0"))
    key = os.environ.get("FAKE_JUDGE_KEY")
    log = os.environ.get("FAKE_JUDGE_LOG")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _send(self, code: int, obj: dict) -> None:
            send_json(self, code, obj)

        def _authorised(self) -> bool:
            if key and self.headers.get("Authorization") != f"Bearer {key}":
                self._send(401, {"error": {"message": "Incorrect API key provided"}})
                return False
            return True

        def do_GET(self):
            if self.path == "/health":
                self._send(200, {})
            elif self.path == "/v1/models":
                if self._authorised():
                    self._send(200, {"object": "list", "data": [{"id": model}]})
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path != "/v1/chat/completions":
                self._send(404, {"error": "not found"})
                return
            if not self._authorised():
                return
            prompt = "\n".join(m["content"] for m in body["messages"])
            with lock:
                status = fails.pop(0) if fails else 200
                if log:
                    with open(log, "a") as f:
                        f.write(f"{status}\n")
            if status != 200:
                self._send(status, {"error": {"message": f"fake failure {status}"}})
                return
            if body.get("model") != model:
                self._send(404, {"error": f"The model `{body.get('model')}` does not exist."})
                return
            time.sleep(delay)
            letter = verdict(prompt)
            garble = "GARBLE" in prompt or ("ONCE" in prompt and body["temperature"] == 0)
            if letter is None or garble:
                text, logprobs = "I cannot decide between them.", None
                if body.get("logprobs"):
                    logprobs = {
                        "content": [
                            {
                                "token": "I",
                                "logprob": -0.1,
                                "top_logprobs": [
                                    {"token": "I", "logprob": -0.1},
                                    {"token": "Both", "logprob": -2.5},
                                ],
                            }
                        ]
                    }
            else:
                text = f"**Response {letter}**" if os.environ.get("FAKE_JUDGE_DECORATE") else letter
                p = {"A": 0.8, "B": 0.1} if letter == "A" else {"A": 0.3, "B": 0.6}
                logprobs = {
                    "content": [
                        {
                            "token": letter,
                            "logprob": math.log(p[letter]),
                            "top_logprobs": [
                                {"token": t, "logprob": math.log(v)} for t, v in p.items()
                            ],
                        }
                    ]
                }
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
            if body.get("logprobs") and not os.environ.get("FAKE_JUDGE_NO_LOGPROBS"):
                choice["logprobs"] = logprobs
            usage = {"prompt_tokens": len(prompt) // 4, "completion_tokens": 1}
            self._send(
                200, {"id": "x", "object": "chat.completion", "choices": [choice], "usage": usage}
            )

    class Server(ThreadingHTTPServer):
        def handle_error(self, request, client_address):  # a client killed mid-reply: quiet
            pass

    server = Server((args["--host"], int(args["--port"])), Handler)
    print(f"fake judge serving {model} on {args['--host']}:{args['--port']}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
