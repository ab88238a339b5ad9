"""Readers never write (issue 25, part 2): `crucible query`, `stats`, `report`, `export` and the viewer, tried as a
careless or hostile user would. Every refusal exits 2 with one line naming what was refused and the fix; every
case hashes each file (and folder) of the store, and the working directory, before and after: byte-identical.
Each defense has a test with it switched off, showing the damage it prevents."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from crucible.pipelines.cli import main
from crucible.pipelines.integrations import export as E
from crucible.pipelines.store import catalog, lock, readonly
from crucible.pipelines.store import commit as C
from crucible.pipelines.store import report as R
from tests.support.sample_pipeline import make_item

SECRET = "host secret: not a store file"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A store of 2 commits (4 items, a row in every table) whose catalog file a writer made current."""
    out = str(tmp_path_factory.mktemp("pristine") / "store")
    C.ensure_layout(out)
    for c in range(2):
        C.commit_items(out, "p", "r", [make_item(c * 2 + j) for j in range(2)])
    catalog.refresh_catalog(out)
    lock.release(out, force=True)
    return Path(out)


@pytest.fixture
def env(pristine, tmp_path, monkeypatch):
    """A fresh copy of the store, a host file outside it, and an empty working directory."""
    out = tmp_path / "store"
    shutil.copytree(pristine, out)
    (tmp_path / "secret.txt").write_text(SECRET + "\n")
    (tmp_path / "secret.csv").write_text("a,b\n" + SECRET + ",1\n")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return out


def snapshot(root: Path) -> dict[str, str]:
    """Every file (sha256) and folder under ``root``."""
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>")
            for p in sorted(root.rglob("*"))}


def shard(out: Path, table: str = "questions") -> Path:
    return sorted((out / table).glob("part-*.parquet"))[0]


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    o = capsys.readouterr()
    assert "Traceback" not in o.err
    return rc, o.out, o.err


def query(capsys, out: Path, sql: str, *flags: str) -> tuple[int, str, str]:
    return run_cli(capsys, "query", sql, "--out", out, *flags)


def refused(capsys, out: Path, sql: str, *expect: str) -> str:
    """``sql`` through `crucible query`: exit 2, one line naming ``expect``, nothing written, nothing leaked."""
    before, cwd = snapshot(out), Path.cwd()
    rc, o, err = query(capsys, out, sql)
    lines = [ln for ln in err.splitlines() if ln.startswith("crucible: ")]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("crucible: error: query refused: "), err
    for e in expect:
        assert e in lines[0], lines[0]
    assert "SELECT statements over the views only" in lines[0]  # the fix
    assert SECRET not in o + err and o == ""
    assert snapshot(out) == before and list(cwd.iterdir()) == []
    return lines[0]


# --- writes through SQL: refused before DuckDB runs them -------------------------------------------------------

