"""Hostile stores and arguments: a crafted manifest, a crafted ``_commits/`` entry, a linked table folder, a
``--pipeline`` or ``--max-rows`` out of range. Each is named (exit 1 from ``store check``, exit 2 from
the other commands), nothing outside the store is read or moved, and each defense switched off shows
what it prevents."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crucible.pipelines.cli import main
from crucible.pipelines.store import commit as C
from crucible.pipelines.store import integrity, lock
from crucible.pipelines.store import manifests as M
from tests.support.sample_pipeline import make_item

REPO = Path(__file__).resolve().parents[2]
CID = "0123456789abcdef"
SHARD = f"part-p-{CID}.parquet"
_WATCH: list[str] = []  # paths no command may open, list or move while a test watches them
_SEEN: list[tuple[str, str]] = []


def _audit(event, args):
    if _WATCH and event in ("open", "os.rename", "os.remove", "os.rmdir", "os.scandir", "os.listdir", "glob.glob"):
        for a in args:
            if isinstance(a, (str, bytes, os.PathLike)):
                p = os.path.abspath(os.fsdecode(a))
                if any(p == w or p.startswith(w + os.sep) for w in _WATCH):
                    _SEEN.append((event, p))


sys.addaudithook(_audit)  # cannot be removed: it records only while a test fills _WATCH


@pytest.fixture
def watch(monkeypatch):
    """Record every open, listing, move or Parquet read of the watched paths (Python's audit events, and
    pyarrow's readers, which open files in C++)."""
    import pyarrow.parquet as pq

    for name in ("read_metadata", "read_table", "ParquetFile"):
        real = getattr(pq, name)

        def spy(src, *a, _real=real, _name=name, **k):
            if isinstance(src, (str, os.PathLike)):
                _audit("open", (src,))
            return _real(src, *a, **k)

        monkeypatch.setattr(pq, name, spy)
    yield lambda *paths: _WATCH.extend(os.path.abspath(p) for p in paths)
    _WATCH.clear()
    _SEEN.clear()


@pytest.fixture(autouse=True)
def _log_to_this_tests_stderr():
    import logging

    logging.getLogger().handlers.clear()


def store(tmp_path):
    out = tmp_path / "out"
    C.ensure_layout(str(out))
    for c in range(2):
        C.commit_items(str(out), "p", "r", [make_item(2 * c), make_item(2 * c + 1)])
    return out


def cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    o = capsys.readouterr()
    assert "Traceback" not in o.err
    return rc, o.out + o.err


def tree(root):
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(Path(root).rglob("*"))}


def victim_of(tmp_path, out):
    """A real shard outside the store, where a crafted name would lead."""
    v = tmp_path / "victim" / SHARD
    v.parent.mkdir(parents=True)
    shutil.copy(next((out / "questions").glob("part-p-*.parquet")), v)
    return v


def manifest(**over):
    m = {"commit_id": CID, "pipeline": "p", "run_id": "r", "items": ["evil"], "files": {"questions": SHARD},
         "rows": {"questions": 2}, "created_at": "2020-01-01T00:00:00+00:00"}
    return {**m, **over}


