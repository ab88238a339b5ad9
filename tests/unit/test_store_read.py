"""Readers see only committed rows (the manifests' file lists), never a glob: a killed commit, a run in
progress or a half-done compaction is invisible without any cleanup; the folder opens anywhere."""

import json
import os
import shutil

import pyarrow.parquet as pq
import pytest

from crucible.pipelines.cli import main
from crucible.pipelines.store import catalog, fsio
from crucible.pipelines.store import commit as C
from crucible.pipelines.store.compact import compact
from crucible.pipelines.store.records import TABLES
from tests.support.sample_pipeline import make_item


def store(tmp_path, n_commits=4, per=2, pipeline="p"):
    out = str(tmp_path / "out")
    C.ensure_layout(out)
    for c in range(n_commits):
        C.commit_items(out, pipeline, "run1", [make_item(c * per + j) for j in range(per)])
    return out


def counts(out):
    return {t: catalog.query(out, f"select count(*) from {t}")[1][0][0] for t in TABLES}


def snapshot(out):
    snap = {}
    for t in TABLES:
        cols, rows = catalog.query(out, f"select * from {t}")
        snap[t] = sorted(json.dumps(dict(zip(cols, r)), default=str, sort_keys=True) for r in rows)
    return snap


def test_shards_without_a_manifest_are_invisible_before_any_recover(tmp_path, monkeypatch):
    out = store(tmp_path, n_commits=1)
    real = fsio.write_bytes_atomic

    def die_on_manifest(path, data):
        if "_commits" in str(path):
            raise KeyboardInterrupt("killed before the commit point")
        real(path, data)

    monkeypatch.setattr(fsio, "write_bytes_atomic", die_on_manifest)
    with pytest.raises(KeyboardInterrupt):
        C.commit_items(out, "p", "r", [make_item(50), make_item(51)])
    monkeypatch.undo()
    assert len([f for f in os.listdir(f"{out}/questions") if f.startswith("part-")]) == 2
    assert counts(out)["questions"] == 2  # the orphan's 2 rows are not shown


def test_a_glob_would_have_shown_the_uncommitted_rows(tmp_path, monkeypatch):
    """The check can fail: the same state read with a glob over the folder shows the orphan's rows."""
    import duckdb

    out = store(tmp_path, n_commits=1)
    monkeypatch.setattr(fsio, "write_bytes_atomic",
                        lambda p, d, real=fsio.write_bytes_atomic: (_ for _ in ()).throw(KeyboardInterrupt())
                        if "_commits" in str(p) else real(p, d))
    with pytest.raises(KeyboardInterrupt):
        C.commit_items(out, "p", "r", [make_item(50)])
    monkeypatch.undo()
    n_glob = duckdb.connect().execute(f"select count(*) from read_parquet('{out}/questions/*.parquet')").fetchone()[0]
    assert n_glob == 3 and counts(out)["questions"] == 2


def test_compaction_killed_after_its_manifest_shows_every_row_once(tmp_path, monkeypatch):
    out = store(tmp_path)
    before = snapshot(out)
    monkeypatch.setattr("crucible.pipelines.store.compact.drop_superseded", lambda *a, **k: None)
    compact(out, "p")
    monkeypatch.undo()
    assert len(C.read_manifests(out, "p")) == 5  # the 4 old ones and the merged one are all on disk
    assert snapshot(out) == before  # merged rows replace the old ones at once: no duplicate


def test_compaction_killed_before_its_manifest_shows_the_old_rows(tmp_path, monkeypatch):
    out = store(tmp_path)
    before = snapshot(out)
    real = fsio.write_bytes_atomic

    def die(path, data):
        if "/_commits/" in path:
            raise KeyboardInterrupt("killed")
        real(path, data)

    monkeypatch.setattr("crucible.pipelines.store.compact.fsio.write_bytes_atomic", die)
    with pytest.raises(KeyboardInterrupt):
        compact(out, "p")
    monkeypatch.undo()
    assert snapshot(out) == before


