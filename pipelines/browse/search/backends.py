"""Search backends behind one interface.

A backend has a ``name``, a ``snapshot_id`` (what the tool cache keys on), a ``calls`` counter of
real backend requests, and two methods:

* ``search(query, top_k) -> list[dict]`` with ``title``, ``url``, ``snippet`` per result, best first;
* ``fetch(url) -> dict`` with ``url``, ``title``, ``text`` (raises :class:`BackendError`).

Local (tantivy over the rendered corpus) and frozen (an exported tool cache) backends live here;
the HTTP ones (SearXNG, Serper, Brave, Tavily, and the page fetcher) in ``live.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Protocol

from crucible.pipelines.browse.corpus import page_text_with_links
from crucible.pipelines.browse.index import PageIndex
from crucible.pipelines.browse.search.cache import normalize_query, normalize_url
from crucible.pipelines.textio import InputError, JSONSyntaxError, loads, read_text, split_lines


class BackendError(RuntimeError):
    """A backend request failed; the message is shown to the agent as an error observation."""


class BackendConfigError(ValueError):
    """The backend cannot start (missing key, bad URL); raised at construction, before any work."""


class Backend(Protocol):
    name: str
    snapshot_id: str
    calls: int

    def search(self, query: str, top_k: int) -> list[dict]: ...

    def fetch(self, url: str) -> dict: ...


class LocalBackend:
    """tantivy index over a corpus directory (``pages.parquet`` + ``index/`` + ``corpus.json``)."""

    name = "local"

    def __init__(self, corpus_dir: str | os.PathLike):
        d = Path(corpus_dir)
        man = d / "corpus.json"
        if not man.exists():
            raise BackendConfigError(f"{d}: no corpus.json; build the corpus with `crucible search index`")
        self.corpus_dir = d
        self.snapshot_id = json.loads(man.read_text(encoding="utf-8"))["snapshot_id"]
        self.index = PageIndex(d / "index")
        self.calls = 0

    def search(self, query: str, top_k: int) -> list[dict]:
        self.calls += 1
        return [{"title": h.title, "url": h.url, "snippet": h.snippet} for h in self.index.search(query, top_k)]

    def fetch(self, url: str) -> dict:
        self.calls += 1
        page = self.index.get(normalize_url(url))
        if page is None:
            raise BackendError(f"page not found: {url} (the local corpus has no page at this URL)")
        return {"url": page.url, "title": page.title, "text": page_text_with_links(page)}

    def page(self, url: str):
        """The stored page (for the server's HTML rendering)."""
        return self.index.get(normalize_url(url))


class FrozenBackend:
    """Serves an exported tool cache (``crucible search export``) exactly: a search must have been
    made before with the same normalized query and top_k, a page must have been visited before."""

    name = "frozen"

    def __init__(self, path: str | os.PathLike):
        p = Path(path)
        if not p.exists():
            raise BackendConfigError(f"search.frozen.path: {p} does not exist (export one with `crucible search export`)")
        self.searches: dict[tuple[str, int], list[dict]] = {}
        self.pages: dict[str, dict] = {}
        h = hashlib.sha256()
        try:
            text = read_text(p, "frozen corpus file")
        except InputError as exc:
            raise BackendConfigError(str(exc)) from None
        for i, line in enumerate(split_lines(text, keepends=True), 1):  # "\n" only: U+2028 in a page is text
            if not line.strip():
                continue
            h.update(line.encode())
            try:  # textio's limits: nesting, size, NaN, a repeated key
                r = loads(line, f"{p}:{i}")
            except JSONSyntaxError as exc:
                raise BackendConfigError(f"{p}:{i}: not valid JSON ({exc.decode_error.msg})") from None
            except InputError as exc:
                raise BackendConfigError(str(exc)) from None
            kind = r.get("kind") if isinstance(r, dict) else None
            try:
                if kind == "search":
                    self.searches[(normalize_query(r["query"]), int(r["top_k"]))] = r["results"]
                elif kind == "page":
                    self.pages[normalize_url(r["url"])] = {"url": r["url"], "title": r.get("title", ""),
                                                           "text": r["text"]}
                else:
                    raise BackendConfigError(f"{p}:{i}: a row must be an object whose field 'kind' is 'search' "
                                             "or 'page'")
            except (KeyError, TypeError, ValueError) as exc:
                if isinstance(exc, BackendConfigError):
                    raise
                raise BackendConfigError(f"{p}:{i}: a {kind} row needs "
                                         + ("query, top_k, results" if kind == "search" else "url, text")
                                         + f" ({type(exc).__name__}: {exc}); export one with `crucible search "
                                         "export`") from None
        self.snapshot_id = "frozen-" + h.hexdigest()[:16]
        self.calls = 0

    def search(self, query: str, top_k: int) -> list[dict]:
        self.calls += 1
        key = (normalize_query(query), int(top_k))
        if key not in self.searches:
            raise BackendError(f"query not in the frozen corpus: {query!r} (top_k={top_k})")
        return list(self.searches[key])

    def fetch(self, url: str) -> dict:
        self.calls += 1
        page = self.pages.get(normalize_url(url))
        if page is None:
            raise BackendError(f"page not in the frozen corpus: {url}")
        return dict(page)
