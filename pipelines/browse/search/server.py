"""A local search server on loopback that answers in the JSON shapes of the live APIs.

Routes (all served from one backend, normally the local tantivy corpus; declared with every parameter's
type and range in ``openapi.json``, which :mod:`crucible.pipelines.browse.search.spec` reads):

* ``GET  /search?q=&format=json``                       SearXNG: ``results[].url/title/content``
* ``POST /serper/search`` ``{"q", "num"}``, ``X-API-KEY``  Serper: ``organic[].link/title/snippet``
* ``GET  /brave/res/v1/web/search?q=&count=``, ``X-Subscription-Token``  Brave: ``web.results[]``
* ``POST /tavily/search`` ``{"query", "max_results"}``, ``Authorization: Bearer``  Tavily: ``results[]``
* ``POST /retrieve`` ``{"queries", "topk", "return_scores"}``  Search-R1 retrieval server (verl's ``SearchTool``):
  ``result[query][]`` of ``{"document": {"id", "contents": "\"title\"\\ntext"}, "score"}``
* ``GET  /page?url=<page url>``                          the page as HTML (for ``visit``)

Hostile clients: every error is a status with a JSON body (400 names the field, the allowed range and the
value; unknown path 404, wrong method 405, slow client 408, body over the cap 413, request line 414, Host
not a loopback name 421, headers 431, too many connections 503, anything unexpected 500 with the traceback
in the server log only). Caps, timeouts and the request log's length are ``x-crucible-limits`` in
``openapi.json`` (:class:`~crucible.pipelines.browse.search.spec.Limits`).

Key checks: with ``api_key`` set, requests must carry exactly that key; otherwise any non-empty
key is accepted but a missing one is a 401, so clients are tested for sending their auth header.
``fail_next`` (a list of status codes) makes the next requests fail, to test retries.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import Counter, deque
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler

from crucible.pipelines.browse.corpus import Page, page_html
from crucible.pipelines.browse.search import shapes
from crucible.pipelines.browse.search.backends import BackendError
from crucible.pipelines.browse.search.cache import normalize_url
from crucible.pipelines.browse.search.spec import Limits, ParamError, methods_of, operations, shown
from crucible.pipelines.browse.search.wire import CappedHTTPServer, HeadTooLarge, Reader, host_name

log = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "localhost", "::1")
_LENGTH = re.compile(r"[0-9]{1,18}")
_HARD_LINE = 65536  # http.server's own cap on a request line or header line


class SearchServer:
    def __init__(self, backend, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None,
                 limits: Limits | None = None):
        if host not in LOOPBACK:
            raise ValueError(f"search server binds to loopback only, got host {host!r}")
        self.backend, self.api_key, self.host = backend, api_key, host
        self.limits = limits or Limits.from_spec()
        self.fail_next: list[int] = []
        self.requests: deque[tuple[str, str]] = deque(maxlen=self.limits.request_log)  # (method, path), newest last
        self.statuses: Counter[int] = Counter()  # answers sent, by status
        self.allowed_hosts = frozenset(LOOPBACK)
        self._lock = threading.Lock()
        self.httpd = CappedHTTPServer((host, port), _Handler, self)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{'[::1]' if self.host == '::1' else '127.0.0.1'}:{self.port}"

    def start(self) -> SearchServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True, name="search-server")
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> SearchServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def count(self, status: int) -> None:
        with self._lock:
            self.statuses[int(status)] += 1

    def key_ok(self, given: str | None) -> bool:
        if not given:
            return False
        return self.api_key is None or given == self.api_key


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "crucible-search/1"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.app: SearchServer = self.server.app
        self.rfile.close()
        self.rfile = Reader(self.connection, self.app.limits)
        self._unread = False

    def log_message(self, fmt, *args):  # quiet: the request log is app.requests
        return

    # -- reading ------------------------------------------------------------------------------
    def handle_one_request(self) -> None:
        self.rfile.start()
        self.command, self.request_version, self.requestline = "", "HTTP/1.1", ""
        try:
            self._one_request()
        except TimeoutError:
            self.close_connection = self._unread = True
            if self.rfile.started:  # a request had begun: say why it is dropped
                self._error_quietly(408, {"error": "the request was not received in time (read timeout "
                                          f"{self.app.limits.read_timeout_s} s, whole request "
                                          f"{self.app.limits.request_deadline_s} s)", "status": 408})
        except HeadTooLarge:
            self._unread = True
            self._error_quietly(431, {"error": f"request line and headers over {self.app.limits.max_head_bytes}"
                                      " bytes", "status": 431})
        except OSError:  # the client went away
            self.close_connection = True

    def _one_request(self) -> None:
        cap = self.app.limits.max_request_line_bytes
        line = self.rfile.readline((cap or _HARD_LINE) + 1, head=False)
        if not line:
            self.close_connection = True
            return
        self.raw_requestline = line
        if len(line) > (cap or _HARD_LINE):
            self._unread = True
            return self.send_error(414, f"request line over {cap or _HARD_LINE} bytes")
        self.rfile.spend_head(len(line))
        if len(line.split()) != 3:
            self.requestline = line.decode("latin-1").rstrip("\r\n")
            return self.send_error(400, "the request line must be METHOD TARGET HTTP/1.1")
        if not self.parse_request():
            return
        if self.request_version not in ("HTTP/1.0", "HTTP/1.1"):
            return self.send_error(505, f"{self.request_version} is not served: use HTTP/1.1")
        status, body, ctype, extra = self._respond()
        self._send(status, body, ctype, extra)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise ParamError("Transfer-Encoding", "is not accepted: send the body with a Content-Length",
                             {"Content-Length": "required with a body"}, self.headers["Transfer-Encoding"], 411)
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            self._unread = False
            return b""
        cap = self.app.limits.max_body_bytes
        allowed = {"type": "integer", "minimum": 0, "maximum": cap}
        if len(lengths) > 1 or not _LENGTH.fullmatch(lengths[0].strip()):
            raise ParamError("Content-Length", "must be given once, as a number of bytes", allowed,
                             shown(", ".join(lengths)))
        n = int(lengths[0])
        if cap is not None and n > cap:
            raise ParamError("Content-Length", f"is over the cap of {cap} bytes", allowed, n, 413)
        raw = self.rfile.read(n)
        if len(raw) < n:
            raise ParamError("body", f"ended after {len(raw)} of the {n} bytes of its Content-Length",
                             {"bytes": n}, len(raw))
        self._unread = False
        return raw

    # -- answering ----------------------------------------------------------------------------
    def _respond(self) -> tuple[int, bytes, str, dict]:
        """(status, body, content type, extra headers) for the parsed request; never raises but for I/O."""
        self._unread = True  # until the body is read
        try:
            path, _, query = self.path.partition("?")
            self.app.requests.append((self.command, path[:200]))
            self._check_host()
            body = self._read_body()
            op = operations().get((path, self.command)) or self._no_route(path)
            if self._fault():
                return self._injected()
            if op.source == "query":
                params = op.from_query(query, self.app.limits.max_query_fields)
            else:
                params = op.from_body(body) if op.source == "body" else op.check({})
            return getattr(self, "_op_" + op.operation_id)(params)
        except ParamError as exc:
            extra = {"Allow": ", ".join(exc.allowed["enum"])} if exc.status == 405 else {}
            return exc.status, _dumps(exc.body()), _JSON, extra
        except BackendError as exc:
            return 502, _dumps({"error": f"the search backend failed: {exc}", "status": 502}), _JSON, {}
        except (TimeoutError, ConnectionError):
            raise
        except BaseException as exc:  # noqa: BLE001 - the last resort: a status and a body, never a dropped answer
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            log.exception("search server: %s %s failed", self.command, shown(self.path))
            return 500, _dumps({"error": f"internal error ({type(exc).__name__}); the server log has the details",
                                "status": 500}), _JSON, {}

    def _check_host(self) -> None:
        hosts = self.headers.get_all("Host") or []
        allowed = {"enum": sorted(self.app.allowed_hosts), "port": "any"}
        if len(hosts) != 1:
            raise ParamError("Host", "must be given once", allowed, shown(", ".join(hosts)))
        if host_name(hosts[0]) not in self.app.allowed_hosts:
            raise ParamError("Host", "is not a loopback name of this server (a page on another site reaching it "
                             "through DNS rebinding?)", allowed, shown(hosts[0]), 421)

    def _no_route(self, path: str):
        methods = methods_of(path)
        if not methods:
            raise ParamError("path", "is not served", {"enum": sorted({p for p, _ in operations()})}, shown(path), 404)
        raise ParamError("method", f"{self.command} is not allowed on {path}", {"enum": methods},
                         shown(self.command), 405)

    def _fault(self) -> bool:
        with self.app._lock:
            self._injected_code = self.app.fail_next.pop(0) if self.app.fail_next else None
        return self._injected_code is not None

    def _injected(self) -> tuple[int, bytes, str, dict]:
        code = self._injected_code
        extra = {"Retry-After": "0"} if code == 429 else {}
        return code, _dumps({"error": f"injected failure {code}", "status": code}), _JSON, extra

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (bad request line, header too long, too many headers) as JSON."""
        self.close_connection = True
        if self.request_version not in ("HTTP/1.0", "HTTP/1.1"):
            self.request_version = "HTTP/1.1"  # else http.server writes no status line
        body = {"error": message or HTTPStatus(code).phrase, "status": code}
        if code == 400:
            body.update(field="request line", allowed={"format": "METHOD /path HTTP/1.1"},
                        value=shown(self.requestline))
        self._send(code, _dumps(body), _JSON, {})

    def _error_quietly(self, code: int, body: dict) -> None:
        try:
            self.send_error(code, body["error"])
        except OSError:
            pass

    def _send(self, status: int, body: bytes, ctype: str, extra: dict) -> None:
        self.app.count(status)
        if status >= 400 and self._unread:
            self.close_connection = True
        self.connection.settimeout(self.app.limits.read_timeout_s)  # a client that does not read: bounded too
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra.items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    # -- operations (one per operationId in openapi.json) --------------------------------------
    def _search(self, query: str, k: int) -> list[dict]:
        return self.app.backend.search(query, k)

    def _reply(self, obj) -> tuple[int, bytes, str, dict]:
        body = _dumps(obj)
        cap = self.app.limits.max_response_bytes
        if cap is not None and len(body) > cap:
            raise ParamError("response", f"would be {len(body)} bytes, over the cap of {cap}: ask for fewer "
                             "results or queries", {"maxBytes": cap}, len(body))
        return 200, body, _JSON, {}

    def _unauthorized(self, body: dict) -> tuple[int, bytes, str, dict]:
        return 401, _dumps(body), _JSON, {}

    def _op_searxng(self, p: dict):
        k, start = shapes.window(p, "count", "pageno", 1)
        return self._reply(shapes.searxng(p, self._search(p["q"], k)[start:]))

    def _op_serper(self, p: dict):
        if not self.app.key_ok(self.headers.get("X-API-KEY")):
            return self._unauthorized({"message": "Unauthorized.", "statusCode": 401})
        k, start = shapes.window(p, "num", "page", 1)
        return self._reply(shapes.serper(p, self._search(p["q"], k)[start:]))

    def _op_brave(self, p: dict):
        if not self.app.key_ok(self.headers.get("X-Subscription-Token")):
            return self._unauthorized({"type": "ErrorResponse", "error": {"code": "SUBSCRIPTION_TOKEN_INVALID",
                                                                          "status": 401}})
        k, start = shapes.window(p, "count", "offset", 0)
        return self._reply(shapes.brave(p, self._search(p["q"], k)[start:]))

    def _op_tavily(self, p: dict):
        auth = self.headers.get("Authorization") or ""
        if not self.app.key_ok(auth[7:] if auth.startswith("Bearer ") else p.get("api_key")):
            return self._unauthorized({"detail": {"error": "Unauthorized: missing or invalid API key."}})
        t0 = time.perf_counter()
        res = self._search(p["query"], p["max_results"])
        return self._reply(shapes.tavily(p, res, time.perf_counter() - t0))

    def _op_retrieve(self, p: dict):
        return self._reply(shapes.retrieve(p, [self._search(q, p["topk"]) for q in p["queries"]]))

    def _op_page(self, p: dict):
        url, backend = p["url"], self.app.backend
        try:
            normalize_url(url)
        except ValueError as exc:
            raise ParamError("url", f"is not a valid URL ({exc})", {"type": "string", "format": "url"},
                             shown(url)) from None
        if hasattr(backend, "page"):
            page = backend.page(url)
        else:
            try:
                r = backend.fetch(url)
                page = Page(r["url"], r.get("title", ""), r["text"])
            except BackendError:
                page = None
        if page is None:
            raise ParamError("url", "is not a page of the corpus", {"type": "string"}, shown(url), 404)
        body = page_html(page).encode()
        cap = self.app.limits.max_response_bytes
        if cap is not None and len(body) > cap:
            return 502, _dumps({"error": f"the page is {len(body)} bytes, over the cap of {cap}", "status": 502}), \
                _JSON, {}
        return 200, body, "text/html; charset=utf-8", {}

    def _op_health(self, p: dict):
        return self._reply({"ok": True, "snapshot_id": self.app.backend.snapshot_id})

    _op_root = _op_health


_JSON = "application/json; charset=utf-8"


def _dumps(obj) -> bytes:
    try:
        return json.dumps(obj, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate echoed from the request: as a JSON escape instead
        return json.dumps(obj).encode()


