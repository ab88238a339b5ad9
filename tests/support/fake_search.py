"""An in-memory search backend over pages rendered from a graph: TF-IDF over words, for the findability
tests (no tantivy index to build). ``blind`` URLs are never returned (a page no query finds)."""

from __future__ import annotations

import math
import re
from collections import Counter

from crucible.pipelines.browse.corpus import render_pages
from crucible.pipelines.browse.search.backends import BackendError

_W = re.compile(r"\w+", re.UNICODE)


def _words(text: str) -> list[str]:
    return [w.lower() for w in _W.findall(text)]


class FakeBackend:
    """``search`` ranks pages by the summed IDF of the query words they contain (ties by URL)."""

    name = "fake"
    snapshot_id = "fake-1"

    def __init__(self, graph, blind=(), fail: bool = False):
        self.pages = {p.url: p for p in render_pages(graph)}
        self.words = {u: set(_words(f"{p.title} {p.text}")) for u, p in self.pages.items()}
        df = Counter(w for ws in self.words.values() for w in ws)
        self.idf = {w: math.log(1 + len(self.pages) / n) for w, n in df.items()}
        self.blind, self.fail = set(blind), fail
        self.calls, self.queries = 0, []

    def search(self, query: str, top_k: int) -> list[dict]:
        self.calls += 1
        self.queries.append(query)
        if self.fail:
            raise BackendError("fake backend down")
        q = set(_words(query))
        scored = [(-sum(self.idf[w] for w in q & ws), u) for u, ws in self.words.items() if q & ws]
        hits = [u for _s, u in sorted(scored) if u not in self.blind][:top_k]
        return [{"title": self.pages[u].title, "url": u, "snippet": self.pages[u].text[:80]} for u in hits]

    def fetch(self, url: str) -> dict:
        p = self.pages.get(url)
        if p is None:
            raise BackendError(f"page not found: {url}")
        return {"url": url, "title": p.title, "text": p.text}
