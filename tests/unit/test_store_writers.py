"""One writer per store (lock with the holder named, takeover of a dead holder's lock), recover removes only
leftovers of dead writers, and a commit is idempotent per item key."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crucible.pipelines.cli import main
from crucible.pipelines.store import catalog, fsio, lock
from crucible.pipelines.store import commit as C
from crucible.pipelines.store import manifests as M
from crucible.pipelines.store.records import TABLES
from tests.support.sample_pipeline import make_item

REPO = Path(__file__).resolve().parents[2]
HOLD = ("import sys, time; from crucible.pipelines.store import lock; lock.acquire(sys.argv[1], 'test holder run'); "
        "print('held', flush=True); time.sleep(120)")


@pytest.fixture
def holder(tmp_path):
    """Another process holding the writer lock of tmp_path/out."""
    out = tmp_path / "out"
    C.ensure_layout(str(out))
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "held"
    yield out, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _parts(out, table="questions"):
    return sorted(p for p in os.listdir(Path(out) / table) if p.startswith("part-"))


def _orphan(out, key=77):
    """Shards of a commit caught between its shards and its manifest (a live writer, or a killed one)."""
    real = fsio.write_bytes_atomic

    def die(path, data):
        if "_commits" in str(path):
            raise KeyboardInterrupt
        real(path, data)

    fsio.write_bytes_atomic = die
    try:
        C.commit_items(str(out), "p", "r", [make_item(key)])
    except KeyboardInterrupt:
        pass
    finally:
        fsio.write_bytes_atomic = real


def test_second_writer_is_refused_with_the_holder_named_and_deletes_nothing(holder, capsys):
    out, proc = holder
    C.commit_items(str(out), "p", "r", [make_item(1)])
    _orphan(out)  # the holder's commit in flight: its shard must survive
    assert len(_parts(out)) == 2
    with pytest.raises(lock.StoreLocked) as err:
        C.recover(str(out), "p")
    msg = str(err.value)
    assert f"pid {proc.pid}" in msg and socket.gethostname() in msg and "test holder run" in msg and "since" in msg
    assert main(["compact", "--out", str(out)]) == 2
    assert f"pid {proc.pid}" in capsys.readouterr().err
    assert len(_parts(out)) == 2  # nothing deleted while the holder lives
    assert catalog.query(str(out), "select count(*) from questions")[1] == [(1,)]  # readers are never locked


def test_lock_of_a_killed_holder_is_taken_over_and_its_leftovers_moved_aside(holder):
    out, proc = holder
    C.commit_items(str(out), "p", "r", [make_item(1)])
    _orphan(out)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert lock.holder(str(out))["pid"] == proc.pid  # the dead holder's details are still in the file
    rec = C.recover(str(out), "p")
    try:
        assert rec.done_keys == {"item0001"} and len(rec.orphans) == len(TABLES)
        assert len(rec.quarantined) == len(TABLES)  # moved aside with their evidence, not deleted
        assert lock.holder(str(out))["pid"] == os.getpid() and lock.held(str(out))
    finally:
        lock.release(str(out), force=True)


def test_lock_is_reentrant_in_one_process_and_released_after_a_with_block(tmp_path):
    out = str(tmp_path / "out")
    C.ensure_layout(out)
    with lock.writer(out, "outer"):
        with lock.writer(out, "inner"):
            assert lock.held(out)
        assert lock.held(out)
    assert not lock.held(out)
    # released: another process can take it now
    res = subprocess.run([sys.executable, "-c", "import sys; from crucible.pipelines.store import lock; "
                          "lock.acquire(sys.argv[1]); print('ok')", out], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert res.stdout.strip() == "ok", res.stderr


def test_recover_removes_stale_temp_files_of_its_pipeline_only(tmp_path):
    out = tmp_path / "out"
    C.ensure_layout(str(out))
    C.commit_items(str(out), "p", "r", [make_item(1)])
    mine = [out / "questions" / ".part-p-0123456789abcdef.parquet.x1y2.deadbeef.tmp",
            out / "_commits" / "p" / ".0123456789abcdef.json.a1.b2.tmp",
            out / "failures" / "._schema.parquet.q.r.tmp"]
    other = out / "questions" / ".part-p-x-0123456789abcdef.parquet.x1y2.deadbeef.tmp"  # pipeline "p-x"
    for f in [*mine, other]:
        f.write_bytes(b"half written")
    rec = C.recover(str(out), "p")
    lock.release(str(out), force=True)
    assert sorted(rec.temp_files_deleted) == sorted(map(str, mine))
    assert not any(f.exists() for f in mine) and other.exists()


def test_recover_of_a_pipeline_never_deletes_shards_of_a_pipeline_whose_name_extends_it(tmp_path):
    out = str(tmp_path / "out")
    C.commit_items(out, "swe-curate", "r", [make_item(1)])
    C.commit_items(out, "swe", "r", [make_item(2)])
    assert C.recover(out, "swe").orphans == []  # part-swe-curate-* is not an orphan of "swe"
    lock.release(out, force=True)
    assert catalog.query(out, "select count(*) from questions")[1] == [(2,)]


def test_atomic_write_fsyncs_the_directory_after_the_rename(tmp_path, monkeypatch):
    import stat

    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    fsio.write_bytes_atomic(str(tmp_path / "f.bin"), b"x")
    assert synced == [False, True]  # the file's data, then the directory entry of the rename


# --- idempotent per key ----------------------------------------------------------------------------------

def test_a_retried_bundle_that_batches_differently_commits_each_key_once(tmp_path):
    out = str(tmp_path / "out")
    C.ensure_layout(out)
    a = C.commit_items(out, "p", "r", [make_item(1), make_item(2)])
    b = C.commit_items(out, "p", "r", [make_item(2), make_item(3)])  # retry: item 2 again, with item 3
    assert a.n_items == 2 and b.n_items == 1 and b.skipped_keys == ["item0002"]
    again = C.commit_items(out, "p", "r", [make_item(3), make_item(1)])
    assert again.n_items == 0 and again.files == {}
    items = sorted(k for m in C.read_manifests(out, "p") for k in m["items"])
    assert items == ["item0001", "item0002", "item0003"]
    _, rows = catalog.query(out, "select count(*), count(distinct question_id) from questions")
    assert rows == [(3, 3)]


def test_a_key_given_twice_in_one_batch_is_committed_once(tmp_path):
    out = str(tmp_path / "out")
    info = C.commit_items(out, "p", "r", [make_item(4), make_item(4)])
    assert info.n_items == 1 and info.rows["questions"] == 1


def test_racing_attempts_that_both_commit_a_key_are_read_once_and_the_loser_is_redone(tmp_path, monkeypatch):
    out = str(tmp_path / "out")
    C.ensure_layout(out)
    C.commit_items(out, "p", "r", [make_item(1), make_item(2)])
    # a speculative attempt that did not see the first commit (the per-key check switched off)
    monkeypatch.setattr(C, "done_keys", lambda *a: set())
    time.sleep(1.1)  # created_at has second resolution: the racer is later
    C.commit_items(out, "p", "r", [make_item(2), make_item(3)])
    monkeypatch.undo()
    assert len(C.read_manifests(out, "p")) == 2  # both attempts are on disk: item 2 twice
    _, rows = catalog.query(out, "select question_id from questions order by 1")
    assert rows == [("q0001",), ("q0002",)]  # the earlier commit wins whole; item 2 is read once
    res = M.committed(out, "p")
    assert res.done_keys == {"item0001", "item0002"} and len(res.conflicting) == 1
    rec = C.recover(out, "p")  # the loser goes; its other key (item 3) is not done, so it is redone
    lock.release(out, force=True)
    assert rec.done_keys == {"item0001", "item0002"} and rec.duplicate_keys == ["item0002"]
    C.commit_items(out, "p", "r", [make_item(3)])
    _, rows = catalog.query(out, "select count(*), count(distinct question_id) from questions")
    assert rows == [(3, 3)]


def test_without_resolution_the_race_would_be_read_twice(tmp_path, monkeypatch):
    """The check can fail: reading every manifest as it is (no resolution) shows item 2 twice."""
    out = str(tmp_path / "out")
    C.commit_items(out, "p", "r", [make_item(1), make_item(2)])
    monkeypatch.setattr(C, "done_keys", lambda *a: set())
    C.commit_items(out, "p", "r", [make_item(2), make_item(3)])
    monkeypatch.setattr(M, "resolve", lambda ms: M.Resolution(live=list(ms)))
    _, rows = catalog.query(out, "select count(*), count(distinct question_id) from questions")
    assert rows == [(4, 3)]


def test_manifest_files_are_plain_names_and_the_commit_id_matches_the_file(tmp_path):
    out = str(tmp_path / "out")
    info = C.commit_items(out, "p", "r", [make_item(1)])
    m = json.loads((tmp_path / "out" / "_commits" / "p" / f"{info.commit_id}.json").read_text())
    assert m["commit_id"] == info.commit_id and all("/" not in f for f in m["files"].values())


# --- object stores: an advisory lease through FileSystems ---------------------------------------------------

@pytest.fixture
def mem_fs(monkeypatch):
    """fsio's remote calls on a dict (what Beam FileSystems would do for gs://)."""
    files: dict[str, bytes] = {}

    def read(path):
        if path not in files:
            raise FileNotFoundError(path)
        return files[path]

    monkeypatch.setattr(fsio, "read_bytes", read)
    monkeypatch.setattr(fsio, "write_bytes_atomic", lambda p, d: files.__setitem__(p, d))
    monkeypatch.setattr(fsio, "delete", lambda ps: [files.pop(p, None) for p in ps])
    monkeypatch.setattr(lock.time, "sleep", lambda s: None)
    return files


