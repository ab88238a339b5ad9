"""Helpers for the #27 acceptance runs into ``s3://`` (tests/integration/test_portable_s3_*.py): the ``--s3_*``
flags that point a run's workers (and, since ``run`` sets FileSystems from them, its driver) at the loopback S3
server, a store's rows as plain tuples, and a driver of the Docker-free swe-curate graph run as a process of its
own, so a test can SIGKILL its workers and bound it with a timeout::

    python -m tests.support.portable_s3 OUT ROWS_FILE [--set=KEY=VALUE ...] [beam flags...]
    python -m tests.support.portable_s3 --browse OUT LLM_BASE_URL [--set=KEY=VALUE ...] [beam flags...]
"""

from __future__ import annotations

import collections
import json
import sys
from collections.abc import Callable

from crucible.pipelines.store import catalog

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


def rows(out: str, tables: tuple[str, ...], volatile: tuple[str, ...] = VOLATILE,
         normalize: Callable[[str, dict], dict] | None = None) -> dict[str, list[tuple]]:
    """Each table's rows without the ``volatile`` columns, through ``normalize(table, row)``, sorted."""
    got = {}
    for t in tables:
        cols, data = catalog.query(out, f"select * from {t}")
        keep = [i for i, c in enumerate(cols) if c not in volatile]
        recs = [{cols[i]: r[i] for i in keep} for r in data]
        got[t] = sorted((tuple((normalize(t, d) if normalize else d).values()) for d in recs), key=repr)
    return got


def search_cache_blind(table: str, row: dict) -> dict:
    """A browse row with its search tool's ``backend_calls`` and ``cache_hits`` summed: which of a question's
    rollouts meets the per-process search cache first depends on where and in what order they run."""
    if table == "browse_trajectories" and row.get("meta"):
        meta = json.loads(row["meta"])
        st = meta.get("tool_stats") or {}
        if "cache_hits" in st:
            st["searches_answered"] = st.pop("cache_hits") + st.pop("backend_calls")
        row = {**row, "meta": json.dumps(meta, sort_keys=True)}
    return row


def differing_columns(out_a: str, out_b: str, table: str, volatile: tuple[str, ...] = VOLATILE) -> dict[str, tuple]:
    """Columns whose sorted values differ between two stores' ``table`` (a failed equality's explanation)."""
    cols, _ = catalog.query(out_a, f"select * from {table} limit 0")
    diff = {}
    for c in cols:
        if c in volatile:
            continue
        a = sorted(map(repr, (r[0] for r in catalog.query(out_a, f"select {c} from {table}")[1])))
        b = sorted(map(repr, (r[0] for r in catalog.query(out_b, f"select {c} from {table}")[1])))
        if a != b:
            diff[c] = next((x[:300], y[:300]) for x, y in zip(a, b) if x != y) if len(a) == len(b) else (len(a), len(b))
    return diff


def running(pids: set[int]) -> list[int]:
    """The pids that are running (not exited, not zombies: a finished job's harnesses linger as zombies)."""
    out = []
    for pid in pids:
        try:
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            out.append(pid)
    return sorted(out)


def keys(out: str, table: str, key: str) -> collections.Counter:
    """How many times each ``key`` value is read from ``table`` (a duplicate reads 2)."""
    return collections.Counter(r[0] for r in catalog.query(out, f"select {key} from {table}")[1])


def browse_config(out: str, base_url: str, *extra: str):
    """The small synth-browse config of the acceptance runs: 6 questions, k=2, the fake LLM at ``base_url``."""
    from crucible.pipelines.config import load_config

    return load_config("browse", [
        f"run.out_dir={out}", "run.run_id=portable-browse", "llm.engine=openai", f"llm.base_urls=[{base_url}]",
        "llm.model=fake-model", "browse.seeds=6", "browse.k=2", "run.progress_every_s=0", "browse.policy=json_step",
        *extra])


def main(argv: list[str]) -> int:
    browse = argv[:1] == ["--browse"]
    out, source, rest = argv[browse], argv[browse + 1], argv[browse + 2:]
    sets = [a[len("--set="):] for a in rest if a.startswith("--set=")]
    beam_args = [a for a in rest if not a.startswith("--set=")]
    if browse:
        from crucible.pipelines.browse.pipeline import run

        run(browse_config(out, source, *sets, f"run.beam_args={json.dumps(beam_args)}"))
    else:
        from tests.support import portable_swe as ps

        ps.run_graph(ps.small_config(out, source, *sets), beam_args=beam_args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
