"""A loopback server speaking vLLM's pooling protocol for a reward model (``POST /pooling``).

The score is a deterministic function of the conversation (length of the last assistant turn / 100,
+1 when it contains "correct"), so tests can predict it. ``fail_first`` answers that many requests
with 429 + ``Retry-After: 0`` first; ``per_token`` returns per-token lists like ``--pooling-type ALL``.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def expected_score(messages: list[dict]) -> float:
    last = [m["content"] for m in messages if m["role"] == "assistant"][-1]
    return round(len(last) / 100 + (1.0 if "correct" in last else 0.0), 6)


class FakePoolingServer:
    def __init__(self, fail_first: int = 0, per_token: bool = False, bad: bool = False):
        self.requests: list[dict] = []
        self.fail_left, self.per_token, self.bad = fail_first, per_token, bad
        srv = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                srv.requests.append({"path": self.path, **body})
                if self.path != "/pooling":
                    return self._send(404, {"error": "no route"})
                if srv.fail_left > 0:
                    srv.fail_left -= 1
                    return self._send(429, {"error": "busy"}, {"Retry-After": "0"})
                if srv.bad:
                    return self._send(200, {"data": [{"index": 0, "object": "pooling", "data": "nan?"}]})
                s = expected_score(body["messages"])
                data = [[0.0], [s]] if srv.per_token else [s]
                self._send(200, {"id": "pool-1", "object": "list", "model": body.get("model"),
                                 "data": [{"index": 0, "object": "pooling", "data": data}],
                                 "usage": {"prompt_tokens": 10, "total_tokens": 10}})

            def _send(self, status, obj, headers=None):
                raw = json.dumps(obj).encode()
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