def _lease(files, **info):
    files["mem://b/out/_writer.lock"] = json.dumps({"started_at": "then", "purpose": "other run", **info}).encode()


def test_lease_on_an_object_store_refuses_live_holders_and_takes_over_dead_or_expired_ones(mem_fs):
    out = "mem://b/out"
    here = socket.gethostname()
    _lease(mem_fs, host=here, pid=os.getppid(), started_ts=time.time())  # a live process on this host
    with pytest.raises(lock.StoreLocked, match=f"pid {os.getppid()} on {here}"):
        lock.acquire(out)
    _lease(mem_fs, host="worker-7", pid=1, started_ts=time.time() - 60)  # another host, recent
    with pytest.raises(lock.StoreLocked, match="worker-7"):
        lock.acquire(out)
    for stale in ({"host": here, "pid": 2 ** 22 + 17, "started_ts": time.time()},  # dead pid on this host
                  {"host": "worker-7", "pid": 1, "started_ts": time.time() - lock.LEASE_TTL_S - 1}):  # expired
        _lease(mem_fs, **stale)
        lock.acquire(out, "my run")
        assert json.loads(mem_fs["mem://b/out/_writer.lock"])["pid"] == os.getpid()
        lock.release(out)
        assert "mem://b/out/_writer.lock" not in mem_fs  # released: the lease is deleted