def test_schema_file_has_zero_row_groups_and_each_table_loads_with_datasets(tmp_path):
    import datasets

    out = store(tmp_path, n_commits=2)
    for t in TABLES:
        assert pq.ParquetFile(f"{out}/{t}/_schema.parquet").num_row_groups == 0
    ds = datasets.load_dataset("parquet", data_dir=f"{out}/questions", split="train")
    assert ds.num_rows == 4 and "question_id" in ds.column_names
    # an old store's schema file (one empty row group) is rewritten by the next writer
    pq.write_table(C.record_type("questions").arrow_schema.empty_table(), f"{out}/questions/_schema.parquet")
    assert pq.ParquetFile(f"{out}/questions/_schema.parquet").num_row_groups == 1
    C.ensure_layout(out)
    assert pq.ParquetFile(f"{out}/questions/_schema.parquet").num_row_groups == 0


def test_dataset_card_loads_the_committed_files_of_each_table(tmp_path, monkeypatch):
    import datasets

    out = store(tmp_path, n_commits=2)
    real = fsio.write_bytes_atomic
    monkeypatch.setattr(fsio, "write_bytes_atomic", lambda p, d: (_ for _ in ()).throw(KeyboardInterrupt())
                        if "_commits" in str(p) else real(p, d))
    with pytest.raises(KeyboardInterrupt):
        C.commit_items(out, "p", "r", [make_item(70)])  # an orphan shard: the card must not name it
    monkeypatch.undo()
    catalog.refresh_catalog(out)
    card = (tmp_path / "out" / "README.md").read_text()
    assert card.startswith("---\nconfigs:") and "config_name: questions" in card
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    for t in ("questions", "failures"):
        ds = datasets.load_dataset(str(copy), t, split="train")
        assert ds.num_rows == counts(out)[t]
    # a README.md the user wrote is never overwritten
    (copy / "README.md").write_text("my notes\n")
    catalog.refresh_catalog(str(copy))
    assert (copy / "README.md").read_text() == "my notes\n"


@pytest.mark.parametrize("cmd", [["stats"], ["report"], ["query", "select 1"], ["export", "--format", "verl"],
                                 ["compact"], ["store", "check"]])
def test_reading_commands_refuse_a_folder_that_is_not_a_store_and_create_nothing(tmp_path, capsys, cmd):
    folder = tmp_path / "random"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    assert main([*cmd, "--out", str(folder)]) == 2
    err = capsys.readouterr().err
    assert str(folder) in err and ("not a Crucible store" in err or "no committed data" in err)
    assert sorted(os.listdir(folder)) == ["notes.txt"]


def test_a_reader_that_listed_manifests_just_before_a_compaction_sees_every_row_once(tmp_path, monkeypatch):
    from crucible.pipelines.store import manifests as M

    out = store(tmp_path)
    before = snapshot(out)
    stale = M.committed(out, "p")  # what a reader listed a moment before the compaction
    compact(out, "p")
    real, calls = M.committed, []

    def listed_before_compaction(o, p):
        calls.append(p)
        return stale if len(calls) == 1 else real(o, p)

    monkeypatch.setattr(M, "committed", listed_before_compaction)
    view = catalog.store_view(out)
    assert view.skipped == [] and len(calls) == 2  # the old shards were gone: listed again
    assert sum(len(v) for v in view.shards.values()) == len(TABLES)
    monkeypatch.undo()
    assert snapshot(out) == before


def test_a_store_of_an_older_schema_reads_with_columns_added_since_as_nulls(tmp_path, monkeypatch):
    """A reader of a newer version on a store no writer of that version has opened: columns its schema added
    (swe_validations.labels_hold) read as typed NULLs instead of failing every query that names them."""
    import duckdb

    out = store(tmp_path, n_commits=1)
    real = catalog.column_types
    monkeypatch.setattr(catalog, "column_types", lambda t: real(t) + (("added_later", "BOOLEAN"),))
    cols, rows = catalog.query(out, "select count(*), count(added_later), avg(added_later::int) from questions")
    assert rows == [(2, 0, None)]
    assert catalog.query(out, "select typeof(added_later) from questions limit 1")[1] == [("BOOLEAN",)]
    # switched off: the view has the files' columns only and the query fails
    monkeypatch.setattr(catalog, "missing_columns", lambda con, table, paths: [])
    with pytest.raises(duckdb.BinderException, match="added_later"):
        catalog.query(out, "select count(added_later) from questions")
