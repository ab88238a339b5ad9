"""The store on object storage (``s3://`` on moto's real S3 API on loopback): lock-free commits that are safe for
retried bundles and concurrent writers, deterministic reads, damage quarantined and never deleted, readers on a
local mirror fetched by checksum. Each defence has a test where it must act and one with it switched off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crucible.pipelines.cli import main
from crucible.pipelines.store import catalog, fsio, lockfree, mirror
from crucible.pipelines.store import commit as C
from crucible.pipelines.store import manifests as M
from crucible.pipelines.store.check import check_store
from tests.support import s3server
from tests.support.s3server import objects, put
from tests.support.sample_pipeline import make_item

REPO = Path(__file__).resolve().parents[2]
s3_endpoint, s3_store = s3server.s3_endpoint, s3server.s3_store  # the fixtures


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CRUCIBLE_CACHE_DIR", str(tmp_path / "cache"))


def rows(url: str, table: str = "questions") -> list[tuple]:
    return catalog.query(url, f"select question_id from {table} order by 1")[1]


def count(url: str) -> tuple[int, int]:
    return catalog.query(url, "select count(*), count(distinct question_id) from questions")[1][0]


def test_commit_and_read_round_trip_on_s3(s3_store, capsys):
    C.ensure_layout(s3_store)
    C.commit_items(s3_store, "p", "r", [make_item(i) for i in range(3)])
    C.commit_items(s3_store, "p", "r", [make_item(i) for i in range(3, 5)])
    assert rows(s3_store) == [(f"q{i:04d}",) for i in range(5)]
    assert main(["query", "select count(*) as n from swe_instances", "--out", s3_store, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"n": 5}
    assert main(["stats", "--out", s3_store, "--json"]) == 0
    assert check_store(s3_store).ok


def test_the_mirror_fetches_a_shard_once_by_checksum(s3_store, monkeypatch):
    C.commit_items(s3_store, "p", "r", [make_item(1)])
    rows(s3_store)
    fetched = []
    real = fsio.read_bytes
    monkeypatch.setattr(fsio, "read_bytes", lambda p: fetched.append(p) or real(p))
    assert rows(s3_store) == [("q0001",)]
    assert not [p for p in fetched if p.endswith(".parquet")]  # verified copies: nothing fetched again
    root = mirror.mirror_dir(s3_store)
    shard = next((root / "questions").glob("part-*.parquet"))
    shard.write_bytes(shard.read_bytes()[:-10])  # the mirror's copy changed: fetched again, by checksum
    assert rows(s3_store) == [("q0001",)] and [p for p in fetched if p.endswith(".parquet")]


def test_a_retried_bundle_writes_nothing_twice(s3_store, monkeypatch):
    C.commit_items(s3_store, "p", "r", [make_item(1), make_item(2)])
    before = objects(_endpoint(), s3_store)
    puts = []
    real = fsio.put_if_absent
    monkeypatch.setattr(fsio, "put_if_absent", lambda p, d: puts.append(p) or real(p, d))
    info = C.commit_items(s3_store, "p", "r", [make_item(2), make_item(1)])
    assert info.n_items == 0 and info.skipped_keys == ["item0001", "item0002"] and puts == []
    assert objects(_endpoint(), s3_store) == before and count(s3_store) == (2, 2)


def _endpoint() -> str:
    import os

    return os.environ["AWS_ENDPOINT_URL_S3"]


def _interleave(monkeypatch, url: str, put):
    """Attempt B of the same bundle runs whole between attempt A's first shard and A's manifest."""
    state = {"done": False}

    def hooked(path, data):
        ok = put(path, data)
        if not state["done"] and "/part-" in path:
            state["done"] = True
            monkeypatch.setattr(C, "done_keys", lambda *a: set())  # B did not see A (it has not committed)
            C.commit_items(url, "p", "r-b", [make_item(1)])
        return ok

    monkeypatch.setattr(fsio, "put_if_absent", hooked)
    C.commit_items(url, "p", "r-a", [make_item(1)])
    monkeypatch.undo()


def test_two_attempts_of_one_bundle_at_once_commit_one_consistent_copy(s3_store, monkeypatch):
    _interleave(monkeypatch, s3_store, fsio.put_if_absent)
    assert len(M.read_manifests(s3_store, "p")) == 1
    rep = check_store(s3_store)
    assert rep.ok, rep.damaged  # B adopted A's shards: the manifest's checksums are the shards'
    assert count(s3_store) == (1, 1)


def test_without_create_if_absent_the_attempts_overwrite_each_other(s3_store, monkeypatch):
    """Switched off: plain overwrites. A's manifest, written last, names checksums of shards B replaced."""
    def overwrite(path, data):
        fsio.write_bytes_atomic(path, data)
        return True

    _interleave(monkeypatch, s3_store, overwrite)
    rep = check_store(s3_store)
    assert not rep.ok and any("manifest" in p.why for p in rep.damaged)


