"""Content-addressed tool cache: one JSON file per (tool, normalized args, backend snapshot id).

Stores the raw backend result (before the per-question leak filter), so replaying a rollout gives
identical observations with zero backend calls, and paid searches are never repeated. Writes go
through the store's one atomic writer (:func:`crucible.pipelines.store.fsio.write_bytes_atomic`). :meth:`ToolCache.export` writes the
whole cache as a frozen corpus (JSONL) that :class:`~crucible.pipelines.browse.search.backends.FrozenBackend`
serves.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag

from crucible.pipelines.store import fsio

CACHE_VERSION = "toolcache-1"
CACHE_MODE = 0o644  # the cache is shared between users (mkstemp makes 0600)


def normalize_query(q: str) -> str:
    return " ".join(str(q).split())


def normalize_url(url: str) -> str:
    return urldefrag(str(url).strip())[0]


def normalize_args(tool: str, args: Mapping[str, Any]) -> dict:
    if tool == "search":
        return {"query": normalize_query(args.get("query", "")), "top_k": int(args.get("top_k") or 0)}
    if tool == "visit":
        return {"url": normalize_url(args.get("url", ""))}
    return {k: args[k] for k in sorted(args)}


def cache_key(tool: str, args: Mapping[str, Any], snapshot_id: str) -> str:
    payload = json.dumps([CACHE_VERSION, tool, normalize_args(tool, args), snapshot_id], sort_keys=True,
                         ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


class ToolCache:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.hits = 0
        self.misses = 0
        self.writes = 0

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, tool: str, args: Mapping[str, Any], snapshot_id: str) -> Any | None:
        p = self._path(cache_key(tool, args, snapshot_id))
        try:
            with open(p, encoding="utf-8") as f:
                rec = json.load(f)
        except FileNotFoundError:
            self.misses += 1
            return None
        except json.JSONDecodeError:  # a torn file cannot happen with atomic writes; treat as a miss
            self.misses += 1
            return None
        self.hits += 1
        return rec["result"]

    def put(self, tool: str, args: Mapping[str, Any], snapshot_id: str, result: Any) -> None:
        key = cache_key(tool, args, snapshot_id)
        p = self._path(key)
        rec = {"tool": tool, "args": normalize_args(tool, args), "snapshot_id": snapshot_id, "result": result}
        fsio.write_bytes_atomic(str(p), json.dumps(rec, ensure_ascii=False, sort_keys=True).encode(), CACHE_MODE)
        self.writes += 1

    def entries(self, snapshot_id: str | None = None) -> Iterator[dict]:
        if not self.root.exists():
            return
        for p in sorted(self.root.glob("*/*.json")):
            with open(p, encoding="utf-8") as f:
                rec = json.load(f)
            if snapshot_id is None or rec.get("snapshot_id") == snapshot_id:
                yield rec

    def export(self, out_path: str | os.PathLike, snapshot_id: str | None = None) -> dict:
        """Write a frozen corpus: ``{"kind": "search", "query", "top_k", "results"}`` and
        ``{"kind": "page", "url", "title", "text"}`` lines (sorted, deterministic)."""
        searches, pages = [], {}
        for rec in self.entries(snapshot_id):
            if rec["tool"] == "search":
                searches.append({"kind": "search", **rec["args"], "results": rec["result"]["results"]})
            elif rec["tool"] == "visit" and "text" in rec["result"]:
                r = rec["result"]
                pages[r["url"]] = {"kind": "page", "url": r["url"], "title": r.get("title", ""), "text": r["text"]}
        searches.sort(key=lambda r: (r["query"], r["top_k"]))
        out = Path(out_path)
        text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n"
                       for r in searches + [pages[u] for u in sorted(pages)])
        fsio.write_bytes_atomic(str(out), text.encode(), CACHE_MODE)
        return {"searches": len(searches), "pages": len(pages), "path": str(out)}
