"""Fault injection: a real Beam pipeline (FnApiRunner) and `crucible compact`, each SIGKILLed at random
points, 20+ times, with a reader polling all along. The reader never sees an uncommitted or duplicated
row, and after a final rerun the rows equal an uninterrupted run's, as a multiset."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from crucible.pipelines.store import catalog, lock
from crucible.pipelines.store.records import TABLES
from tests.support.sample_pipeline import run

REPO = Path(__file__).resolve().parents[2]
N = 80
KEYS = {"questions": "question_id", "browse_trajectories": "traj_id", "swe_instances": "instance_id",
        "failures": "failure_id"}


def _rows(out):
    return {t: Counter(json.dumps(r, default=str) for r in catalog.query(out, f"select * exclude (created_at) from {t}")[1])
            for t in TABLES}


def _check_reader(out, clean_ids):
    """What a reader sees at this moment: only rows of committed items, each once."""
    if not (Path(out) / "_commits").exists():
        return 0
    seen = 0
    for table, key in KEYS.items():
        ids = [r[0] for r in catalog.query(out, f"select {key} from {table}")[1]]
        dup = [k for k, n in Counter(ids).items() if n > 1]
        assert not dup, f"{table}: duplicated rows visible: {dup[:3]}"
        assert set(ids) <= clean_ids[table], f"{table}: rows no clean run has"
        seen += len(ids)
    return seen


@pytest.mark.slow
@pytest.mark.integration  # 80 s of real processes killed at random: in the full suite (make test), not the unit one
def test_random_sigkills_of_runs_and_compactions_never_show_bad_rows_and_end_equal(tmp_path):
    rng = random.Random(1234)
    clean, killed = str(tmp_path / "clean"), str(tmp_path / "killed")
    run(clean, N, bad_every=7, commit_every=2)
    lock.release(clean, force=True)
    clean_ids = {t: {r[0] for r in catalog.query(clean, f"select {k} from {t}")[1]} for t, k in KEYS.items()}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    kills = {"run": 0, "compact": 0}
    polls = 0
    i = 0
    while (kills["run"] < 16 or kills["compact"] < 4) and i < 120:  # timing varies with load: count real kills
        i += 1
        has_commits = (Path(killed) / "_commits").exists()  # a compaction needs a store to compact
        if (i % 4 == 0 or kills["run"] >= 16) and kills["compact"] < 4 and has_commits:
            argv, kind, delay = [sys.executable, "-m", "crucible.pipelines.cli", "compact", "--out", killed], "compact", \
                rng.uniform(0.2, 2.0)
        else:
            argv, kind, delay = [sys.executable, "-m", "tests.support.sample_pipeline", killed, str(N), "--sleep",
                                 "0.1", "--bad-every", "7", "--commit-every", "2"], "run", rng.uniform(1.0, 6.0)
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t_kill = time.monotonic() + delay
        while time.monotonic() < t_kill and proc.poll() is None:
            polls += _check_reader(killed, clean_ids) > 0  # a reader that saw committed rows
            time.sleep(0.02)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills[kind] += 1
            proc.wait()
            _check_reader(killed, clean_ids)
        else:
            _check_reader(killed, clean_ids)
            if kind == "run" and proc.returncode == 0:  # finished before its kill: start over, or later runs
                shutil.rmtree(killed)                    # would find nothing left to do (and no kill lands)
    # under load a compaction may finish before its kill: at least 2 killed ones are required
    assert kills["run"] >= 16 and kills["compact"] >= 2, kills
    assert polls >= 10, polls  # readers saw committed rows while runs were killed (fewer polls under load)
    print(f"kills: {kills}, reader polls that saw rows: {polls}")
    run(killed, N, bad_every=7, commit_every=2)  # the rerun finishes the work
    lock.release(killed, force=True)
    assert _rows(killed) == _rows(clean)


# --- damage never deletes: every kind of damage is named, nothing is deleted, restore brings the rows back ------

import pyarrow.parquet as pq  # noqa: E402

from crucible.pipelines.cli import main  # noqa: E402
from crucible.pipelines.store import commit as C  # noqa: E402
from crucible.pipelines.store import integrity  # noqa: E402
from crucible.pipelines.store import manifests as M  # noqa: E402
from tests.support.sample_pipeline import make_item  # noqa: E402

ITEMS = 6  # 3 commits of 2 items: commit 1 (items 2, 3) is the one damaged


@pytest.fixture(autouse=True)
def _log_to_this_tests_stderr():
    """`main` binds logging to the stderr of the test that called it last; start each test unbound."""
    import logging

    logging.getLogger().handlers.clear()


def damage_store(tmp_path):
    out = tmp_path / "out"
    C.ensure_layout(str(out))
    infos = [C.commit_items(str(out), "p", "r", [make_item(2 * c), make_item(2 * c + 1)]) for c in range(3)]
    return out, infos[1].commit_id


def cli(capsys, *argv):
    rc = main(list(argv))
    o = capsys.readouterr()
    assert "Traceback" not in o.err
    return rc, o.out + o.err


def view_rows(out):
    """What a reader sees: every row of every view, sorted."""
    return {t: sorted(json.dumps(r, default=str) for r in catalog.query(str(out), f"select * from {t}")[1])
            for t in TABLES}


def file_rows(out):
    """Every row of every shard file anywhere under the store (table folders and _quarantine/)."""
    rows = Counter()
    for p in Path(out).rglob("part-*.parquet"):
        if p.is_file():
            try:
                t = pq.read_table(p)
            except Exception:  # noqa: BLE001 - a damaged file holds no readable rows
                continue
            rows.update((p.parent.name, json.dumps(r, sort_keys=True, default=str)) for r in t.to_pylist())
    return rows


def shard_digests(out):
    return Counter(integrity.file_digest(str(p))["sha256"] for p in Path(out).rglob("part-*.parquet") if p.is_file())


def truncate(out, cid):
    m = out / "_commits" / "p" / f"{cid}.json"
    m.write_bytes(m.read_bytes()[:40])


def delete(out, cid):
    (out / "_commits" / "p" / f"{cid}.json").unlink()


def duplicate(out, cid):
    shutil.copy(out / "_commits" / "p" / f"{cid}.json", out / "_commits" / "p" / "ffffffffffffffff.json")


def crafted(out, cid):
    m = out / "_commits" / "p" / f"{cid}.json"
    d = json.loads(m.read_text())
    d["files"]["../victim"] = d["files"].pop("questions")
    m.write_text(json.dumps(d))


def no_commits(out, cid):
    shutil.rmtree(out / "_commits")


def edited(out, cid):
    path = out / "questions" / f"part-p-{cid}.parquet"
    t = pq.read_table(path)
    q = [v.replace("Which", "Whose") for v in t.column("question").to_pylist()]
    pq.write_table(t.set_column(t.schema.get_field_index("question"), "question", [q]), path)


def directory(out, cid):
    path = out / "questions" / f"part-p-{cid}.parquet"
    path.unlink()
    path.mkdir()
    (path / "x").write_text("not a shard")


DAMAGE = {  # kind -> (damage, what `store check` names, whether restore alone brings every row back)
    "truncated manifest": (truncate, "unreadable commit manifest", True),
    "deleted manifest": (delete, "unreferenced shard", True),
    "duplicated manifest": (duplicate, "a copy of", True),
    "crafted manifest": (crafted, "names table '../victim'", True),
    "missing _commits/": (no_commits, "_commits/: missing", True),
    "edited shard": (edited, "changed since its commit", False),
    "shard replaced by a directory": (directory, "is a directory, not a shard file", False),
}


def rerun(out):
    """What a rerun of the pipeline does: recover, then commit the items not done."""
    rec = C.recover(str(out), "p")
    todo = [make_item(i) for i in range(ITEMS) if f"item{i:04d}" not in rec.done_keys]
    if todo:
        C.commit_items(str(out), "p", "r", todo)
    lock.release(str(out), force=True)
    return len(todo)


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damage_deletes_nothing_is_named_and_restore_brings_every_intact_row_back(tmp_path, capsys, kind):
    hurt, named, restorable = DAMAGE[kind]
    out, cid = damage_store(tmp_path)
    clean = view_rows(out)
    victim = tmp_path / "victim" / f"part-p-{cid}.parquet"
    victim.parent.mkdir()
    victim.write_bytes(b"outside the store")
    hurt(out, cid)
    rows, digests = file_rows(out), shard_digests(out)
    tree = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    rc, o = cli(capsys, "store", "check", "--out", str(out))
    assert rc == 1 and named in o, o
    assert "delete it" not in o and "and the shards it names" not in o  # no advice that deletes rows
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == tree  # a check changes nothing
    rc, o = cli(capsys, "store", "check", "--out", str(out), "--quarantine")
    assert rc == 0 and "nothing deleted" in o, o
    assert file_rows(out) == rows and shard_digests(out) == digests  # moved, not deleted
    cli(capsys, "compact", "--out", str(out))
    assert not rows - file_rows(out)  # every row still in some file (compaction merges copies)
    C.recover(str(out), "p")
    lock.release(str(out), force=True)
    assert not rows - file_rows(out)
    assert victim.read_bytes() == b"outside the store"
    rc, o = cli(capsys, "store", "restore", "--out", str(out))  # the documented recovery
    assert (rc == 0) == restorable, o
    if restorable:
        assert view_rows(out) == clean and rerun(out) == 0  # every row back, nothing to redo
    else:
        assert "NOT RESTORED" in o and "no intact copy of questions" in o
        assert rerun(out) == 2 and view_rows(out) == clean  # the damaged commit's 2 items are redone
    assert cli(capsys, "store", "check", "--out", str(out))[0] == 0
    assert not rows - file_rows(out)


@pytest.mark.parametrize("kind", ["truncated manifest", "deleted manifest", "missing _commits/"])
def test_restore_alone_right_after_the_damage_brings_every_row_back(tmp_path, capsys, kind):
    out, cid = damage_store(tmp_path)
    clean = view_rows(out)
    DAMAGE[kind][0](out, cid)
    rc, o = cli(capsys, "store", "restore", "--out", str(out))
    assert rc == 0 and "manifest rebuilt from its shards' metadata" in o, o
    assert view_rows(out) == clean and cli(capsys, "store", "check", "--out", str(out))[0] == 0


def test_switched_off_quarantine_the_old_recover_deletes_the_rows_of_a_lost_manifest(tmp_path, monkeypatch):
    """The defense removed (move_aside deleting, as recover did before): the rows are gone for good."""
    out, cid = damage_store(tmp_path)
    delete(out, cid)
    rows = file_rows(out)
    monkeypatch.setattr(integrity, "move_aside", lambda out_dir, entries, *a, **k: C.fsio.delete(
        [p for p, _ in entries]) or [])
    C.recover(str(out), "p")
    lock.release(str(out), force=True)
    lost = rows - file_rows(out)
    assert sum(lost.values()) == 2 * len(TABLES)  # item 2 and 3's rows, every table
    monkeypatch.undo()
    assert main(["store", "restore", "--out", str(out)]) == 0 and sum((rows - file_rows(out)).values()) == 16


def test_switched_off_checksums_an_edited_shard_passes_check_and_compaction_launders_it(tmp_path, capsys,
                                                                                       monkeypatch):
    out, cid = damage_store(tmp_path)
    edited(out, cid)
    rc, o = cli(capsys, "compact", "--out", str(out))
    assert rc == 1 and "changed since its commit" in o  # the group holding it is not merged: the edit stays visible
    real = integrity.verify_shard
    monkeypatch.setattr(integrity, "verify_shard", lambda out_dir, m, table, deep: real(
        out_dir, {k: v for k, v in m.items() if k != "checksums"}, table, deep=deep))
    assert cli(capsys, "store", "check", "--out", str(out))[0] == 0  # the edit passes
    assert cli(capsys, "compact", "--out", str(out))[0] == 0
    monkeypatch.undo()
    rc, o = cli(capsys, "store", "check", "--out", str(out))
    assert rc == 0  # merged with fresh checksums: the edited rows now look committed
    assert any("Whose" in r for r in view_rows(out)["questions"])


def test_switched_off_shard_metadata_a_lost_manifest_cannot_be_rebuilt(tmp_path, capsys, monkeypatch):
    real = integrity.shard_bytes
    monkeypatch.setattr(integrity, "shard_bytes", lambda t, c, commit: real(t, c, None))  # shards as before
    out, cid = damage_store(tmp_path)
    monkeypatch.undo()
    delete(out, cid)
    rc, o = cli(capsys, "store", "check", "--out", str(out))
    assert rc == 1 and "unreferenced shard" in o and "carries no commit metadata" in o
    rc, o = cli(capsys, "store", "restore", "--out", str(out))
    assert rc == 1 and f"questions/part-p-{cid}.parquet" in o and "no commit metadata" in o
    assert len(view_rows(out)["questions"]) == 4  # its rows stay unread (the next run redoes them)


def test_superseded_inputs_are_deleted_only_when_proven_merged(tmp_path, monkeypatch):
    from crucible.pipelines.store.compact import compact

    for proof in (True, False):
        out = tmp_path / f"proof-{proof}"
        for c in range(3):
            C.commit_items(str(out), "p", "r", [make_item(2 * c), make_item(2 * c + 1)])
        rows = file_rows(out)
        monkeypatch.setattr("crucible.pipelines.store.compact.drop_superseded", lambda *a, **k: [])
        compact(str(out), "p")  # killed after its commit point: the inputs are still there
        merged = out / "questions" / M.committed(str(out), "p").live[0]["files"]["questions"]
        merged.write_bytes(merged.read_bytes()[:-100])  # then the merged shard is damaged
        if not proof:
            monkeypatch.setattr(integrity, "proven_merged", lambda *a, **k: None)
        rec = C.recover(str(out), "p")
        lock.release(str(out), force=True)
        monkeypatch.undo()
        if proof:
            assert rec.merged_removed == [] and len(rec.quarantined) == 3 * (1 + len(TABLES))
            assert not rows - file_rows(out)  # the inputs' rows are kept (in _quarantine/)
        else:
            assert len(rec.merged_removed) == 3 * (1 + len(TABLES))
            assert len(rows - file_rows(out)) > 0  # the questions rows are gone


def test_an_edited_shard_whose_manifest_is_lost_is_not_restored_unless_the_data_hash_is_switched_off(
        tmp_path, capsys, monkeypatch):
    """A shard verifies itself: its footer names the sha256 of its data pages, which an edit (that keeps the
    footer's commit metadata, as a rewrite through pyarrow does) no longer matches."""
    out, cid = damage_store(tmp_path)
    path = out / "questions" / f"part-p-{cid}.parquet"
    meta = pq.read_metadata(path).metadata
    edited(out, cid)
    t = pq.read_table(path)
    data = integrity._data_region(integrity.shard_bytes(t, "zstd", None))
    blob = integrity.shard_bytes(t, "zstd", json.loads(meta[integrity.META_KEY]))
    path.write_bytes(blob.replace(integrity.hashlib.sha256(data).hexdigest().encode(), meta[integrity.DATA_KEY]))
    assert integrity.commit_metadata(str(path))["commit_id"] == cid  # edited, its footer as it was
    delete(out, cid)
    rc, o = cli(capsys, "store", "check", "--out", str(out))
    assert rc == 1 and "unreferenced shard" in o
    rc, o = cli(capsys, "store", "restore", "--out", str(out))
    assert rc == 1 and "differ from the sha256 in its own footer" in o, o
    assert len(view_rows(out)["questions"]) == 4  # not served; a rerun redoes items 2 and 3
    monkeypatch.setattr(integrity, "data_intact", lambda path, kv=None: None)
    rc, o = cli(capsys, "store", "restore", "--out", str(out))
    assert rc == 0 and any("Whose" in r for r in view_rows(out)["questions"])  # the edit served as committed


def test_readers_warn_of_rows_no_manifest_names_and_without_the_warning_drop_them_silently(tmp_path, capsys,
                                                                                          monkeypatch):
    out, cid = damage_store(tmp_path)
    delete(out, cid)
    for cmd in (["stats"], ["query", "select count(*) from questions"]):
        rc, o = cli(capsys, *cmd, "--out", str(out))
        assert rc == 0 and "8 shard(s) no manifest names are not read" in o and "crucible store restore" in o, o
    monkeypatch.setattr(M, "unreferenced_shards", lambda out_dir: [])  # switched off: 2 items' rows just vanish
    rc, o = cli(capsys, "stats", "--out", str(out), "--json")
    assert rc == 0 and "warning" not in o and json.loads(o[:o.rindex("}") + 1])["counts"]["questions"] == 4