def _race(url, monkeypatch, settle: bool):
    """A commits {1, 2}; B, which did not see A, commits {2, 3} (batched differently) right after."""
    C.commit_items(url, "p", "r", [make_item(1), make_item(2)])
    real = C.done_keys
    calls = {"n": 0}

    def blind_first(*a):
        calls["n"] += 1
        return set() if calls["n"] <= 2 else real(*a)  # B's first two checks miss A

    monkeypatch.setattr(C, "done_keys", blind_first)
    if not settle:
        monkeypatch.setattr(lockfree, "missing_after", lambda *a: [])
    C.commit_items(url, "p", "r", [make_item(2), make_item(3)])
    monkeypatch.undo()


def test_keys_a_commit_lost_to_an_overlapping_one_are_committed_anew(s3_store, monkeypatch):
    _race(s3_store, monkeypatch, settle=True)
    res = M.committed(s3_store, "p")
    assert res.done_keys == {"item0001", "item0002", "item0003"} and len(res.conflicting) == 1
    assert rows(s3_store) == [("q0001",), ("q0002",), ("q0003",)]  # each key once, none lost
    assert len(M.read_manifests(s3_store, "p")) == 3  # the loser stays (never deleted), not read


def test_without_settling_the_losers_other_keys_are_not_readable(s3_store, monkeypatch):
    _race(s3_store, monkeypatch, settle=False)
    assert rows(s3_store) == [("q0001",), ("q0002",)]  # item 3 lost until a rerun


def _late_earlier_manifest(url, monkeypatch, pause: bool):
    """A commits {1, 2}; B's manifest for {2, 3}, stamped a moment before A's, lands after A's manifest, during
    A's settle pause (a slow put on a loaded server). B sorts first: A's manifest becomes conflicting."""
    state = {"landed": False}

    def land_b():
        if not state["landed"]:
            state["landed"] = True
            keys = ["item0002", "item0003"]
            tables = C._tables([make_item(2), make_item(3)], "p", "r")
            monkeypatch.setattr(lockfree, "utc_now_us", lambda: "2000-01-01T00:00:00.000000+00:00")
            C.write_commit(url, "p", "r", C.stable_hash("p", keys), keys, tables)
            monkeypatch.setattr(lockfree, "utc_now_us", real_now)

    real_now = lockfree.utc_now_us
    if pause:
        monkeypatch.setattr(lockfree, "_pause", lambda s: land_b())
    else:
        monkeypatch.setattr(lockfree, "SETTLE_PAUSE", (0.0, 0.0, 0.0))
    C.commit_items(url, "p", "r", [make_item(1), make_item(2)])
    land_b()  # switched off: B lands after A's check (no pause to land in)
    monkeypatch.undo()


def test_a_manifest_stamped_earlier_that_lands_during_the_pause_is_settled(s3_store, monkeypatch):
    _late_earlier_manifest(s3_store, monkeypatch, pause=True)
    assert rows(s3_store) == [("q0001",), ("q0002",), ("q0003",)]  # A saw it lose item 1 and committed it anew
    assert len(M.committed(s3_store, "p").conflicting) == 1


def test_without_the_settle_pause_a_late_earlier_manifest_hides_the_losers_keys(s3_store, monkeypatch):
    _late_earlier_manifest(s3_store, monkeypatch, pause=False)
    assert rows(s3_store) == [("q0002",), ("q0003",)]  # item 1 not readable until a rerun redoes it


def test_the_settle_pause_scales_with_the_put_time_within_bounds(monkeypatch):
    monkeypatch.setattr(lockfree, "_LAST_PUT_S", [0.01])
    assert lockfree.settle_pause() == 0.25
    monkeypatch.setattr(lockfree, "_LAST_PUT_S", [0.5])
    assert lockfree.settle_pause() == 1.5
    monkeypatch.setattr(lockfree, "_LAST_PUT_S", [9.0])
    assert lockfree.settle_pause() == 5.0


def test_without_deterministic_resolution_rows_appear_twice(s3_store, monkeypatch):
    _race(s3_store, monkeypatch, settle=False)
    monkeypatch.setattr(M, "resolve", lambda ms: M.Resolution(live=list(ms)))
    assert count(s3_store) == (4, 3)