WRITES = [
    ("copy (select 1 as a) to '{shard}'", "COPY statements"),
    ("copy (select 1 as a) to '{shard}' (use_tmp_file false)", "COPY statements"),
    ("copy questions to '{out}/questions/part-new.parquet'", "COPY statements"),
    ("copy questions to '{tmp}/elsewhere.csv'", "COPY statements"),
    ("copy questions from '{tmp}/secret.csv'", "COPY statements"),
    ("select 1; copy (select 1 as a) to '{shard}' (use_tmp_file false)", "COPY statements"),
    ("with x as (copy (select 1 as a) to '{shard}' (use_tmp_file false)) select * from x", "COPY inside a query"),
    ("select * from (with x as (copy (select 1 as a) to '{shard}') select 1)", "COPY inside a query"),
    ("with x as (insert into questions (question_id) values ('q') returning *) select * from x", "INSERT inside"),
    ("with x as (delete from questions returning *) select * from x", "DELETE inside"),
    ("attach '{out}/crucible.duckdb' as c", "ATTACH statements"),
    ("attach '{out}/crucible.duckdb' as c; drop view c.questions", "ATTACH statements"),
    ("attach ':memory:' as m", "ATTACH statements"),
    ("detach memory", "DETACH statements"),
    ("install httpfs", "LOAD statements"),
    ("load httpfs", "LOAD statements"),
    ("update extensions", "unknown statement type"),
    ("set enable_external_access = true", "SET statements"),
    ("reset lock_configuration", "SET statements"),
    ("set threads = 1", "SET statements"),
    ("use memory", "SET statements"),
    ("set variable x = 1", "SET statements"),
    ("pragma enable_profiling", "PRAGMA statements"),
    ("import database '{tmp}'", "PRAGMA statements"),
    ("export database '{tmp}/dump'", "EXPORT statements"),
    ("create table t as select * from questions", "CREATE statements"),
    ("create temp view v as select 1", "CREATE statements"),
    ("create macro m(x) as x", "CREATE statements"),
    ("create secret (type s3, key_id 'k', secret 's')", "CREATE statements"),
    ("drop view questions", "DROP statements"),
    ("alter view questions rename to q2", "ALTER statements"),
    ("insert into questions (question_id) values ('q')", "INSERT statements"),
    ("update questions set question = 'x'", "UPDATE statements"),
    ("delete from questions", "DELETE statements"),
    ("checkpoint", "CALL statements"),
    ("vacuum", "VACUUM statements"),
    ("begin transaction", "TRANSACTION statements"),
    ("prepare p as select 1", "PREPARE statements"),
    ("explain analyze copy questions to '{tmp}/x.csv'", "EXPLAIN statements"),
    ("pivot questions on hops using count(*)", "PIVOT"),
    ("select * from query('select 1')", "table function query()"),
    ("select * from json_execute_serialized_sql(json_serialize_sql("
     "'with x as (copy (select 1 as a) to ''{shard}'' (use_tmp_file false)) select 1'))",
     "table function json_execute_serialized_sql()"),
    ("select * from enable_profiling(save_location = '{shard}', format = 'json')", "table function enable_profiling()"),
    ("select * from enable_logging(storage = 'file', storage_path = '{out}/questions')",
     "table function enable_logging()"),
    ("select * from checkpoint()", "table function checkpoint()"),
    ("select * from sniff_csv('/etc/passwd')", "table function sniff_csv()"),  # read host files in duckdb < 1.1
]


@pytest.mark.parametrize("sql,expect", WRITES, ids=[w[0][:48] for w in WRITES])
def test_a_write_or_a_setting_through_query_is_refused_and_nothing_changes(env, capsys, sql, expect):
    refused(capsys, env, sql.format(shard=shard(env), out=env, tmp=env.parent), expect)


# --- files outside the store's committed ones: refused by DuckDB's allow-list -----------------------------------

READS = [
    "select * from read_text('/etc/passwd')",
    "select * from read_text('{tmp}/secret.txt')",
    "select * from read_blob('{tmp}/secret.txt')",
    "select * from read_csv('{tmp}/secret.csv')",
    "select * from read_csv_auto('/etc/passwd')",
    "select * from read_json('{tmp}/secret.txt')",
    "select * from read_text('{out}/crucible.duckdb')",
    "select * from read_text('{out}/_commits/p/' || '{commit}')",
    "select * from read_parquet('{out}/crucible.duckdb')",
    "select * from read_text('{out}/questions/../../secret.txt')",
    "select * from glob('/*')",
    "select * from glob('{out}/questions/*')",
    "select * from read_parquet('https://example.invalid/x.parquet')",
    "select * from read_parquet('s3://bucket/x.parquet')",
]


@pytest.mark.parametrize("sql", READS, ids=[r[:48] for r in READS])
def test_a_file_outside_the_committed_ones_is_refused(env, capsys, sql):
    commit = sorted((env / "_commits" / "p").iterdir())[0].name
    refused(capsys, env, sql.format(out=env, tmp=env.parent, commit=commit), "Permission Error", "committed files only")


def test_ordinary_reads_still_work(env, capsys):
    before = snapshot(env)
    rc, o, _ = query(capsys, env, "select count(*) as n from questions", "--json")
    assert rc == 0 and json.loads(o) == {"n": 4}
    rc, o, _ = query(capsys, env, "select q.question_id, count(t.traj_id) as k from questions q join "
                                  "browse_trajectories t using (question_id) group by 1 order by 1", "--csv")
    assert rc == 0 and o.splitlines()[0] == "question_id,k" and len(o.splitlines()) >= 2
    for sql in ("describe questions", "show tables", "summarize failures", "from swe_instances limit 1",
                "with recursive r(n) as (select 1 union all select n + 1 from r where n < 3) select sum(n) from r",
                "select hops, avg(len(question)) over (partition by hops) from questions",
                "select unnest([1, 2]) as x union all select 3", "select * from range(3)",
                f"select count(*) from read_parquet('{shard(env)}')",
                f"select num_rows from parquet_file_metadata('{shard(env)}')",
                "select current_setting('enable_external_access') as ext",
                "select question_id from questions where question like '%' order by 1 limit 2"):
        rc, o, err = query(capsys, env, sql)
        assert rc == 0, (sql, err)
    rc, o, _ = query(capsys, env, "select current_setting('enable_external_access') as ext", "--csv")
    assert o.splitlines() == ["ext", "False"]  # locked down, and it says so
    assert snapshot(env) == before and list(Path.cwd().iterdir()) == []