CRAFTED = {  # name -> (manifest, what the error names)
    "table ../victim": (manifest(files={"../victim": SHARD}), "names table '../victim'"),
    "absolute shard path": (manifest(files={"questions": "/VICTIM"}), "files.questions"),
    "shard path with ..": (manifest(files={"questions": f"../../victim/{SHARD}"}), "files.questions"),
    "another commit's shard": (manifest(files={"questions": "part-p-fedcba9876543210.parquet"}), "files.questions"),
    "pipeline ../victim": (manifest(pipeline="../victim"), "field 'pipeline'"),
    "odd table name": (manifest(files={"questions\u0000": SHARD}), "names table"),
    "compacted_from path": (manifest(compacted_from=["../../victim"]), "compacted_from"),
    "bad checksum field": (manifest(checksums={"questions": {"bytes": 1, "sha256": "../x"}}), "checksums"),
    "negative rows": (manifest(rows={"questions": -1}), "field 'rows'"),
    "rows of another table": (manifest(rows={"failures": 2}), "field 'rows'"),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_a_crafted_manifest_is_named_moved_alone_and_nothing_outside_is_read_or_moved(tmp_path, capsys, watch,
                                                                                        case):
    out = store(tmp_path)
    victim = victim_of(tmp_path, out)
    m, named = CRAFTED[case]
    text = json.dumps(m).replace("/VICTIM", str(victim))
    (out / "_commits" / "p" / f"{CID}.json").write_text(text)
    before_outside, before = victim.read_bytes(), tree(out)
    watch(victim.parent)
    rc, o = cli(capsys, "store", "check", "--out", out)
    assert rc == 1 and f"DAMAGED _commits/p/{CID}.json" in o and named in o, o
    assert tree(out) == before
    for cmd in (["compact"], ["stats"]):
        rc, o = cli(capsys, *cmd, "--out", out)
        assert rc == 2 and named in o, o
    assert tree(out) == before  # refused before anything was written (no lock file either)
    rc, o = cli(capsys, "store", "check", "--out", out, "--quarantine")
    assert rc == 0 and o.count("  quarantined ") == 1 and f"quarantined _commits/p/{CID}.json" in o, o
    assert cli(capsys, "store", "check", "--out", out)[0] == 0
    assert _SEEN == []
    assert victim.read_bytes() == before_outside


def test_switched_off_name_checks_and_containment_a_crafted_manifest_moves_a_file_outside(tmp_path, capsys,
                                                                                          monkeypatch):
    out = store(tmp_path)
    victim = victim_of(tmp_path, out)
    (out / "_commits" / "p" / f"{CID}.json").write_text(json.dumps(manifest(files={"../victim": SHARD})))
    monkeypatch.setattr(M, "_check_files", lambda m, path: None)
    rc, o = cli(capsys, "store", "check", "--out", out)  # the second line of defense: containment
    assert rc == 1 and f"DAMAGED ../victim/{SHARD}: lies outside the store" in o, o
    rc, o = cli(capsys, "store", "check", "--out", out, "--quarantine")
    assert victim.exists() and f"quarantined _commits/p/{CID}.json" in o  # move_aside refuses the outside path
    (out / "_commits" / "p" / f"{CID}.json").write_text(json.dumps(manifest(files={"../victim": SHARD})))
    monkeypatch.setattr(integrity, "inside", lambda out_dir, path: True)
    rc, o = cli(capsys, "store", "check", "--out", out)
    assert rc == 0  # both off: the file outside the store is read as a commit's shard
    cli(capsys, "compact", "--out", out)
    assert not victim.exists()  # and compaction, merging it, deletes it


@pytest.mark.parametrize("rows", ["0", "-5"])
def test_compact_max_rows_below_one_is_a_usage_error(tmp_path, capsys, rows):
    out = store(tmp_path)
    before = tree(out)
    rc, o = cli(capsys, "compact", "--out", out, "--max-rows", rows)
    assert rc == 2 and f"--max-rows {rows}: must be at least 1" in o and tree(out) == before


def test_switched_off_max_rows_check_compact_silently_does_nothing(tmp_path):
    from crucible.pipelines.store import compact as K

    out = store(tmp_path)
    with lock.writer(str(out), "test"):
        rep = K._compact(str(out), "p", 0, "zstd")
    assert rep.manifests_before == rep.manifests_after == 2  # no error, nothing merged: what exit 0 hid


@pytest.mark.parametrize("name", ["../..", "../../etc", "P", "a/b", "", "-x", ".hidden"])
def test_compact_pipeline_must_be_a_pipeline_name_and_nothing_outside_is_read(tmp_path, capsys, watch, name):
    out = store(tmp_path)
    (tmp_path / "evil.json").write_text(json.dumps(manifest()))
    before = tree(out)
    watch(tmp_path / "evil.json")
    rc, o = cli(capsys, "compact", "--out", out, f"--pipeline={name}")
    assert rc == 2 and f"--pipeline {name!r} is not a pipeline name" in o and tree(out) == before
    assert _SEEN == []


def test_switched_off_pipeline_check_a_pipeline_argument_lists_json_outside_the_store(tmp_path, monkeypatch):
    out = store(tmp_path)
    (tmp_path / "evil.json").write_text(json.dumps(manifest()))
    monkeypatch.setattr(M, "check_pipeline_name", lambda name, what="": name)
    assert [os.path.realpath(p) for p in M.manifest_files(str(out), "../..")] == [str(tmp_path / "evil.json")]


def test_a_crafted_commit_folder_entry_is_named_and_never_read(tmp_path, capsys):
    out = store(tmp_path)
    bad = out / "_commits" / "Bad Name"
    bad.mkdir()
    shutil.copy(next((out / "_commits" / "p").glob("*.json")), bad / "x.json")
    (out / "_commits" / "notes.txt").write_text("x")
    rc, o = cli(capsys, "store", "check", "--out", out)
    assert rc == 1 and "DAMAGED _commits/Bad Name: not a pipeline's commit folder" in o
    assert "DAMAGED _commits/notes.txt" in o
    assert M.pipelines_of(str(out)) == ["p"]
    rc, o = cli(capsys, "store", "check", "--out", out, "--quarantine")
    assert rc == 0 and (out / "_quarantine").exists() and not bad.exists()


def test_a_table_folder_linked_outside_the_store_is_named_and_its_files_stay(tmp_path, capsys):
    out = store(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(out / "questions", elsewhere)
    (out / "questions").symlink_to(elsewhere)
    before = tree(elsewhere)
    rc, o = cli(capsys, "store", "check", "--out", out)
    assert rc == 1 and "lies outside the store (a linked folder)" in o
    cli(capsys, "store", "check", "--out", out, "--quarantine")
    assert tree(elsewhere) == before


def test_quarantine_never_overwrites_an_earlier_copy(tmp_path):
    out = store(tmp_path)
    path = out / "failures" / SHARD
    path.write_bytes(b"first")
    assert integrity.move_aside(str(out), [(str(path), {"why": "t"})], "s") == [f"failures/{SHARD}"]
    path.write_bytes(b"second")
    assert integrity.move_aside(str(out), [(str(path), {"why": "t"})], "s") == []  # refused, left in place
    assert (out / "_quarantine" / "s" / "failures" / SHARD).read_bytes() == b"first" and path.exists()
    evidence = json.loads((out / "_quarantine" / "s" / "evidence.json").read_text())
    assert [e["sha256"] for e in evidence][:1] == [integrity.digest(b"first")["sha256"]]


def test_unreferenced_shards_are_listed_for_readers(tmp_path):
    out = store(tmp_path)
    assert M.unreferenced_shards(str(out)) == []
    m = next((out / "_commits" / "p").glob("*.json"))
    m.unlink()
    assert M.unreferenced_shards(str(out)) == sorted(f"{t}/part-p-{m.stem}.parquet" for t in C.TABLES)


def test_shards_of_a_writer_holding_the_lock_are_in_flight_not_damage(tmp_path, capsys, monkeypatch):
    out = store(tmp_path)
    next((out / "_commits" / "p").glob("*.json")).unlink()  # as if its manifest were not written yet
    hold = ("import sys, time; from crucible.pipelines.store import lock; lock.acquire(sys.argv[1], 'test writer'); "
            "print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", hold, str(out)], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout.readline().strip() == "held"
        rc, o = cli(capsys, "store", "check", "--out", out)
        assert rc == 0 and "in flight" in o and "test writer" in o, o
        monkeypatch.setattr(lock, "busy", lambda out_dir: None)  # switched off: a live commit looks lost
        rc, o = cli(capsys, "store", "check", "--out", out)
        assert rc == 1 and "unreferenced shard" in o
    finally:
        proc.kill()
        proc.wait()