def test_resolution_is_the_same_whatever_the_listing_order():
    ms = [{"commit_id": f"{i:016x}", "items": items, "created_at": "2026-01-01T00:00:00+00:00", "files": {}}
          for i, items in enumerate([["a", "b"], ["b", "c"], ["c", "d"]])]
    first = M.resolve(ms)
    assert [m["commit_id"] for m in M.resolve(list(reversed(ms))).live] == [m["commit_id"] for m in first.live]
    assert first.done_keys == {"a", "b", "c", "d"} and len(first.conflicting) == 1


def test_two_concurrent_compactions_keep_every_key_once():
    """On an object store two compactions can race: the newer stands, the other's inputs it lacks stay live."""
    m = {n: {"commit_id": f"{i:016x}", "items": [n], "created_at": "2026-01-01T00:00:00+00:00", "files": {}}
         for i, n in enumerate("xyz")}
    ca = {"commit_id": "c" + "a" * 16, "items": ["x", "y"], "created_at": "2026-01-02T00:00:00+00:00", "files": {},
          "compacted_from": [m["x"]["commit_id"], m["y"]["commit_id"]]}
    cb = {"commit_id": "c" + "b" * 16, "items": ["y", "z"], "created_at": "2026-01-03T00:00:00+00:00", "files": {},
          "compacted_from": [m["y"]["commit_id"], m["z"]["commit_id"]]}
    res = M.resolve([*m.values(), ca, cb])
    assert [x["commit_id"] for x in res.live] == [cb["commit_id"], m["x"]["commit_id"]]
    assert res.done_keys == {"x", "y", "z"} and res.conflicting == [ca]


