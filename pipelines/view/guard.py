"""The HTTP side of ``crucible view``, built for hostile clients: each defense is one named piece.

- :func:`host_problem`: the Host header must be a loopback name or the bound address (and the bound
  port): a page on another site that rebinds its DNS name to 127.0.0.1 gets a 421, not the store.
- :class:`DeadlineReader`: the request line and headers must arrive within ``request_timeout`` seconds
  in all (a client trickling one byte at a time is cut off with a 408, not only an idle one).
- :class:`Server`: at most ``max_connections`` connections are served at once; the next one gets a 503
  at once, so the threads and sockets a client can hold are bounded.
- :meth:`Handler.send_error`: every error, the stdlib's own parse errors included, is answered with a
  status line (also to an HTTP/0.9-style request line), headers and an HTML body.
- :meth:`Handler.finish`: the connection is closed after the answer, reading (bounded) what the client
  still sends, so a left-over request body does not reset the connection before the answer is read.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from crucible.pipelines.view import render as R

log = logging.getLogger("crucible.pipelines.view.server")
REQUEST_TIMEOUT_S = 10.0  # for the request line and headers, all together
MAX_CONNECTIONS = 64
MAX_REQUEST_LINE = 65536
LINGER_S, LINGER_BYTES = 1.0, 1 << 20  # what is read after the answer, at most
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
ALLOW = "GET, HEAD"
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(R.KEYS_JS.encode()).digest()).decode()
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{_SCRIPT_HASH}'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


def host_problem(values: list[str], version: str, bound_host: str, port: int) -> tuple[int, str] | None:
    """(status, why) when the Host header does not name this server; None when it does."""
    if len(values) > 1:
        return 400, "more than one Host header"
    if not values:
        return (400, "an HTTP/1.1 request needs a Host header") if version == "HTTP/1.1" else None
    raw = values[0].strip().lower()
    if raw.startswith("["):
        name, _, rest = raw[1:].partition("]")
        given = rest[1:] if rest.startswith(":") else ("?" if rest else "")
    else:
        name, _, given = raw.partition(":")
    allowed = {*LOOPBACK_NAMES, bound_host.lower()}
    if name in allowed and given in ("", str(port)):
        return None
    return 421, (f"this viewer answers only to Host {' or '.join(sorted(allowed))} (port {port}), not "
                 f"{values[0][:100]!r}: a page of another site that reaches it through its own DNS name is refused")


class DeadlineReader(io.RawIOBase):
    """A socket reader that fails with TimeoutError once ``deadline`` (time.monotonic) has passed."""

    def __init__(self, sock: socket.socket, deadline: float | None):
        self.sock, self.deadline, self.received = sock, deadline, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the request did not arrive in time")
            self.sock.settimeout(left)
        n = self.sock.recv_into(b)
        self.received += n
        return n


def _content_length_problem(headers) -> tuple[int, str] | None:
    if headers.get("Transfer-Encoding") is not None:
        return 413, "the viewer takes no request body (Transfer-Encoding given)"
    values = headers.get_all("Content-Length") or []
    if any(not v.strip().isascii() or not v.strip().isdigit() for v in values) or len(set(values)) > 1:
        return 400, "Content-Length must be one non-negative integer"
    if values and int(values[0]) > 0:
        return 413, "the viewer takes no request body (GET and HEAD only)"
    return None


class Handler(BaseHTTPRequestHandler):
    server_version, sys_version = "crucible-view", ""
    protocol_version = "HTTP/1.0"  # one request per connection: nothing to keep per client
    server: Server

    def setup(self) -> None:
        self.connection = self.request
        limit = self.server.request_timeout
        self.connection.settimeout(limit)
        self.reader = DeadlineReader(self.connection, None if limit is None else time.monotonic() + limit)
        self.rfile = io.BufferedReader(self.reader)
        self.wfile = self.connection.makefile("wb")  # buffered: a write is whole (a raw one may be partial)

    def handle_one_request(self) -> None:
        self.close_connection = True
        self.requestline, self.command, self.request_version = "", "", "HTTP/1.0"  # until parse_request sets them
        try:
            self.raw_requestline = self.rfile.readline(MAX_REQUEST_LINE + 1)
            for _ in range(4):  # RFC 9112 2.2: ignore empty lines before the request line
                if self.raw_requestline not in (b"\r\n", b"\n"):
                    break
                self.raw_requestline = self.rfile.readline(MAX_REQUEST_LINE + 1)
            if len(self.raw_requestline) > MAX_REQUEST_LINE:
                self.requestline, self.request_version, self.command = "", "HTTP/1.0", ""
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG, explain=f"the request line is over "
                                f"{MAX_REQUEST_LINE} bytes")
                return
            if not self.raw_requestline:
                return  # closed without a request: nothing to answer
            if not self.raw_requestline.decode("latin-1").split():  # as parse_request splits: \x1c-\x1f too
                self.send_error(400, explain="an empty request line")
                return
            if not self.parse_request():
                return
            self.connection.settimeout(self.server.request_timeout)  # for writing the answer
            self._dispatch()
        except TimeoutError:
            if self.reader.received:
                self._try_error(HTTPStatus.REQUEST_TIMEOUT, "the request did not arrive in time")
        except ConnectionError:
            pass

    def _dispatch(self) -> None:
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
            self.send_error(400, explain="the request line needs an HTTP version (HTTP/1.0 or HTTP/1.1)")
            return
        for problem in (self.server.check_host(self.headers.get_all("Host") or [], self.request_version,
                                               *self.server.server_address[:2]),
                        _content_length_problem(self.headers)):
            if problem:
                self.send_error(problem[0], explain=problem[1])
                return
        if self.command not in ("GET", "HEAD"):
            self.send_error(HTTPStatus.METHOD_NOT_ALLOWED, explain=f"{self.command[:20]} is not served: "
                                                                   f"the viewer answers {ALLOW} only")
            return
        status, ctype, body = self.server.answer(self.path)
        self.send(status, ctype, body.encode("utf-8"))

    def send(self, status: int, ctype: str, data: bytes, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in {**HEADERS, **(extra or {}), "Content-Type": ctype, "Content-Length": str(len(data)),
                     "Connection": "close"}.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Every error as a full answer: status line, headers, an HTML body naming what went wrong."""
        if self.request_version in ("HTTP/0.9", ""):
            self.request_version = "HTTP/1.0"  # the stdlib sends a 0.9 client (or a garbled line) no status line
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Error"
        self.close_connection = True
        text = explain or message or phrase
        extra = {"Allow": ALLOW} if code == HTTPStatus.METHOD_NOT_ALLOWED else None
        self.log_error("code %d, message %s", code, text)
        self.send(code, "text/html; charset=utf-8", R.error_page(code, phrase.lower(), text,
                                                                   self.server.warnings()).encode(), extra)

    def _try_error(self, code: int, text: str) -> None:
        try:
            self.send_error(code, explain=text)
        except OSError:
            pass

    def finish(self) -> None:
        """Close after the answer, reading what the client still sends (bounded in bytes and time)."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            until, drained = time.monotonic() + LINGER_S, 0
            while drained < LINGER_BYTES and (left := until - time.monotonic()) > 0:
                self.connection.settimeout(left)
                chunk = self.connection.recv(65536)
                if not chunk:
                    break
                drained += len(chunk)
        except OSError:
            pass

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, fmt, *args) -> None:
        log.debug("view: " + fmt, *args)


class Server(ThreadingHTTPServer):
    """ThreadingHTTPServer with a cap on simultaneous connections (a 503 beyond it) and quiet errors."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], answer: Callable[[str], tuple[int, str, str]],
                 warnings: Callable[[], list[str]], request_timeout: float | None, max_connections: int | None):
        self.answer, self.warnings, self.request_timeout = answer, warnings, request_timeout
        self.check_host = host_problem
        self.slots = threading.BoundedSemaphore(max_connections) if max_connections else None
        super().__init__(address, Handler)

    def process_request(self, request, client_address) -> None:
        if self.slots is not None and not self.slots.acquire(blocking=False):
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            if self.slots is not None:
                self.slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            if self.slots is not None:
                self.slots.release()

    def _refuse(self, request: socket.socket) -> None:
        body = R.error_page(503, "service unavailable", "too many connections at once; try again").encode()
        head = (f"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: "
                f"{len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n").encode()
        try:
            request.settimeout(0.5)
            request.sendall(head + body)
        except OSError:
            pass
        self.shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        log.warning("view: connection from %s ended: %s: %s", client_address, type(exc).__name__, exc)
