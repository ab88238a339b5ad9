"""The graph and corpus caches are written through the store's one atomic writer (store/fsio.py):
a write that dies half-way leaves the previous files whole, and the files stay readable by every user."""

from __future__ import annotations

import os
import stat

import pyarrow.parquet as pq
import pytest

from crucible.pipelines.browse import corpus
from crucible.pipelines.browse.kg import model
from crucible.pipelines.browse.kg.model import Entity, Graph, Triple, read_graph, write_graph
from crucible.pipelines.store import fsio


def _graph(name: str) -> Graph:
    return Graph([Entity("country/PE", "country", name), Entity("city/lima", "city", "Lima")],
                 [Triple("country/PE", "capital", "city/lima")])


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _dies_half_way(table, where, **kw):
    where.write(b"PAR1 half a file")
    raise OSError("disk full")


def test_graph_and_corpus_caches_are_readable_by_every_user(tmp_path):
    write_graph(_graph("Peru"), tmp_path / "g")
    corpus.write_pages([corpus.Page("https://kb.local/x", "X", "text")], tmp_path / "c")
    for p in ("g/entities.parquet", "g/triples.parquet", "g/manifest.json", "c/pages.parquet", "c/corpus.json"):
        assert _mode(tmp_path / p) == 0o644, p


def test_without_a_mode_the_writer_keeps_mkstemps_private_file(tmp_path):
    fsio.write_atomic(str(tmp_path / "f"), lambda f: f.write(b"x"))
    assert _mode(tmp_path / "f") == 0o600  # what CACHE_MODE changes for the shared caches


def test_a_graph_write_that_dies_half_way_keeps_the_old_graph(tmp_path, monkeypatch):
    write_graph(_graph("Peru"), tmp_path)
    monkeypatch.setattr(model.pq, "write_table", _dies_half_way)
    with pytest.raises(OSError, match="disk full"):
        write_graph(_graph("Republic of Peru"), tmp_path)
    monkeypatch.undo()
    assert read_graph(tmp_path).entities["country/PE"].name == "Peru"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entities.parquet", "manifest.json", "triples.parquet"]


def test_the_same_death_in_a_plain_write_tears_the_file(tmp_path):
    """What the atomic writer stops: writing the file in place leaves half a file where the graph was."""
    write_graph(_graph("Peru"), tmp_path)
    with open(tmp_path / "entities.parquet", "wb") as f, pytest.raises(OSError):
        _dies_half_way(None, f)
    with pytest.raises(Exception):  # noqa: B017 - Arrow's error type for a torn file varies by version
        pq.read_table(tmp_path / "entities.parquet")


def test_tool_cache_entries_and_exports_go_through_the_atomic_writer(tmp_path, monkeypatch):
    from crucible.pipelines.browse.search.cache import ToolCache

    cache = ToolCache(tmp_path / "cache")
    cache.put("visit", {"url": "https://kb.local/x"}, "kb-1", {"url": "https://kb.local/x", "title": "X", "text": "t"})
    (entry,) = (tmp_path / "cache").glob("*/*.json")
    assert _mode(entry) == 0o644 and cache.get("visit", {"url": "https://kb.local/x"}, "kb-1")["text"] == "t"
    cache.export(tmp_path / "frozen.jsonl")
    assert _mode(tmp_path / "frozen.jsonl") == 0o644
    monkeypatch.setattr(fsio.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk gone")))
    with pytest.raises(OSError):
        cache.put("visit", {"url": "https://kb.local/y"}, "kb-1", {"url": "https://kb.local/y", "text": "u"})
    assert [p.name for p in entry.parent.parent.rglob("*") if p.is_file()] == [entry.name]  # no torn entry left
