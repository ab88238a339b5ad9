import json
import os

import pyarrow.parquet as pq
import pytest

from crucible.pipelines.store import commit as C
from crucible.pipelines.store import fsio
from tests.support.sample_pipeline import make_item


def _parts(out, table):
    return sorted(p for p in os.listdir(out / table) if p.startswith("part-"))


def test_commit_writes_shards_then_manifest_and_recover_reads_done_keys(tmp_path):
    C.ensure_layout(str(tmp_path))
    info = C.commit_items(str(tmp_path), "p", "r", [make_item(1), make_item(2)])
    assert info.n_items == 2 and info.rows["questions"] == 2
    manifest = json.loads((tmp_path / "_commits" / "p" / f"{info.commit_id}.json").read_text())
    assert manifest["items"] == ["item0001", "item0002"]
    assert pq.read_table(tmp_path / "questions" / manifest["files"]["questions"]).num_rows == 2
    rec = C.recover(str(tmp_path), "p")
    assert rec.done_keys == {"item0001", "item0002"} and rec.orphans == [] and rec.quarantined == []


def test_retried_commit_is_idempotent(tmp_path):
    a = C.commit_items(str(tmp_path), "p", "r", [make_item(1), make_item(2)])
    b = C.commit_items(str(tmp_path), "p", "r", [make_item(2), make_item(1)])
    assert a.commit_id == b.commit_id
    assert len(_parts(tmp_path, "questions")) == 1
    assert len(os.listdir(tmp_path / "_commits" / "p")) == 1


def test_shard_without_manifest_is_an_orphan_and_is_moved_to_quarantine_not_deleted(tmp_path, monkeypatch):
    C.commit_items(str(tmp_path), "p", "r", [make_item(1)])
    real = fsio.write_bytes_atomic

    def die_on_manifest(path, data):
        if "_commits" in str(path):
            raise KeyboardInterrupt("killed before the commit point")
        real(path, data)

    monkeypatch.setattr(fsio, "write_bytes_atomic", die_on_manifest)
    with pytest.raises(KeyboardInterrupt):
        C.commit_items(str(tmp_path), "p", "r", [make_item(2)])
    monkeypatch.undo()
    assert len(_parts(tmp_path, "questions")) == 2  # the killed commit left a shard behind
    orphan = sorted(set(_parts(tmp_path, "questions")) - {f"part-p-{C.stable_hash('p', ['item0001'])}.parquet"})[0]
    data = (tmp_path / "questions" / orphan).read_bytes()
    rec = C.recover(str(tmp_path), "p")
    assert rec.done_keys == {"item0001"}
    assert len(rec.orphans) == len(C.TABLES) and sorted(rec.quarantined) == sorted(
        f"{t}/{orphan}" for t in C.TABLES)
    assert len(_parts(tmp_path, "questions")) == 1  # out of the table folder, into _quarantine/ (kept)
    kept = list((tmp_path / "_quarantine").glob(f"*/questions/{orphan}"))
    assert len(kept) == 1 and kept[0].read_bytes() == data
    evidence = json.loads(next((tmp_path / "_quarantine").glob("*/evidence.json")).read_text())
    assert {e["path"] for e in evidence} == set(rec.quarantined) and all("no manifest names it" in e["why"]
                                                                         for e in evidence)
    # another pipeline's shards are never touched by this pipeline's recovery
    C.commit_items(str(tmp_path), "other", "r", [make_item(5)])
    assert C.recover(str(tmp_path), "p").orphans == []
    assert len(_parts(tmp_path, "questions")) == 2


def test_schema_violations_become_failure_rows_with_path_and_reason(tmp_path):
    item = make_item(5, bad_every=5)
    C.commit_items(str(tmp_path), "p", "r", [item, make_item(6)])
    q = pq.read_table(tmp_path / "questions" / _parts(tmp_path, "questions")[0]).to_pylist()
    assert [r["question_id"] for r in q] == ["q0006"]
    f = pq.read_table(tmp_path / "failures" / _parts(tmp_path, "failures")[0]).to_pylist()
    schema_fails = [r for r in f if r["kind"] == "schema"]
    assert len(schema_fails) == 1
    row = schema_fails[0]
    assert row["table_name"] == "questions" and row["item_key"] == "item0005" and row["stage"] == "validate"
    assert "'answer' is a required property" in row["reason"] and "$.hops" in row["reason"]
    assert json.loads(row["payload"])["hops"] == "three"  # the offending row is kept, not lost


def test_atomic_write_leaves_old_content_or_new_never_partial(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    fsio.write_bytes_atomic(str(target), b"old")

    def boom(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        fsio.write_bytes_atomic(str(target), b"new" * 1000)
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # temp file cleaned up


def test_unreadable_manifest_is_a_clear_error(tmp_path):
    d = tmp_path / "_commits" / "p"
    d.mkdir(parents=True)
    (d / "abc.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"abc.json: unreadable commit manifest"):
        C.recover(str(tmp_path), "p")


def test_unknown_table_is_rejected():
    with pytest.raises(KeyError, match="known"):
        C.ItemResult("k").add("questionz", {})
