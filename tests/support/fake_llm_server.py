"""A scripted OpenAI-compatible HTTP server on 127.0.0.1, for tests and benchmarks.

It is a real ``ThreadingHTTPServer``: the real ``openai`` SDK talks to it over loopback, so
retries, timeouts, concurrency and headers are exercised for real. Replies come from a FIFO
script of :class:`Reply` objects, else from an optional ``responder(body) -> Reply``, else a
default echo. Every request is recorded (path, JSON body, headers, start time), and the
server tracks in-flight and peak in-flight chat requests.

    with FakeOpenAIServer(latency_s=0.05) as srv:
        srv.script(Reply(status=429, headers={"Retry-After": "1"}), Reply(content="hi"))
        client = OpenAI(base_url=srv.base_url, api_key="x")

``latency_range=(lo, hi)`` draws each reply's latency uniformly (seeded) and reports it in the reply as
``x_fake_latency_s``. Run as a module to serve from a process of its own (benchmarks kill it mid-run)::

    python -m tests.support.fake_llm_server --latency 0.5 5 --seed 1    # prints "READY <base_url>"
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer. ``status != 200`` sends an OpenAI-style error body."""

    content: str | None = "ok"
    tool_calls: list[dict] | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float | None = None  # overrides the server's latency
    body: dict | None = None  # full JSON body, sent as is
    finish_reason: str = "stop"
    usage: dict | None = None


@dataclass
class RecordedRequest:
    method: str
    path: str
    body: Any
    headers: dict[str, str]  # names lower-cased
    t: float  # time.monotonic() when the request arrived


def _usage_for(body: Any, content: str | None) -> dict:
    msgs = body.get("messages", []) if isinstance(body, dict) else []
    prompt = sum(len(str(m.get("content") or "")) for m in msgs if isinstance(m, dict)) // 4 + 1
    completion = len(content or "") // 4 + 1
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # hundreds of clients connect at once in the pool benchmark
    daemon_threads = True


class FakeOpenAIServer:
    def __init__(self, replies: list[Reply] | None = None, responder: Callable[[dict], Reply] | None = None,
                 latency_s: float = 0.0, model: str = "fake-model", latency_range: tuple[float, float] | None = None,
                 seed: int = 0, port: int = 0):
        self._script: deque[Reply] = deque(replies or [])
        self.responder = responder
        self.latency_s = latency_s
        self.latency_range = latency_range
        self._rng = random.Random(seed)
        self.port = port
        self.model = model
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._counter = 0

    # -- scripting and inspection ------------------------------------------------------------
    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    @property
    def chat_requests(self) -> list[dict]:
        with self._lock:
            return [r.body for r in self.requests if r.path.endswith("/chat/completions")]

    def reset_stats(self) -> None:
        with self._lock:
            self.requests.clear()
            self.peak_in_flight = 0

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> FakeOpenAIServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else Nagle + delayed ACK add ~40 ms per reply

            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def do_GET(self):
                server._record("GET", self.path, None, self.headers)
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found", "type": "not_found"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"_raw": raw.decode("utf-8", "replace")}
                server._record("POST", self.path, body, self.headers)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": "not found", "type": "not_found"}})
                    return
                with server._lock:
                    server.in_flight += 1
                    server.peak_in_flight = max(server.peak_in_flight, server.in_flight)
                try:
                    reply = server._next_reply(body)
                    delay = server._delay(reply)
                    if delay > 0:
                        server._stop.wait(delay)
                    status, payload = server._payload(reply, body)
                    if server.latency_range is not None and status == 200:
                        payload["x_fake_latency_s"] = delay
                finally:
                    with server._lock:
                        server.in_flight -= 1
                self._send(status, payload, reply.headers)

        self._httpd = _Server(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- internals -----------------------------------------------------------------------------
    def _record(self, method: str, path: str, body: Any, headers) -> None:
        with self._lock:
            self.requests.append(RecordedRequest(method, path, body, {k.lower(): v for k, v in headers.items()},
                                                 time.monotonic()))

    def _delay(self, reply: Reply) -> float:
        if reply.delay_s is not None:
            return reply.delay_s
        if self.latency_range is not None:
            with self._lock:
                return self._rng.uniform(*self.latency_range)
        return self.latency_s

    def _next_reply(self, body: dict) -> Reply:
        with self._lock:
            if self._script:
                return self._script.popleft()
        if self.responder is not None:
            return self.responder(body)
        msgs = body.get("messages") or [{}]
        return Reply(content=f"echo: {msgs[-1].get('content')}")

    def _payload(self, reply: Reply, body: dict) -> tuple[int, dict]:
        if reply.body is not None:
            return reply.status, reply.body
        if reply.status != 200:
            return reply.status, {"error": {"message": f"scripted {reply.status}", "type": "scripted",
                                            "code": reply.status}}
        with self._lock:
            self._counter += 1
            n = self._counter
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.tool_calls is not None:
            message["tool_calls"] = reply.tool_calls
        return 200, {
            "id": f"chatcmpl-fake-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason}],
            "usage": reply.usage or _usage_for(body, reply.content),
        }


class FakeManagedServer:
    """Stands in for a started model server (``make_server(...)``: ``start() -> base_url``, ``stop()``,
    ``n_threads``) backed by a :class:`FakeOpenAIServer`; records the config it was made from."""

    def __init__(self, cfg: dict, **server_kw):
        self.cfg, self.n_threads = cfg, 2
        self.server = FakeOpenAIServer(**server_kw)
        self.stopped = False

    def start(self) -> str:
        return self.server.start().base_url

    def stop(self) -> None:
        self.server.stop()
        self.stopped = True


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; print ``READY <base_url>`` once listening."""
    ap = argparse.ArgumentParser(description="fake OpenAI-compatible server (tests, benchmarks)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, nargs=2, metavar=("LO", "HI"), help="uniform latency range, seconds")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    srv = FakeOpenAIServer(latency_range=tuple(a.latency) if a.latency else None, seed=a.seed, port=a.port).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"READY {srv.base_url}", flush=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