def test_a_bad_query_is_still_exit_1_with_duckdb_s_message(env, capsys):
    rc, _, err = query(capsys, env, "select nope from questions")
    assert rc == 1 and "query failed" in err and 'column "nope" not found' in err


# --- switch-offs: what each layer stops ----------------------------------------------------------------------

def test_without_the_select_gate_copy_to_a_committed_shard_overwrites_it(env, capsys, monkeypatch):
    target = shard(env)
    data = target.read_bytes()
    monkeypatch.setattr(readonly, "check_select", lambda con, sql: None)
    # the allow-list alone lets a committed file be written: DuckDB does not tell reads from writes
    rc, _, err = query(capsys, env, f"copy (select 'gone' as question_id) to '{target}' (use_tmp_file false)")
    assert rc == 0, err
    assert target.read_bytes() != data and pq.read_table(target).column_names == ["question_id"]
    target.write_bytes(data)
    rc, _, _ = query(capsys, env, f"with x as (copy (select 1 as a) to '{target}' (use_tmp_file false)) select 1")
    assert rc == 0 and target.read_bytes() != data


def test_without_the_select_gate_the_lock_down_still_refuses_settings_and_host_files(env, capsys, monkeypatch):
    monkeypatch.setattr(readonly, "check_select", lambda con, sql: None)
    before = snapshot(env)
    for sql, expect in (("set enable_external_access = true", "configuration has been locked"),
                        (f"attach '{env}/crucible.duckdb' as c", "Permission Error"),
                        ("select * from enable_profiling(save_location = '/tmp/x', format = 'json')", "locked"),
                        ("install httpfs", "Permission Error"),
                        (f"copy questions to '{env.parent}/x.csv'", "Permission Error")):
        rc, _, err = query(capsys, env, sql)
        assert rc == 2 and "query refused" in err and expect in err, (sql, err)
    assert snapshot(env) == before and not (env.parent / "x.csv").exists()


def test_without_the_lock_down_a_select_reads_any_host_file(env, capsys, monkeypatch):
    monkeypatch.setattr(readonly, "lock_down", lambda con, files: None)
    rc, o, _ = query(capsys, env, f"select content from read_text('{env.parent}/secret.txt')", "--csv")
    assert rc == 0 and SECRET in o


def test_without_both_layers_attach_and_drop_view_break_the_catalog_file(env, capsys, monkeypatch):
    """The issue's probe: `store check` said ok while plain DuckDB had lost its view."""
    monkeypatch.setattr(readonly, "check_select", lambda con, sql: None)
    monkeypatch.setattr(readonly, "lock_down", lambda con, files: None)
    rc, _, err = query(capsys, env, f"attach '{env}/crucible.duckdb' as c; drop view c.questions")
    assert rc == 0, err
    con = duckdb.connect(str(env / "crucible.duckdb"), read_only=True)
    try:
        with pytest.raises(duckdb.CatalogException):
            con.execute("select count(*) from questions")
    finally:
        con.close()


def test_the_lock_down_holds_on_the_connection_every_reader_gets(env):
    """The viewer, stats, report and export read through catalog.connect: host files and attach fail there too."""
    con = catalog.connect(str(env))
    try:
        assert con.execute("select count(*) from questions").fetchone() == (4,)
        for sql in ("select * from read_text('/etc/passwd')", f"attach '{env}/crucible.duckdb' as c",
                    f"copy questions to '{env}/questions/new.parquet'"):
            with pytest.raises(duckdb.PermissionException):
                con.execute(sql)
        with pytest.raises(duckdb.InvalidInputException, match="locked"):
            con.execute("set enable_external_access = true")
    finally:
        con.close()


