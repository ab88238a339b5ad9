"""``crucible view``: a loopback web server over the store (stdlib http.server + DuckDB, no JS framework).

Routes (described in OpenAPI 3 at ``/openapi.json``, :mod:`crucible.pipelines.view.openapi`): ``/`` (tables),
``/<table>`` (filtered, sorted, paged list), ``/<table>/<key>`` (one row), ``/questions/<id>/compare``
(its k rollouts side by side), ``/search?q=`` (questions and final answers).
Each request runs on its own DuckDB cursor of one shared in-memory connection whose views point at the
store, so the server holds no rows in memory.

Built to be poked at by a hostile page or client (:mod:`crucible.pipelines.view.guard` has the HTTP side):

- every parameter is checked against its declaration before a query runs (400 with a message);
- the Host header must name a loopback address or the bound one (421 otherwise: DNS rebinding);
- a request must arrive whole within ``request_timeout`` seconds (408), connections are capped (503);
- a DuckDB error is a 500 page naming the unreadable shards and the fix; shards the catalog left out,
  or found unreadable, are named in a warning banner on every page;
- every answer, errors included, has a status line, a body and ``Content-Length``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from http import HTTPStatus

import duckdb

from crucible.pipelines.store import catalog
from crucible.pipelines.view import guard
from crucible.pipelines.view import pages as P
from crucible.pipelines.view import render as R
from crucible.pipelines.view.openapi import document
from crucible.pipelines.view.params import BadRequest, NotFound, parse_target

log = logging.getLogger(__name__)
CLIENT_FAULTS = (duckdb.ConversionException, duckdb.OutOfRangeException)  # a value the store cannot compute with


class Store:
    """The viewer's read side: one DuckDB connection over ``out_dir`` and what could not be read."""

    def __init__(self, out_dir: str, catalog_name: str | None = None):
        self.out_dir = out_dir
        view = catalog.store_view(out_dir)
        self.con = _connect(out_dir, catalog_name, view)
        self.left_out = view.warnings()  # shards whose footer could not be read: not in the views
        self.unreadable: list[str] | None = None  # shards whose data cannot be read, found at the first error
        self._lock, self._scan_lock = threading.Lock(), threading.Lock()
        self._idle = threading.Condition()
        self._open = 0  # cursors in use

    @contextlib.contextmanager
    def cursor(self):
        with self._lock:
            cur = self.con.cursor()
        with self._idle:
            self._open += 1
        try:
            yield cur
        finally:
            cur.close()
            with self._idle:
                self._open -= 1
                self._idle.notify_all()

    def warnings(self) -> list[str]:
        found = self.left_out + (self.unreadable or [])
        return found + [f"their rows are not shown; `crucible store check --out {self.out_dir}` names the damage and "
                        f"`--quarantine` moves it aside"] if found else []

    def explain(self, exc: duckdb.Error) -> str:
        """The error's first line and, once per server, the committed shards whose data cannot be read."""
        with self._scan_lock:  # not the cursor lock: other pages go on while the shards are read
            if self.unreadable is None:
                try:
                    self.unreadable = [f"unreadable shard {p}: {why}" for p, why in catalog.unreadable_shards(
                        self.out_dir) if not any(p in w for w in self.left_out)]
                except Exception as err:  # noqa: BLE001 - the explanation must never hide the original error
                    log.warning("view: could not list unreadable shards: %s", err)
                    self.unreadable = []
        msg = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if self.unreadable:
            msg += (f"; {len(self.unreadable)} shard(s) cannot be read (see the banner). Run `crucible store check "
                    f"--out {self.out_dir} --quarantine` to move them aside (their items are redone on the next run)")
        return msg

    def close(self, wait_s: float = 30.0) -> None:
        """Close the connection once the requests still running have ended (waiting ``wait_s`` at most)."""
        with self._idle:
            self._idle.wait_for(lambda: self._open == 0, timeout=wait_s)
        try:
            self.con.close()
        except duckdb.Error as exc:  # a query outlived the wait: the connection goes with the process
            log.warning("view: connection left open: %s", exc)


def _connect(out_dir: str, catalog_name: str | None, view) -> duckdb.DuckDBPyConnection:
    return catalog.connect(out_dir, catalog_name or catalog.DEFAULT_CATALOG, view)


CAUGHT: tuple[type[BaseException], ...] = (Exception,)  # what becomes an error page rather than a dropped connection


def answer(store: Store, target: str) -> tuple[int, str, str]:
    """(status, content type, body) for a GET of ``target``: every failure is a page with its status."""
    if target.partition("?")[0] == "/openapi.json":
        return 200, "application/json", json.dumps(document(), indent=1)
    try:
        parts, query = parse_target(target)
        with store.cursor() as cur:
            status, (title, body) = 200, P.route(cur, parts, query)
    except NotFound as exc:
        status, (title, body) = 404, ("404 not found", f"<p class='err'>nothing at {R.esc(exc)}</p>")
    except BadRequest as exc:
        status, (title, body) = 400, ("400 bad request", f"<p class='err'>{R.esc(exc)}</p>")
    except CAUGHT as exc:
        status, title, body = _failure(store, target, exc)
    return status, "text/html; charset=utf-8", R.page(title, body, store.warnings())


def _failure(store: Store, target: str, exc: BaseException) -> tuple[int, str, str]:
    """A DuckDB error: 400 for a value it cannot compute with, else 500 naming the unreadable shards; any
    other exception: 500 naming it (the traceback goes to the log at debug level only)."""
    if isinstance(exc, duckdb.Error):
        status = 400 if isinstance(exc, CLIENT_FAULTS) else 500
        msg = (str(exc).strip().splitlines() or [""])[0] if status == 400 else store.explain(exc)
    else:
        status, msg = 500, f"the page failed: {type(exc).__name__}: {exc}"
    log.warning("view: %s on %s: %s", status, target[:200], msg, exc_info=log.isEnabledFor(logging.DEBUG))
    return status, f"{status} {HTTPStatus(status).phrase.lower()}", f"<p class='err'>{R.esc(msg)}</p>"


class ViewServer:
    """The viewer on 127.0.0.1 (port 0 = a free port); ``url`` once started."""

    def __init__(self, out_dir: str, port: int = 0, host: str = "127.0.0.1", catalog_name: str | None = None,
                 request_timeout: float | None = guard.REQUEST_TIMEOUT_S,
                 max_connections: int | None = guard.MAX_CONNECTIONS):
        self.store = Store(out_dir, catalog_name)
        try:
            self.httpd = guard.Server((host, port), lambda target: answer(self.store, target),
                                      lambda: self.store.warnings(), request_timeout, max_connections)
        except BaseException:
            self.store.close()
            raise
        self._thread: threading.Thread | None = None
        self._served = False

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        return self.store.con

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> ViewServer:
        self._served = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="crucible-view", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._served = True
        self.httpd.serve_forever()

    def close(self) -> None:
        if self._served:  # shutdown() waits for serve_forever to end: never call it when it never ran
            self.httpd.shutdown()
        self.httpd.server_close()
        self.store.close()

    def __enter__(self) -> ViewServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
