"""Compaction keeps every row exactly once, merges files, survives a kill at each step, and leaves reruns
skipping the same finished items."""

import json

import pytest

from crucible.pipelines.store import catalog
from crucible.pipelines.store import commit as C
from crucible.pipelines.store.compact import compact, drop_superseded
from crucible.pipelines.store.records import TABLES
from tests.support.sample_pipeline import make_item


def committed(tmp_path, n_commits=6, per=3, pipeline="p"):
    out = str(tmp_path / "out")
    C.ensure_layout(out)
    for c in range(n_commits):
        C.commit_items(out, pipeline, "run1", [make_item(c * per + j) for j in range(per)])
    return out


def snapshot(out):
    """Every row of every view, sorted (what a user can see)."""
    snap = {}
    for t in TABLES:
        cols, rows = catalog.query(out, f"select * from {t}")
        snap[t] = sorted(json.dumps(dict(zip(cols, r)), default=str, sort_keys=True) for r in rows)
    return snap


def shard_files(out, pipeline="p"):
    import glob

    return sorted(glob.glob(f"{out}/*/part-{pipeline}-*.parquet"))


def test_compaction_keeps_every_row_once_and_merges_files(tmp_path):
    out = committed(tmp_path)
    before, files_before = snapshot(out), shard_files(out)
    done_before = C.recover(out, "p").done_keys
    rep = compact(out, "p")
    assert rep.manifests_before == 6 and rep.manifests_after == 1
    assert rep.files_before == len(files_before) == 6 * len(TABLES) and rep.files_after == len(TABLES)
    assert len(shard_files(out)) == len(TABLES)
    assert snapshot(out) == before
    assert sum(len(v) for v in before.values()) > 0
    assert C.recover(out, "p").done_keys == done_before  # reruns skip the same items
    # compacting again is a no-op; new commits after it are merged on the next compaction
    assert compact(out, "p").manifests_after == 1
    C.commit_items(out, "p", "run2", [make_item(100)])
    assert compact(out, "p").manifests_after == 1 and C.recover(out, "p").done_keys == done_before | {"item0100"}


def test_max_rows_splits_into_groups(tmp_path):
    out = committed(tmp_path, n_commits=6, per=3)
    rep = compact(out, "p", max_rows=6)  # two commits (6 rows per table) per merged file
    assert rep.manifests_after == 3


def test_other_pipelines_are_untouched(tmp_path):
    out = committed(tmp_path, n_commits=3)
    C.commit_items(out, "q", "r", [make_item(50)])
    C.commit_items(out, "q", "r", [make_item(51)])
    q_files = shard_files(out, "q")
    compact(out, "p")
    assert shard_files(out, "q") == q_files and len(C.read_manifests(out, "q")) == 2


def test_kill_after_merged_shards_before_manifest_leaves_orphans_that_recover_moves_aside(tmp_path, monkeypatch):
    out = committed(tmp_path)
    before = snapshot(out)
    real = C.fsio.write_bytes_atomic

    def die_on_manifest(path, data):
        if "/_commits/" in path.replace("\\", "/"):
            raise KeyboardInterrupt("killed")
        real(path, data)

    monkeypatch.setattr("crucible.pipelines.store.compact.fsio.write_bytes_atomic", die_on_manifest)
    with pytest.raises(KeyboardInterrupt):
        compact(out, "p")
    monkeypatch.undo()
    assert len(shard_files(out)) == 7 * len(TABLES)  # merged shards written, no manifest names them
    rep = C.recover(out, "p")
    assert len(rep.orphans) == len(TABLES) and rep.n_commits == 6 and rep.merged_removed == []
    assert len(shard_files(out)) == 6 * len(TABLES)  # the merged copies moved to _quarantine/, not deleted
    assert len(list((tmp_path / "out" / "_quarantine").glob("*/*/part-p-c*.parquet"))) == len(TABLES)
    assert snapshot(out) == before


def test_kill_after_merged_manifest_before_cleanup_is_finished_by_recover(tmp_path, monkeypatch):
    out = committed(tmp_path)
    before = snapshot(out)
    monkeypatch.setattr("crucible.pipelines.store.compact.drop_superseded", lambda *a, **k: None)
    compact(out, "p")
    monkeypatch.undo()
    assert len(C.read_manifests(out, "p")) == 7  # old manifests and the merged one: rows visible twice
    rep = C.recover(out, "p")
    assert rep.n_commits == 1 and not rep.duplicate_keys
    # the inputs are proven merged (the merged shards verify by sha256): deleted, the one deletion allowed
    assert len(rep.merged_removed) == 6 * (1 + len(TABLES)) and rep.quarantined == []
    assert len(C.read_manifests(out, "p")) == 1 and len(shard_files(out)) == len(TABLES)
    assert snapshot(out) == before


def test_drop_superseded_deletes_only_proven_merged_commits_and_tolerates_missing_files(tmp_path, monkeypatch):
    out = committed(tmp_path, n_commits=2)
    ms = C.read_manifests(out, "p")
    assert drop_superseded(out, "p", ms) == [] and len(shard_files(out)) == 2 * len(TABLES)  # not merged: kept
    monkeypatch.setattr("crucible.pipelines.store.compact.drop_superseded", lambda *a, **k: [])
    compact(out, "p")
    monkeypatch.undo()
    assert len(drop_superseded(out, "p", ms)) == 2 * (1 + len(TABLES))
    assert drop_superseded(out, "p", ms) == []  # second time: nothing left, no error
    assert [m["commit_id"][0] for m in C.read_manifests(out, "p")] == ["c"] and len(shard_files(out)) == len(TABLES)


def test_cli_compact_reports_and_rejects_unknown_pipeline(tmp_path, capsys):
    from crucible.pipelines.cli import main

    out = committed(tmp_path, n_commits=4)
    assert main(["compact", "--out", out]) == 0
    assert "p: 4 commits" in capsys.readouterr().out
    assert main(["compact", "--out", out, "--pipeline", "nope"]) == 2
    assert "present: p" in capsys.readouterr().err
    assert main(["compact", "--out", str(tmp_path / "empty")]) == 2


def test_catalog_is_rewritten_only_when_the_committed_files_change_and_a_copy_reads_itself(tmp_path):
    import shutil

    out = committed(tmp_path, n_commits=1)
    catalog.connect(out).close()
    path = tmp_path / "out" / catalog.DEFAULT_CATALOG
    assert not path.exists()  # readers never write it (issue 25): writers and `store check --repair` do
    catalog.refresh_catalog(out)
    mtime = path.stat().st_mtime_ns
    catalog.connect(out).close()
    assert path.stat().st_mtime_ns == mtime  # current: not rewritten
    C.commit_items(out, "p", "run1", [make_item(90)])
    assert not catalog.catalog_current(out)  # a new commit: the file's view lists are stale
    assert catalog.query(out, "select count(*) from questions")[1] == [(4,)] and not catalog.catalog_current(out)
    catalog.refresh_catalog(out)
    copy, moved = tmp_path / "copy", tmp_path / "moved"
    shutil.copytree(out, copy)
    shutil.move(out, moved)
    assert catalog.catalog_current(str(moved))  # relative paths: nothing to rewrite
    C.commit_items(str(copy), "p", "run1", [make_item(91)])  # the copy diverges: it must read its own files
    assert catalog.query(str(copy), "select count(*) from questions")[1] == [(5,)]
    assert catalog.query(str(moved), "select count(*) from questions")[1] == [(4,)]
