"""Damage is contained and named: a bad shard never breaks other tables or crashes a command; bad
manifests are errors naming file and field; exports refuse 0 rows and take parameters, not pasted SQL."""

import json
import os
from pathlib import Path

import pytest

from crucible.pipelines.cli import main
from crucible.pipelines.store import catalog, lock
from crucible.pipelines.store import commit as C
from crucible.pipelines.store.records import TABLES
from tests.support.sample_pipeline import make_item


def store(tmp_path, n_commits=3, per=2, compression="zstd"):
    out = str(tmp_path / "out")
    C.ensure_layout(out)
    infos = [C.commit_items(out, "p", "r", [make_item(c * per + j) for j in range(per)], compression)
             for c in range(n_commits)]
    return out, infos


def run_cli(capsys, *argv):
    rc = main(list(argv))
    o = capsys.readouterr()
    assert "Traceback" not in o.err
    return rc, o.out, o.err


def test_a_corrupt_shard_is_named_left_out_and_quarantined_and_the_rerun_restores_it(tmp_path, capsys):
    out, infos = store(tmp_path)
    bad = Path(infos[1].files["failures"])
    bad.write_bytes(b"PAR1 this is not parquet PAR1")
    name = f"failures/{bad.name}"
    rc, o, err = run_cli(capsys, "query", "select count(*) from questions", "--out", out, "--csv")
    assert rc == 0 and o.splitlines() == ["count_star()", "6"] and name in err  # other tables keep working
    rc, o, err = run_cli(capsys, "stats", "--out", out, "--json")
    s = json.loads(o)
    assert rc == 0 and s["counts"]["failures"] == 4 and s["unreadable_shards"] == [name] and name in err
    rc, o, err = run_cli(capsys, "export", "--format", "verl", "--out", out, "--dest", str(tmp_path / "v.parquet"))
    assert rc == 0 and "wrote 6 rows" in o
    rc, o, err = run_cli(capsys, "compact", "--out", out)
    assert rc == 1 and bad.name in err and "not compacted" in err
    assert len(C.read_manifests(out, "p")) == 3  # nothing merged, nothing lost
    rc, o, err = run_cli(capsys, "store", "check", "--out", out)
    assert rc == 1 and f"DAMAGED {name}" in o and "--quarantine" in o
    rc, o, err = run_cli(capsys, "store", "check", "--out", out, "--quarantine")
    assert rc == 0 and "quarantined" in o
    moved = sorted(str(p.relative_to(tmp_path / "out" / "_quarantine")).split("/", 1)[1]
                   for p in (tmp_path / "out" / "_quarantine").rglob("*") if p.is_file() and p.name != "evidence.json")
    assert moved == sorted([f"_commits/p/{infos[1].commit_id}.json"] + [f"{t}/{Path(f).name}"
                                                                          for t, f in infos[1].files.items()])
    rec = C.recover(out, "p")
    lock.release(out, force=True)
    assert rec.done_keys == {"item0000", "item0001", "item0004", "item0005"}  # commit 2's items are redone
    C.commit_items(out, "p", "r", [make_item(2), make_item(3)])
    assert run_cli(capsys, "store", "check", "--out", out)[0] == 0
    for t in TABLES:
        assert catalog.query(out, f"select count(*) from {t}")[1] == [(6,)]


def test_damaged_data_pages_behind_a_good_footer_are_found_by_the_deep_check(tmp_path, capsys):
    out, infos = store(tmp_path, n_commits=2, per=25, compression="none")
    path = Path(infos[0].files["failures"])
    b = bytearray(path.read_bytes())
    b[8:400] = b"\xff" * 392  # page headers and data; the footer at the end is intact
    path.write_bytes(bytes(b))
    assert catalog.check_footer(str(path))[1] is None
    rc, o, _ = run_cli(capsys, "store", "check", "--out", out, "--fast")
    assert rc == 0  # footers and row counts only: this damage passes
    rc, o, _ = run_cli(capsys, "store", "check", "--out", out)
    assert rc == 1 and f"DAMAGED failures/{path.name}: sha256 differs from its manifest's" in o
    # a manifest of before checksums: the data decode names the same damage
    m = tmp_path / "out" / "_commits" / "p" / f"{infos[0].commit_id}.json"
    m.write_text(json.dumps({k: v for k, v in json.loads(m.read_text()).items() if k != "checksums"}))
    rc, o, _ = run_cli(capsys, "store", "check", "--out", out)
    assert rc == 1 and f"DAMAGED failures/{path.name}: data not readable" in o and "no checksum: 8 shard(s)" in o
    assert path.name in catalog.explain_error(out, RuntimeError("TProtocolException: Invalid data"))


def test_a_shard_a_manifest_names_but_that_is_gone_is_reported(tmp_path, capsys):
    out, infos = store(tmp_path, n_commits=2)
    os.unlink(infos[0].files["questions"])
    rc, o, err = run_cli(capsys, "query", "select count(*) from questions", "--out", out, "--csv")
    assert rc == 0 and o.splitlines()[1] == "2" and "file is missing" in err
    assert run_cli(capsys, "store", "check", "--out", out)[0] == 1