def test_a_truncated_shard_on_s3_is_named_and_quarantined_never_deleted(s3_store, capsys):
    C.commit_items(s3_store, "p", "r", [make_item(1)])
    C.commit_items(s3_store, "p", "r", [make_item(2)])
    shard = sorted(fsio.glob(fsio.join(s3_store, "questions", "part-*.parquet")))[0]
    data = fsio.read_bytes(shard)
    put(_endpoint(), shard, data[: len(data) // 2])
    assert len(rows(s3_store)) == 1  # the damaged shard is left out, the other read
    assert main(["store", "check", "--out", s3_store]) == 1
    assert "DAMAGED questions/" in capsys.readouterr().out
    assert main(["store", "check", "--out", s3_store, "--quarantine"]) == 0
    after = objects(_endpoint(), s3_store)
    rel = shard[len(s3_store) + 1:]
    moved = [k for k in after if k.startswith("_quarantine/") and k.endswith(rel)]
    assert rel not in after and len(moved) == 1 and after[moved[0]] == data[: len(data) // 2]
    assert any(k.endswith("evidence.json") for k in after)
    rec = C.recover(s3_store, "p")
    assert len(rec.done_keys) == 1  # the damaged commit's item is redone by the next run


def _in_flight(url):
    """Shards of a commit whose manifest is not there yet (a live writer, or one that died)."""
    real = fsio.put_if_absent

    def die(path, data):
        if "_commits" in path:
            raise KeyboardInterrupt
        return real(path, data)

    fsio.put_if_absent = die
    try:
        C.commit_items(url, "p", "r", [make_item(9)])
    except KeyboardInterrupt:
        pass
    finally:
        fsio.put_if_absent = real


def test_recover_never_moves_a_live_writers_shards(s3_store):
    C.commit_items(s3_store, "p", "r", [make_item(1)])
    _in_flight(s3_store)
    before = objects(_endpoint(), s3_store)
    rec = C.recover(s3_store, "p")
    assert rec.orphans == [] and rec.quarantined == [] and objects(_endpoint(), s3_store) == before
    rep = check_store(s3_store)
    assert rep.ok and rep.in_flight


def test_without_the_grace_period_recover_would_take_a_live_writers_shards(s3_store, monkeypatch):
    C.commit_items(s3_store, "p", "r", [make_item(1)])
    _in_flight(s3_store)
    monkeypatch.setattr(lockfree, "GRACE_S", 0.0)
    rec = C.recover(s3_store, "p")
    assert len(rec.orphans) == len(rec.quarantined) > 0  # moved aside (never deleted): wrong for a live writer
    assert all(k.startswith("_quarantine/") for k in objects(_endpoint(), s3_store) if "item0009" in k or
               k.rsplit("/", 1)[-1] in {p.rsplit("/", 1)[-1] for p in rec.orphans})


def test_compaction_on_s3_merges_and_marks_and_deletes_nothing(s3_store):
    from crucible.pipelines.store.compact import compact

    for i in range(4):
        C.commit_items(s3_store, "p", "r", [make_item(i)])
    before = objects(_endpoint(), s3_store)
    rep = compact(s3_store, "p")
    after = objects(_endpoint(), s3_store)
    assert rep.manifests_before == 4 and rep.manifests_after == 1
    assert set(before) - {"_writer.lock"} <= set(after)  # every file still there
    assert rows(s3_store) == [(f"q{i:04d}",) for i in range(4)]
    assert check_store(s3_store).ok


def test_a_beam_pipeline_commits_into_s3(s3_store):
    from tests.support import sample_pipeline

    assert sample_pipeline.run(s3_store, 6, commit_every=2)["processed"] == 6
    assert count(s3_store) == (6, 6)
    assert sample_pipeline.run(s3_store, 6, commit_every=2)["processed"] == 0  # a rerun skips finished work
    assert "README.md" in objects(_endpoint(), s3_store)


def test_two_writer_processes_at_once_every_row_readable_once_nothing_deleted(s3_store, tmp_path):
    """Two processes (two threads each) commit the same keys, batched differently (3 and 4), at the same moment:
    their checks race, overlapping manifests land (conflicting: kept, not read) and the losers commit anew."""
    C.ensure_layout(s3_store)
    go = tmp_path / "go"
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [subprocess.Popen([sys.executable, "-m", "tests.support.s3_writer", s3_store, lo, hi, batch, str(log),
                               str(go), "--threads", "2"], cwd=REPO, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
             for (lo, hi, batch), log in zip((("0", "60", "3"), ("0", "60", "4")), logs)]
    try:
        assert [p.stdout.readline().strip() for p in procs] == ["ready", "ready"]
        go.touch()
        assert [p.wait(240) for p in procs] == [0, 0]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert count(s3_store) == (60, 60)  # every key once
    after = objects(_endpoint(), s3_store)
    created = {line[len(s3_store) + 1:] for log in logs for line in log.read_text().split()}
    assert created and created <= set(after)  # nothing a writer created is gone
    rep = check_store(s3_store)
    assert rep.ok, rep.damaged


def test_store_restore_on_s3_rebuilds_a_lost_manifest_and_brings_back_a_quarantined_commit(s3_store):
    from crucible.pipelines.store.restore import restore

    for i in (1, 2, 3):
        C.commit_items(s3_store, "p", "r", [make_item(i)])
    first, second = sorted(M.read_manifests(s3_store, "p"), key=lambda m: m["items"])[:2]
    fsio.delete([M.manifest_path(s3_store, "p", first["commit_id"])])  # a lost manifest
    assert C.quarantine_commits(s3_store, "p", [(second, "moved aside by the test")])
    assert rows(s3_store) == [("q0003",)]
    rep = restore(s3_store)
    assert rep.ok and len(rep.restored) == 2, rep
    assert rows(s3_store) == [("q0001",), ("q0002",), ("q0003",)]


@pytest.mark.parametrize("conditional", [True, False], ids=["if-none-match", "write-then-verify"])
def test_put_if_absent_never_replaces_an_object(s3_store, monkeypatch, conditional):
    if not conditional:  # an S3 server without conditional writes (or gs:// through FileSystems)
        monkeypatch.setattr(fsio, "_put_if_absent_s3", lambda p, d: None)
    path = fsio.join(s3_store, "x", "a.json")
    assert fsio.put_if_absent(path, b"first") is True
    assert fsio.put_if_absent(path, b"second") is False
    assert fsio.read_bytes(path) == b"first"


def test_put_if_absent_in_a_local_folder(tmp_path):
    path = str(tmp_path / "d" / "a.json")
    assert fsio.put_if_absent(path, b"first") is True and fsio.put_if_absent(path, b"second") is False
    assert (tmp_path / "d" / "a.json").read_bytes() == b"first" and sorted(p.name for p in (tmp_path / "d").iterdir()) == ["a.json"]


def test_a_plain_write_replaces_what_put_if_absent_keeps(s3_store):
    """Switched off: the writer's ordinary atomic write replaces the object another attempt put first."""
    path = fsio.join(s3_store, "x", "a.json")
    fsio.write_bytes_atomic(path, b"first")
    fsio.write_bytes_atomic(path, b"second")
    assert fsio.read_bytes(path) == b"second"
