"""The search server's connection-level defenses: a reader with a per-read timeout, a deadline per request
and a byte budget for the head; a cap on open connections (one more is answered 503 and closed)."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import HTTPServer
from socketserver import ThreadingMixIn

from crucible.pipelines.browse.search.spec import Limits

log = logging.getLogger("crucible.pipelines.browse.search.server")


class HeadTooLarge(Exception):
    pass


class Reader:
    """The connection's input, read with a timeout per read and a deadline for the whole request, and
    a byte budget for the request line and headers. Replaces the handler's ``rfile``."""

    def __init__(self, sock: socket.socket, limits: Limits):
        self.sock, self.limits = sock, limits
        self.buf = bytearray()
        self.deadline: float | None = None
        self.taken = 0
        self.head_left: int | None = None

    def start(self) -> None:
        d = self.limits.request_deadline_s
        self.deadline = None if d is None else time.monotonic() + d
        self.taken, self.head_left = 0, self.limits.max_head_bytes

    @property
    def started(self) -> bool:
        """Whether any byte of the current request has arrived."""
        return self.taken > 0 or len(self.buf) > 0

    def _fill(self) -> bool:
        timeout = self.limits.read_timeout_s
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("request deadline passed")
            timeout = left if timeout is None else min(timeout, left)
        self.sock.settimeout(timeout)
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def _take(self, n: int, head: bool = False) -> bytes:
        out = bytes(self.buf[:n])
        del self.buf[:n]
        self.taken += n
        if head:
            self.spend_head(n)
        return out

    def spend_head(self, n: int) -> None:
        if self.head_left is not None:
            self.head_left -= n
            if self.head_left < 0:
                raise HeadTooLarge

    def readline(self, limit: int = -1, head: bool = True) -> bytes:
        """A line, as ``io.BufferedReader.readline``; ``head``: counted against the head's byte budget."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0 and (limit < 0 or i < limit):
                return self._take(i + 1, head)
            if 0 <= limit <= len(self.buf) or not self._fill():
                return self._take(len(self.buf) if limit < 0 else min(limit, len(self.buf)), head)

    def read(self, n: int) -> bytes:
        while len(self.buf) < n and self._fill():
            pass
        return self._take(min(n, len(self.buf)))

    def close(self) -> None:
        return


class CappedHTTPServer(ThreadingMixIn, HTTPServer):
    """Threads per connection, at most ``max_connections`` at once: one more is answered 503 and closed."""

    daemon_threads = True
    request_queue_size = 128  # listen backlog: with socketserver's 5, a burst of connects waits seconds in SYN retries

    def __init__(self, addr, handler, app):
        self.app = app
        self.address_family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        n = app.limits.max_connections
        self._slots = threading.BoundedSemaphore(n) if n is not None else None
        super().__init__(addr, handler)

    def process_request(self, request, client_address):
        if self._slots is not None and not self._slots.acquire(blocking=False):
            self.app.count(503)
            refuse(request, self.app.limits.max_connections)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            if self._slots is not None:
                self._slots.release()

    def handle_error(self, request, client_address):  # a connection that broke: no traceback on stderr
        log.debug("search server: connection from %s ended with an error", client_address, exc_info=True)


def refuse(sock: socket.socket, cap: int) -> None:
    body = json.dumps({"error": f"the server has {cap} connections open, its cap: retry", "status": 503}).encode()
    head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
            "\r\nRetry-After: 1\r\nConnection: close\r\n\r\n").encode()
    try:
        sock.settimeout(0.2)
        sock.sendall(head + body)
    except OSError:
        pass


def host_name(value: str) -> str:
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    name, sep, port = value.rpartition(":")
    return name if sep and port.isdigit() and ":" not in name else value
