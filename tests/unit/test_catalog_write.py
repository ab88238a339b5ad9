"""The catalog file is published through the one atomic writer: DuckDB builds a scratch file, fsio renames a
copy into place with DuckDB's mode; a failed build leaves the old catalog as it was and no scratch behind."""

import os

import duckdb
import pytest

from crucible.pipelines.store import catalog


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def test_refresh_writes_a_readable_catalog_with_duckdbs_mode_and_no_scratch(tmp_path):
    path = catalog.refresh_catalog(str(tmp_path))
    con = duckdb.connect(path, read_only=True)
    try:
        views = {r[0] for r in con.execute("select view_name from duckdb_views() where not internal").fetchall()}
    finally:
        con.close()
    assert {"questions", "failures"} <= views
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~_umask()  # as DuckDB made it, not mkstemp's 0600
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_a_failed_build_keeps_the_old_catalog_and_removes_its_scratch(tmp_path, monkeypatch):
    path = catalog.refresh_catalog(str(tmp_path))
    before = open(path, "rb").read()

    def broken(*a, **k):
        raise RuntimeError("view build failed")

    monkeypatch.setattr(catalog, "_create_views", broken)
    with pytest.raises(RuntimeError, match="view build failed"):
        catalog.refresh_catalog(str(tmp_path))
    assert open(path, "rb").read() == before
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]
