"""A local search server on loopback that answers in the JSON shapes of the live APIs.

Routes (all served from one backend, normally the local tantivy corpus):

* ``GET  /search?q=&format=json``                       SearXNG: ``results[].url/title/content``
* ``POST /serper/search`` ``{"q", "num"}``, ``X-API-KEY``  Serper: ``organic[].link/title/snippet``
* ``GET  /brave/res/v1/web/search?q=&count=``, ``X-Subscription-Token``  Brave: ``web.results[]``
* ``POST /tavily/search`` ``{"query", "max_results"}``, ``Authorization: Bearer``  Tavily: ``results[]``
* ``POST /retrieve`` ``{"queries", "topk", "return_scores"}``  Search-R1 retrieval server (verl's ``SearchTool``):
  ``result[query][]`` of ``{"document": {"id", "contents": "\"title\"\\ntext"}, "score"}``
* ``GET  /page?url=<page url>``                          the page as HTML (for ``visit``)

Key checks: with ``api_key`` set, requests must carry exactly that key; otherwise any non-empty
key is accepted but a missing one is a 401, so clients are tested for sending their auth header.
``fail_next`` (a list of status codes) makes the next requests fail, to test retries.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pipelines.browse.search.backends import BackendError


class SearchServer:
    def __init__(self, backend, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"search server binds to loopback only, got host {host!r}")
        self.backend, self.api_key = backend, api_key
        self.fail_next: list[int] = []
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer((host, port), self._handler())
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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

    # -- request handling ---------------------------------------------------------------------
    def _key_ok(self, given: str | None) -> bool:
        if not given:
            return False
        return self.api_key is None or given == self.api_key

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):  # quiet
                return

            def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, obj) -> None:
                self._send(status, json.dumps(obj, ensure_ascii=False).encode(), "application/json; charset=utf-8")

            def _body(self) -> dict:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                try:
                    return json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    return {}

            def _fault(self) -> bool:
                with server._lock:
                    code = server.fail_next.pop(0) if server.fail_next else None
                if code is None:
                    return False
                if code == 429:
                    self.send_response(429)
                    self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self._json(code, {"error": f"injected failure {code}"})
                return True

            def do_GET(self):
                self._route("GET")

            def do_POST(self):
                self._route("POST")

            def _route(self, method: str) -> None:
                parsed = urllib.parse.urlparse(self.path)
                q = {k: v[0] for k, v in urllib.parse.parse_qs(parsed.query).items()}
                with server._lock:
                    server.requests.append((method, parsed.path))
                body = self._body() if method == "POST" else {}
                if self._fault():
                    return
                try:
                    if method == "GET" and parsed.path == "/search":
                        return self._searxng(q)
                    if method == "POST" and parsed.path == "/serper/search":
                        return self._serper(body)
                    if method == "GET" and parsed.path == "/brave/res/v1/web/search":
                        return self._brave(q)
                    if method == "POST" and parsed.path == "/tavily/search":
                        return self._tavily(body)
                    if method == "POST" and parsed.path == "/retrieve":
                        return self._retrieve(body)
                    if method == "GET" and parsed.path == "/page":
                        return self._page(q)
                    if method == "GET" and parsed.path in ("/", "/health"):
                        return self._json(200, {"ok": True, "snapshot_id": server.backend.snapshot_id})
                    self._json(404, {"error": f"no route {method} {parsed.path}"})
                except BackendError as exc:
                    self._json(502, {"error": str(exc)})

            def _search(self, query: str, k: int) -> tuple[list[dict], float]:
                t0 = time.perf_counter()
                return server.backend.search(query, k), time.perf_counter() - t0

            def _searxng(self, q: dict) -> None:
                if q.get("format") != "json":
                    return self._json(403, {"error": "only format=json is served"})
                query = q.get("q", "")
                res, _ = self._search(query, int(q.get("count", 10)))
                self._json(200, {
                    "query": query, "number_of_results": len(res),
                    "results": [{"url": r["url"], "title": r["title"], "content": r["snippet"],
                                 "engine": "crucible-local", "engines": ["crucible-local"], "score": 1.0 / (i + 1),
                                 "category": "general"} for i, r in enumerate(res)],
                    "answers": [], "corrections": [], "infoboxes": [], "suggestions": [], "unresponsive_engines": [],
                })

            def _serper(self, body: dict) -> None:
                if not server._key_ok(self.headers.get("X-API-KEY")):
                    return self._json(401, {"message": "Unauthorized.", "statusCode": 401})
                query = str(body.get("q", ""))
                res, dt = self._search(query, int(body.get("num", 10)))
                self._json(200, {
                    "searchParameters": {"q": query, "type": "search", "num": body.get("num", 10), "engine": "google"},
                    "organic": [{"title": r["title"], "link": r["url"], "snippet": r["snippet"], "position": i + 1}
                                for i, r in enumerate(res)],
                    "credits": 1,
                })

            def _brave(self, q: dict) -> None:
                if not server._key_ok(self.headers.get("X-Subscription-Token")):
                    return self._json(401, {"type": "ErrorResponse", "error": {"code": "SUBSCRIPTION_TOKEN_INVALID",
                                                                                "status": 401}})
                query = q.get("q", "")
                res, _ = self._search(query, int(q.get("count", 20)))
                self._json(200, {
                    "type": "search", "query": {"original": query},
                    "web": {"type": "search", "results": [
                        {"title": r["title"], "url": r["url"], "description": r["snippet"], "type": "search_result"}
                        for r in res]},
                })

            def _tavily(self, body: dict) -> None:
                auth = self.headers.get("Authorization") or ""
                key = auth[7:] if auth.startswith("Bearer ") else body.get("api_key")
                if not server._key_ok(key):
                    return self._json(401, {"detail": {"error": "Unauthorized: missing or invalid API key."}})
                query = str(body.get("query", ""))
                res, dt = self._search(query, int(body.get("max_results", 5)))
                self._json(200, {
                    "query": query, "answer": None, "images": [], "follow_up_questions": None,
                    "results": [{"title": r["title"], "url": r["url"], "content": r["snippet"],
                                 "score": round(1.0 / (i + 1), 4), "raw_content": None} for i, r in enumerate(res)],
                    "response_time": round(dt, 4),
                })

            def _retrieve(self, body: dict) -> None:
                queries = body.get("queries")
                if not isinstance(queries, list) or not all(isinstance(x, str) for x in queries):
                    return self._json(422, {"error": "queries must be a list of strings"})
                try:
                    k = int(body.get("topk", 3))
                except (TypeError, ValueError):
                    return self._json(422, {"error": "topk must be an integer"})
                scores = bool(body.get("return_scores", False))
                result = []
                for query in queries:
                    res, _ = self._search(query, k)
                    docs = [{"id": r["url"], "contents": f'"{r["title"]}"\n{r["snippet"]}'} for r in res]
                    result.append([{"document": d, "score": round(1.0 / (i + 1), 4)} for i, d in enumerate(docs)]
                                  if scores else docs)
                self._json(200, {"result": result})

            def _page(self, q: dict) -> None:
                from pipelines.browse.corpus import Page, page_html

                url = q.get("url", "")
                page = server.backend.page(url) if hasattr(server.backend, "page") else None
                if page is None and not hasattr(server.backend, "page"):
                    try:
                        r = server.backend.fetch(url)
                        page = Page(r["url"], r.get("title", ""), r["text"])
                    except BackendError:
                        page = None
                if page is None:
                    return self._send(404, b"<html><body><h1>Not found</h1></body></html>", "text/html; charset=utf-8")
                self._send(200, page_html(page).encode(), "text/html; charset=utf-8")

        return Handler
