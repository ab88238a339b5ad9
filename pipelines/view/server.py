"""``crucible view``: a loopback web server over the store (stdlib http.server + DuckDB, no JS framework).

Routes: ``/`` (tables), ``/<table>`` (filtered, sorted, paged list), ``/<table>/<key>`` (one row),
``/questions/<id>/compare`` (its k rollouts side by side), ``/search?q=`` (questions and final answers).
Each request runs on its own DuckDB cursor of one shared in-memory connection whose views point at the
store, so the server holds no rows in memory.
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from pipelines.view import pages as P

log = logging.getLogger(__name__)


def route(cur, path: str, query: dict[str, str]) -> str:
    """The HTML for one GET (raises pages.NotFound / pages.BadRequest)."""
    parts = [unquote(p) for p in path.strip("/").split("/") if p]
    if not parts:
        return P.index_page(cur)
    if parts == ["search"]:
        return P.search_page(cur, query.get("q", ""))
    if len(parts) == 1:
        return P.list_page(cur, parts[0], query)
    if len(parts) == 3 and parts[0] == "questions" and parts[2] == "compare":
        return P.compare_page(cur, parts[1])
    if len(parts) == 2:
        return P.row_page(cur, parts[0], parts[1])
    raise P.NotFound(path)


class ViewServer:
    """The viewer on 127.0.0.1 (port 0 = a free port); ``url`` once started."""

    def __init__(self, out_dir: str, port: int = 0, host: str = "127.0.0.1", catalog_name: str | None = None):
        from pipelines.store import catalog

        self.con = catalog.connect(out_dir, catalog_name) if catalog_name else catalog.connect(out_dir)
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                url = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                with server._lock:
                    cur = server.con.cursor()
                try:
                    body, status = route(cur, url.path, query), 200
                except P.NotFound as exc:
                    body, status = P.page("not found", f"<p>nothing at {P.esc(exc)}</p>"), 404
                except P.BadRequest as exc:
                    body, status = P.page("bad request", f"<p>{P.esc(exc)}</p>"), 400
                finally:
                    cur.close()
                data = body.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, fmt, *args):
                log.debug("view: " + fmt, *args)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> ViewServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="crucible-view", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.con.close()

    def __enter__(self) -> ViewServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