def test_the_viewer_reads_through_the_locked_connection_and_writes_nothing(env):
    import urllib.request

    from crucible.pipelines.view.server import ViewServer

    before = snapshot(env)
    with ViewServer(str(env), port=0) as srv:
        with urllib.request.urlopen(srv.url, timeout=10) as r:
            assert r.status == 200
        with pytest.raises(duckdb.PermissionException):
            srv.con.execute("select * from read_text('/etc/passwd')")
    assert snapshot(env) == before


# --- reads never repair: a stale or damaged store is a warning ------------------------------------------------

def damage(out: Path) -> Path:
    bad = shard(out, "failures")
    bad.write_bytes(b"PAR1 not parquet PAR1")
    return bad


@pytest.mark.parametrize("cmd", [["stats"], ["stats", "--json"], ["query", "select count(*) from failures"],
                                 ["report", "--dest", "{tmp}/rep"],
                                 ["export", "--format", "verl", "--all-splits", "--dest", "{tmp}/v.parquet"]])
def test_reading_a_damaged_store_warns_and_rewrites_neither_catalog_nor_card(env, capsys, cmd):
    damage(env)
    before = snapshot(env)
    rc, _, err = run_cli(capsys, *[c.format(tmp=env.parent) for c in cmd], "--out", env)
    assert rc == 0, err
    assert "unreadable shard" in err and "failures/part-" in err  # named (logged once per process, counted always)
    assert f"crucible store check --out {env} --repair" in err
    assert snapshot(env) == before  # crucible.duckdb, README.md and the stamp as they were


def test_switched_off_a_read_repairs_and_plain_duckdb_silently_loses_rows(env, capsys, monkeypatch):
    """The old behaviour (connect refreshed a stale catalog): plain DuckDB then read 2 failures rows, not 4."""
    damage(env)
    monkeypatch.setattr(catalog, "warn_stale", lambda out, cat=catalog.DEFAULT_CATALOG, view=None:
                        catalog.refresh_catalog(out, cat, view))
    before = snapshot(env)
    assert run_cli(capsys, "stats", "--out", env)[0] == 0
    after = snapshot(env)
    assert after["crucible.duckdb"] != before["crucible.duckdb"] and after["README.md"] != before["README.md"]


def test_store_check_repair_is_the_one_way_to_rewrite_the_catalog(env, capsys):
    C.commit_items(str(env), "p", "r", [make_item(9)])  # a writer that did not reach its end: stale catalog
    lock.release(str(env), force=True)
    before = snapshot(env)
    rc, _, err = run_cli(capsys, "query", "select count(*) from questions", "--out", env)
    assert rc == 0 and "--repair" in err and snapshot(env) == before
    rc, o, _ = run_cli(capsys, "store", "check", "--out", env, "--repair")
    assert rc == 0 and f"rewrote {env / 'crucible.duckdb'} and README.md: 24 committed shard(s)" in o
    assert catalog.catalog_current(str(env))
    con = duckdb.connect(str(env / "crucible.duckdb"), read_only=True)
    try:
        con.execute(f"SET file_search_path = '{env}'")
        assert con.execute("select count(*) from questions").fetchone() == (5,)
    finally:
        con.close()
    rc, _, err = run_cli(capsys, "query", "select count(*) from questions", "--out", env)
    assert rc == 0 and "--repair" not in err


def test_compact_is_a_writer_and_leaves_the_catalog_current(env, capsys):
    assert run_cli(capsys, "compact", "--out", env)[0] == 0
    assert catalog.catalog_current(str(env))


# --- export: never into the store, never over a file without --force --------------------------------------------

def export(capsys, out: Path, dest, *flags) -> tuple[int, str, str]:
    return run_cli(capsys, "export", "--format", "verl", "--all-splits", "--out", out, "--dest", dest, *flags)