def test_row_count_different_from_the_manifest_is_damage(tmp_path, capsys):
    out, infos = store(tmp_path, n_commits=2)
    Path(infos[0].files["questions"]).write_bytes(Path(infos[1].files["questions"]).read_bytes())
    m = tmp_path / "out" / "_commits" / "p" / f"{infos[0].commit_id}.json"
    d = json.loads(m.read_text())
    d["rows"]["questions"] = 5
    del d["checksums"]  # a manifest of before checksums (with them, the sha256 names the change first)
    m.write_text(json.dumps(d))
    rc, o, _ = run_cli(capsys, "store", "check", "--out", out)
    assert rc == 1 and "holds 2 rows, its manifest says 5" in o


@pytest.mark.parametrize("content, expect", [
    (b"{}", "field 'commit_id' is missing"),
    (b"[1, 2]", "is a JSON list, expected an object"),
    (b"\xff\xfe{", "line 1, column 1: not UTF-8 text (byte 0xff)"),
    (b'{"commit_id": "X", "pipeline": "p", "items": [], "files": {}}', "but the file is named"),
    (b"{not json", "line 1"),
])
def test_a_bad_manifest_is_a_clear_error_naming_file_and_field(tmp_path, capsys, content, expect):
    out, _ = store(tmp_path, n_commits=1)
    bad = tmp_path / "out" / "_commits" / "p" / "0123456789abcdef.json"
    bad.write_bytes(content)
    for cmd in (["stats"], ["query", "select 1"], ["compact"]):
        rc, _, err = run_cli(capsys, *cmd, "--out", out)
        assert rc == 2 and str(bad) in err and expect in err
    rc, o, _ = run_cli(capsys, "store", "check", "--out", out)
    assert rc == 1 and "DAMAGED _commits/p/0123456789abcdef.json" in o and expect in o


def test_manifest_shard_names_cannot_leave_the_table_folder(tmp_path, capsys):
    out, infos = store(tmp_path, n_commits=1)
    m = tmp_path / "out" / "_commits" / "p" / f"{infos[0].commit_id}.json"
    d = json.loads(m.read_text())
    d["files"]["questions"] = "../../etc/passwd.parquet"
    m.write_text(json.dumps(d))
    rc, _, err = run_cli(capsys, "stats", "--out", out)
    assert rc == 2 and "files.questions" in err


# --- exports ----------------------------------------------------------------------------------------------

def _split_store(tmp_path):
    out = str(tmp_path / "out")
    items = []
    for i in range(6):
        it = make_item(i)
        it.rows["questions"][0]["split"] = "rl" if i < 2 else "none"
        it.rows["swe_trajectories"][0]["split"] = "rl"  # no SFT trajectory from swe
        items.append(it)
    C.commit_items(out, "p", "r", items)
    return out


def test_verl_export_takes_the_rl_split_by_default_and_all_with_a_flag(tmp_path, capsys):
    import pyarrow.parquet as pq

    out = _split_store(tmp_path)
    dest = tmp_path / "v.parquet"
    rc, o, _ = run_cli(capsys, "export", "--format", "verl", "--out", out, "--dest", str(dest))
    assert rc == 0 and pq.read_table(dest).num_rows == 2
    assert {r["split"] for r in pq.read_table(dest).column("extra_info").to_pylist()} == {"rl"}
    rc, o, _ = run_cli(capsys, "export", "--format", "verl", "--out", out, "--dest", str(dest), "--all-splits", "--force")
    assert rc == 0 and pq.read_table(dest).num_rows == 6
    rc, o, _ = run_cli(capsys, "export", "--format", "verl", "--out", out, "--dest", str(dest), "--split", "none", "--force")
    assert rc == 0 and pq.read_table(dest).num_rows == 4


def test_an_export_of_zero_rows_fails_and_writes_nothing(tmp_path, capsys):
    out = _split_store(tmp_path)
    dest = tmp_path / "empty.parquet"
    rc, _, err = run_cli(capsys, "export", "--format", "verl", "--out", out, "--dest", str(dest), "--split", "sft")
    assert rc == 2 and "nothing to export" in err and "split 'sft'" in err and not dest.exists()
    rc, _, err = run_cli(capsys, "export", "--format", "trl", "--source", "swe", "--out", out, "--dest", str(dest))
    assert rc == 2 and "no trajectories with an SFT split" in err and not dest.exists()


def test_split_is_a_parameter_not_sql(tmp_path, capsys):
    out = _split_store(tmp_path)
    dest = tmp_path / "x.parquet"
    rc, _, err = run_cli(capsys, "export", "--format", "verl", "--out", out, "--dest", str(dest),
                         "--split", "x' OR '1'='1")
    assert rc == 2 and "nothing to export" in err and not dest.exists()  # pasted SQL would export all 6


def test_recover_moves_a_commit_whose_shard_is_gone_aside_so_its_items_are_redone(tmp_path):
    out, infos = store(tmp_path, n_commits=2)
    os.unlink(infos[0].files["swe_instances"])  # e.g. deleted by a writer that outlived its lock
    rec = C.recover(out, "p")
    lock.release(out, force=True)
    assert rec.done_keys == {"item0002", "item0003"}  # not counted as done: the rerun redoes them
    assert len(rec.quarantined) == len(TABLES)  # the manifest and the 5 shards still there
    assert rec.orphans == []
    q = tmp_path / "out" / "_quarantine"
    assert len([p for p in q.rglob("*") if p.is_file() and p.name != "evidence.json"]) == len(TABLES)
    C.commit_items(out, "p", "r", [make_item(0), make_item(1)])
    for t in TABLES:
        assert catalog.query(out, f"select count(*) from {t}")[1] == [(4,)]
