"""The store through a real Beam pipeline (FnApiRunner), the DuckDB catalog and the CLI."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crucible.pipelines.cli import main
from crucible.pipelines.store import catalog
from crucible.pipelines.store.commit import ensure_layout
from crucible.pipelines.store.records import TABLES
from tests.support.sample_pipeline import run

REPO = Path(__file__).resolve().parents[2]


def _query_json(capsys, out, sql):
    assert main(["query", sql, "--out", str(out), "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_every_record_type_through_beam_then_query_counts(sample_store, capsys):
    # 12 items; items 0, 5, 10 carry an invalid question -> 9 questions + 3 schema failures
    expect = {"questions": 9, "browse_trajectories": 12, "swe_instances": 12, "swe_validations": 12,
              "swe_trajectories": 12, "failures": 12 + 3}
    for table, n in expect.items():
        assert _query_json(capsys, sample_store, f"select count(*) as n from {table}") == [{"n": n}]
    rows = _query_json(capsys, sample_store, "select item_key, path from failures where kind = 'schema' order by 1")
    assert [r["item_key"] for r in rows] == ["item0000", "item0005", "item0010"]
    # nested OpenAI messages are queryable with plain SQL
    rows = _query_json(capsys, sample_store, "select m.tool_calls[1].function.name as tool from "
                                             "(select unnest(messages) as m from browse_trajectories) "
                                             "where m.role = 'assistant' and m.tool_calls is not null limit 1")
    assert rows == [{"tool": "search"}]


def test_query_csv_and_bad_sql(sample_store, capsys):
    assert main(["query", "select question_id, hops from questions order by 1 limit 2", "--out",
                 str(sample_store), "--csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["question_id,hops", "q0001,3", "q0002,4"]
    assert main(["query", "select nope from questions", "--out", str(sample_store)]) == 1
    assert "nope" in capsys.readouterr().err


def test_catalog_file_works_with_plain_duckdb_from_the_data_folder(sample_store, monkeypatch):
    import duckdb

    path = catalog.refresh_catalog(str(sample_store))
    # storage version 64 (v1.0.0): DuckDB 1.0 and later, the CLI included, open it
    head = Path(path).read_bytes()[:16]
    assert head[8:12] == b"DUCK" and int.from_bytes(head[12:16], "little") == 64
    monkeypatch.chdir(sample_store)  # view paths are relative to the data folder
    con = duckdb.connect(path, read_only=True)
    assert con.execute("select count(*) from swe_instances").fetchone()[0] == 12
    con.close()
    monkeypatch.chdir(REPO)
    con = duckdb.connect(path, read_only=True)
    con.execute(f"SET file_search_path = '{sample_store}'")
    assert con.execute("select count(*) from questions").fetchone()[0] == 9
    con.close()


def test_views_exist_with_columns_before_any_data(tmp_path):
    ensure_layout(str(tmp_path))
    con = catalog.connect(str(tmp_path))
    for table in TABLES:
        assert con.execute(f"select count(*) from {table}").fetchone()[0] == 0
    assert con.execute("select question_id, answer_aliases from questions").fetchall() == []
    assert con.execute("select count(*) from failures where kind = 'schema'").fetchone()[0] == 0


def test_rerun_skips_finished_items_and_adds_only_new_ones(tmp_path):
    out = str(tmp_path)
    assert run(out, 6)["processed"] == 6
    assert run(out, 6) == {"skipped": 6, "processed": 0, "orphans": 0}
    assert run(out, 9)["processed"] == 3
    _, rows = catalog.query(out, "select count(*), count(distinct question_id) from questions")
    assert rows == [(9, 9)]


def _table_rows(out):
    rows = {}
    for table in TABLES:
        _, r = catalog.query(out, f"select * exclude (created_at) from {table} order by all")
        rows[table] = r
    return rows


@pytest.mark.slow
def test_sigkill_midway_then_rerun_equals_uninterrupted_run(tmp_path):
    n = 40
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    run(str(clean), n, bad_every=7, commit_every=2)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.sample_pipeline", str(killed), str(n), "--sleep", "0.25",
         "--bad-every", "7", "--commit-every", "2"], cwd=REPO, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    commits = killed / "_commits" / "sample"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if commits.exists() and len(list(commits.glob("*.json"))) >= 3:
            break
        assert proc.poll() is None, "pipeline ended before it could be killed"
        time.sleep(0.05)
    # give it a moment to be inside a commit, then kill without any chance to clean up
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_committed = len(list(commits.glob("*.json")))
    assert 3 <= n_committed < n // 2, "kill must land part-way"
    res = run(str(killed), n, bad_every=7, commit_every=2)
    assert res["skipped"] == 2 * n_committed and res["processed"] == n - 2 * n_committed
    assert _table_rows(str(killed)) == _table_rows(str(clean))


@pytest.mark.slow
def test_multi_process_workers_write_disjoint_shards(tmp_path):
    run(str(tmp_path), 10, commit_every=1, workers=2)
    _, rows = catalog.query(str(tmp_path), "select count(*), count(distinct traj_id) from browse_trajectories")
    assert rows == [(10, 10)]


def test_crucible_console_script_lists_commands_and_queries(sample_store):
    exe = Path(sys.executable).parent / "crucible"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True).stdout
    for cmd in ("stats", "query", "report", "export", "config"):
        assert cmd in out
    res = subprocess.run([str(exe), "query", "select count(*) from swe_instances", "--out", str(sample_store),
                          "--csv"], capture_output=True, text=True, check=True)
    assert res.stdout.splitlines() == ["count_star()", "12"]
