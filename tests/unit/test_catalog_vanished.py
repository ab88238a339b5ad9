"""A reader racing a compaction: the shard its views named is gone. Under the read-only lock-down DuckDB reads
the missing file's name as a folder glob and refuses it; ``catalog.query`` rebuilds the views once for that
case only, never for a refusal of anything else."""

from crucible.pipelines.store.catalog import _vanished_shard


def msg(path: str) -> str:
    return f'Permission Error: Cannot access file "{path}/**/*.parquet" - file system operations are disabled'


def test_a_vanished_shard_of_this_store_is_retried(tmp_path):
    gone = tmp_path / "questions" / "part-browse-0123456789abcdef.parquet"
    assert _vanished_shard(str(tmp_path), msg(str(gone)))


def test_a_refusal_outside_the_store_or_of_a_present_file_is_not(tmp_path):
    present = tmp_path / "questions" / "part-browse-0123456789abcdef.parquet"
    present.parent.mkdir()
    present.write_bytes(b"x")
    assert not _vanished_shard(str(tmp_path), msg(str(present)))
    assert not _vanished_shard(str(tmp_path), msg("/etc/part-x.parquet"))
    assert not _vanished_shard(str(tmp_path), msg(str(tmp_path / "questions" / "other.parquet")))
    assert not _vanished_shard(str(tmp_path), 'Permission Error: Cannot access file "/etc/passwd"')
