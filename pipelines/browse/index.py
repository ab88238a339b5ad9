"""Full-text index over pages (tantivy, BM25, ``en_stem`` on title and body).

``build_index(pages, dir)`` writes the index; :class:`PageIndex` searches it and looks pages up by
URL. Queries are stripped of punctuation before parsing (raw agent text such as ``?``, ``:`` or
quotes would otherwise be query syntax); terms are OR-ed, titles count twice.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import tantivy

from crucible.pipelines.browse.corpus import Page
from crucible.pipelines.store.fsio import rename

INDEX_CODE_VERSION = "index-1"
_PUNCT = re.compile(r"[^\w\s]+", re.UNICODE)
SNIPPET_CHARS = 240


def clean_query(q: str) -> str:
    return " ".join(_PUNCT.sub(" ", q).split())


def _schema():
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("url", stored=True, tokenizer_name="raw")
    sb.add_text_field("title", stored=True, tokenizer_name="en_stem")
    sb.add_text_field("body", stored=True, tokenizer_name="en_stem")
    sb.add_bytes_field("meta", stored=True, indexed=False)
    return sb.build()


def build_index(pages: list[Page], index_dir: str | Path, heap_mb: int = 256) -> Path:
    """Index ``pages`` into ``index_dir`` (replaced atomically: built in a sibling temp dir)."""
    d = Path(index_dir)
    d.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=d.parent, prefix=f".{d.name}.", suffix=".tmp"))  # unique: concurrent builders
    tmp.chmod(0o755)
    index = tantivy.Index(_schema(), path=str(tmp))
    writer = index.writer(heap_size=heap_mb * 1024 * 1024, num_threads=1)
    for p in pages:
        meta = json.dumps(p.meta(), ensure_ascii=False).encode()
        writer.add_document(tantivy.Document(url=p.url, title=p.title, body=p.text, meta=meta))
    writer.commit()
    writer.wait_merging_threads()
    if d.exists():
        shutil.rmtree(d, ignore_errors=True)
    try:
        rename(str(tmp), str(d))  # the one atomic writer's move: replace + directory fsync
    except OSError:  # another builder got there first with the same pages
        shutil.rmtree(tmp, ignore_errors=True)
    return d


def make_snippet(text: str, query: str, n: int = SNIPPET_CHARS) -> str:
    """The window of ``text`` with the most query-term hits (deterministic, no markup)."""
    terms = {t.lower() for t in clean_query(query).split() if len(t) > 2}
    flat = " ".join(text.split())
    if len(flat) <= n:
        return flat
    if not terms:
        return flat[:n].rsplit(" ", 1)[0] + " ..."
    sentences = re.split(r"(?<=[.!?])\s+", flat)
    best, best_score = 0, -1
    for i, s in enumerate(sentences):
        low = s.lower()
        score = sum(1 for t in terms if t in low)
        if score > best_score:
            best, best_score = i, score
    out = ""
    for s in sentences[best:]:
        if len(out) + len(s) + 1 > n and out:
            break
        out = (out + " " + s).strip()
    if len(out) > n:
        out = out[:n].rsplit(" ", 1)[0]
    prefix = "... " if best > 0 else ""
    return prefix + out + (" ..." if len(out) < len(flat) else "")


@dataclass(frozen=True)
class Hit:
    url: str
    title: str
    snippet: str
    score: float


class PageIndex:
    """A searcher over a built index directory."""

    def __init__(self, index_dir: str | Path):
        d = Path(index_dir)
        if not (d / "meta.json").exists():
            raise FileNotFoundError(f"{d}: no tantivy index here (build one with `crucible search index`)")
        self._tantivy = tantivy
        self.index = tantivy.Index.open(str(d))
        self.index.reload()
        self.schema = self.index.schema
        self.searcher = self.index.searcher()

    @property
    def num_docs(self) -> int:
        return self.searcher.num_docs

    def search(self, query: str, top_k: int = 10) -> list[Hit]:
        q = clean_query(query)
        if not q:
            return []
        parsed, _errors = self.index.parse_query_lenient(q, ["title", "body"], field_boosts={"title": 2.0})
        res = self.searcher.search(parsed, top_k)
        hits = []
        for score, addr in res.hits:
            doc = self.searcher.doc(addr)
            body = doc.get_first("body") or ""
            hits.append(Hit(doc.get_first("url"), doc.get_first("title"), make_snippet(body, q), float(score)))
        return hits

    def get(self, url: str) -> Page | None:
        q = self._tantivy.Query.term_query(self.schema, "url", url)
        res = self.searcher.search(q, 1)
        if not res.hits:
            return None
        doc = self.searcher.doc(res.hits[0][1])
        meta = json.loads(bytes(doc.get_first("meta") or b"{}"))
        return Page(doc.get_first("url"), doc.get_first("title"), doc.get_first("body") or "",
                    meta.get("type", ""), meta.get("entity_id", ""), tuple(tuple(x) for x in meta.get("links", ())))