@pytest.mark.parametrize("where,expect", [
    ("shard", "inside the store"), ("catalog", "inside the store"), ("card", "inside the store"),
    ("store_root", "inside the store"), ("new_in_table", "inside the store"), ("manifest", "inside the store"),
    ("link_into_store", "inside the store"), ("directory", "is a directory"), ("under_a_file", "is a file, not a folder"),
    ("existing", "the file exists; give --force"),
])
def test_export_refuses_a_bad_destination_and_writes_nothing(env, capsys, where, expect):
    tmp = env.parent
    (tmp / "dir").mkdir()
    (tmp / "existing.parquet").write_bytes(b"mine")
    (tmp / "link").symlink_to(env / "questions")
    dest = {"shard": shard(env), "catalog": env / "crucible.duckdb", "card": env / "README.md",
            "store_root": env / "x.parquet", "new_in_table": env / "questions" / "part-x.parquet",
            "manifest": sorted((env / "_commits" / "p").iterdir())[0], "link_into_store": tmp / "link" / "x.parquet",
            "directory": tmp / "dir", "under_a_file": tmp / "secret.txt" / "x.parquet",
            "existing": tmp / "existing.parquet"}[where]
    before, outside = snapshot(env), snapshot(tmp / "dir")
    force = ("--force",) if where != "existing" else ()
    rc, o, err = export(capsys, env, dest, *force)
    assert rc == 2 and expect in err and err.count("\n") == 1 and o == ""
    assert snapshot(env) == before and snapshot(tmp / "dir") == outside
    assert (tmp / "existing.parquet").read_bytes() == b"mine"
    assert not [p for p in tmp.rglob("*.tmp")]


def test_export_replaces_a_file_with_force_and_writes_under_out_export_by_default(env, capsys):
    dest = env.parent / "v.parquet"
    dest.write_bytes(b"old")
    rc, o, _ = export(capsys, env, dest, "--force")
    assert rc == 0 and "wrote 4 rows" in o and pq.read_table(dest).num_rows == 4
    rc, o, _ = run_cli(capsys, "export", "--format", "verl", "--all-splits", "--out", env)
    assert rc == 0 and (env / "export" / "verl-browse.parquet").is_file()
    rc, _, err = run_cli(capsys, "export", "--format", "verl", "--all-splits", "--out", env)
    assert rc == 2 and "--force" in err  # a second export does not silently replace the first


def test_without_the_destination_check_an_export_overwrites_a_committed_shard(env, capsys, monkeypatch):
    target = shard(env)
    data = target.read_bytes()
    monkeypatch.setattr(E, "check_dest", lambda out_dir, dest, force=False: Path(dest))
    rc, o, _ = export(capsys, env, target)
    assert rc == 0 and "wrote 4 rows" in o and target.read_bytes() != data
    assert "reward_model" in pq.read_table(target).column_names  # a verl file where question rows were


def test_a_failed_export_write_leaves_no_temp_file(env, capsys, monkeypatch):
    """Through fsio's atomic writer: the old code left `.v.parquet.tmp` when the write failed."""
    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(E.pq, "write_table", lambda table, where, **k: (where.write(b"PAR1 half"), boom()))
    with pytest.raises(OSError, match="disk full"):
        E.export(str(env), "verl", str(env.parent / "v.parquet"), all_splits=True)
    monkeypatch.undo()
    monkeypatch.setattr(E.fsio.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        E.export(str(env), "verl", str(env.parent / "v.parquet"), all_splits=True)
    assert sorted(p.name for p in env.parent.iterdir()) == ["cwd", "secret.csv", "secret.txt", "store"]


# --- report: its own folder is its only write ---------------------------------------------------------------------

def test_report_writes_only_its_own_folder(env, capsys):
    before = snapshot(env)
    rc, o, _ = run_cli(capsys, "report", "--out", env)
    assert rc == 0 and (env / "report" / "index.html").is_file()
    after = {k: v for k, v in snapshot(env).items() if not k.startswith("report")}
    assert after == before and not [p for p in (env / "report").iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("where", ["questions", "_commits", "root", "catalog"])
def test_report_refuses_a_folder_inside_the_store(env, capsys, where):
    dest = {"questions": env / "questions", "_commits": env / "_commits" / "p", "root": env,
            "catalog": env / "crucible.duckdb"}[where]
    before = snapshot(env)
    rc, _, err = run_cli(capsys, "report", "--out", env, "--dest", dest)
    assert rc == 2 and "inside the store" in err and snapshot(env) == before


def test_without_the_report_folder_check_a_report_lands_in_a_table_folder(env, capsys, monkeypatch):
    monkeypatch.setattr(R, "report_dir", lambda out_dir, dest: Path(dest))
    monkeypatch.setattr("crucible.pipelines.commands.store_cmd._browse_audit_section", lambda *a: [])
    assert run_cli(capsys, "report", "--out", env, "--dest", env / "questions")[0] == 0
    assert (env / "questions" / "index.html").is_file()
