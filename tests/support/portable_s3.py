"""Helpers for the #27 acceptance runs into ``s3://`` (tests/integration/test_portable_s3_*.py): the ``--s3_*``
flags that point a run's workers (and, since ``run`` sets FileSystems from them, its driver) at the loopback S3
server, a store's rows as plain tuples, and a driver of the Docker-free swe-curate graph run as a process of its
own, so a test can SIGKILL its workers and bound it with a timeout::

    python -m tests.support.portable_s3 OUT ROWS_FILE [--set=KEY=VALUE ...] [beam flags...]
"""

from __future__ import annotations

import collections
import sys

from pipelines.store import catalog

SWE_TABLES = ("swe_instances", "swe_validations", "swe_trajectories", "failures")
BROWSE_TABLES = ("questions", "browse_trajectories", "failures")
# columns a rerun or another process legitimately changes: timestamps, run ids, measured durations
VOLATILE = ("created_at", "run_id", "duration_s")


def s3_flags(endpoint: str) -> list[str]:
    """Beam's S3Options for an S3-compatible server (what a user passes in ``run.beam_args``)."""
    return [f"--s3_endpoint_url={endpoint}", "--s3_access_key_id=test", "--s3_secret_access_key=test",
            "--s3_region_name=us-east-1"]


def read_with_flags(endpoint: str) -> None:
    """Point this process's store reads (FileSystems' S3 options) at ``endpoint`` by the same ``--s3_*`` flags."""
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    FileSystems.set_options(PipelineOptions(s3_flags(endpoint)))


def rows(out: str, tables: tuple[str, ...], order: str = "all") -> dict[str, list[tuple]]:
    """Each table's rows, volatile columns left out, sorted (a ``select *`` that exists in every store)."""
    got = {}
    for t in tables:
        cols, _ = catalog.query(out, f"select * from {t} limit 0")
        drop = [c for c in VOLATILE if c in cols]
        exclude = f" exclude ({', '.join(drop)})" if drop else ""
        got[t] = catalog.query(out, f"select *{exclude} from {t} order by {order}")[1]
    return got


def keys(out: str, table: str, key: str) -> collections.Counter:
    """How many times each ``key`` value is read from ``table`` (a duplicate reads 2)."""
    return collections.Counter(r[0] for r in catalog.query(out, f"select {key} from {table}")[1])


def main(argv: list[str]) -> int:
    from tests.support import portable_swe as ps

    out, rows_file, rest = argv[0], argv[1], argv[2:]
    sets = [a[len("--set="):] for a in rest if a.startswith("--set=")]
    ps.run_graph(ps.small_config(out, rows_file, *sets), beam_args=[a for a in rest if not a.startswith("--set=")])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
