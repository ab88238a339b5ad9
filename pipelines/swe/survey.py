"""`crucible sandbox survey`: how many of N sources end with a working environment, and why the rest do not.

Each source (an sdist ``NAME==VERSION`` or a git ``owner/name@REV`` through ``sandbox.repo_url_template``; they
differ only in :func:`obtain`) goes download -> infer -> build -> clean test run -> repair ladder
(``crucible.sandbox.repair``) and
becomes one ``sandbox_surveys`` row (schema ``schemas/sandbox_survey.json``), plus a ``failures`` row
naming the last rung and the deciding log line when it stops short of ``mostly_passing``. Rows are
committed per source, so a rerun skips what is done (resumable); sources run ``survey_parallel`` at once.
It commits to the store (and may run the LLM repair agent), so it sits above the sandbox, beside the SWE
pipeline whose environments it measures.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from crucible.pipelines.store.commit import (
    ItemResult,
    commit_items,
    done_keys,
    failure_row,
    stable_hash,
    utc_now,
)
from crucible.sandbox import api, repair, sources
from crucible.sandbox.asof import commit_date, source_date
from crucible.sandbox.recipes import funnel_counts

log = logging.getLogger(__name__)
PIPELINE = "sandbox_survey"


class SourceKind(str, Enum):
    SDIST = "sdist"  # NAME==VERSION from the package index
    GIT = "git"  # owner/name@REV through sandbox.repo_url_template


@dataclass(frozen=True)
class Source:
    """One source of a survey; ``id`` (``sdist:NAME==VERSION`` / ``git:owner/name@REV``) keys its row."""
    kind: SourceKind
    spec: str

    @property
    def id(self) -> str:
        return f"{self.kind.value}:{self.spec}"


REPO_REV_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*)@([A-Za-z0-9][A-Za-z0-9._/+-]*)$")


def _read_lines(path: Path, pattern: re.Pattern, expected: str) -> list[str]:
    out: list[str] = []
    for i, raw in enumerate(Path(path).read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if not pattern.match(line):
            raise ValueError(f"{path}:{i}: {line!r} is not {expected}")
        if line not in out:
            out.append(line)
    return out


def read_sources(path: Path) -> list[str]:
    """``NAME==VERSION`` lines of ``path`` (blank lines and ``#`` comments skipped); a malformed line is an
    error naming the file and line."""
    return _read_lines(path, sources.SDIST_RE, "NAME==VERSION (e.g. requests==2.28.1)")


def read_repos(path: Path) -> list[str]:
    """``owner/name@REV`` lines of ``path`` (REV: a tag, branch or sha; blank lines and ``#`` comments
    skipped); a malformed line is an error naming the file and line."""
    return _read_lines(path, REPO_REV_RE, "owner/name@REV (REV: a tag, branch or commit sha, "
                       "e.g. pallets/flask@v1.1.2)")


def survey_row(source: str, commit: str | None, date: str | None, res: dict, seconds: float, run_id: str) -> dict:
    """The ``sandbox_surveys`` row for one source (``res`` from :func:`crucible.sandbox.repair.attempt`)."""
    c = res.get("counts") or {}
    stop = res.get("stop") if res["stage"] != "mostly_passing" else None
    return {
        "survey_id": stable_hash(PIPELINE, source), "source": source, "commit": commit, "source_date": date,
        "stage": res["stage"], "python": res.get("python"), "as_of": res.get("as_of"), "env_key": res.get("env_key"),
        "tests_collected": int(res.get("tests_collected") or 0), "passed": int(c.get("PASSED", 0) + c.get("XPASS", 0)),
        "failed": int(c.get("FAILED", 0) + c.get("ERROR", 0)), "skipped": int(c.get("SKIPPED", 0) + c.get("XFAIL", 0)),
        "rungs": res.get("rungs") or [], "stop_rung": stop["rung"] if stop else None,
        "stop_reason": stop["reason"] if stop else None, "stop_line": stop["line"] if stop else None,
        "attempts": int(res.get("attempts") or 0), "reused_from": res.get("reused_from"),
        "reuse_fallbacks": int(res.get("reuse_fallbacks") or 0), "build_seconds": float(res.get("build_seconds") or 0.0),
        "test_seconds": float(res.get("test_seconds") or 0.0), "seconds": round(seconds, 1),
        "recipe": res.get("recipe"), "run_id": run_id, "created_at": utc_now(),
    }


def failure_for(row: dict) -> dict | None:
    """The ``failures`` row of a source that stopped short: last rung + deciding line in the reason."""
    if row["stage"] == "mostly_passing":
        return None
    reason = (f"stopped at {row['stage']} after {len(row['rungs'])} rung(s) (last: {row['stop_rung'] or 'none'}): "
              f"{row['stop_reason']} | log: {row['stop_line']}")
    return failure_row(pipeline=PIPELINE, stage=row["stage"], kind="error", reason=reason[:2000],
                       run_id=row["run_id"], table="sandbox_surveys", item_key=row["source"])


def obtain(settings, src: Source):
    """The checkout of ``src`` and its date: an sdist as a one-commit repo dated by PKG-INFO's mtime or the
    index's upload day; a git source cloned through ``settings.repo_url_template`` at its REV, dated by the
    commit (None when the commit carries the fixed date: a checkout's file mtimes say nothing)."""
    if src.kind is SourceKind.SDIST:
        co = sources.from_sdist(src.spec, settings.cache_dir / "sdists")
        name, _, version = src.spec.partition("==")
        return co, source_date(co.path, lambda: sources.index_upload_date(name, version,
                                                                          remote_env=settings.pip_env))
    repo, _, rev = src.spec.rpartition("@")
    # one clone per source: two revisions of a repo surveyed at once must not share a worktree
    co = sources.from_git(repo, rev, settings.cache_dir / "survey-git" / stable_hash(src.id, n=12),
                          settings.repo_url_template)
    return co, commit_date(co.path)


def survey_one(client, settings, src: Source, run_id: str, llm_fix=None) -> dict:
    """One source through the whole ladder; returns its ``sandbox_surveys`` row (never raises for a bad
    source). Sdists and git sources differ only in :func:`obtain`. ``llm_fix``: a
    ``crucible.pipelines.swe.llm_repair.runner.Repairer`` run when the ladder ends short (its ``llm_repair`` rung joins
    ``rungs``)."""
    t0 = time.monotonic()
    try:
        co, date = obtain(settings, src)
    except sources.SourceError as exc:
        res = {"stage": "attempted", "rungs": [], "attempts": 0,
               "stop": {"rung": None, "kind": "source", "reason": str(exc), "line": str(exc)[-500:]}}
        return survey_row(src.id, None, None, res, time.monotonic() - t0, run_id)
    with api.exported(co.path) as tree:
        try:
            res = repair.attempt(client, settings, tree, co.name, date=date, max_rungs=settings.repair_max_rungs)
            if llm_fix is not None and res["stage"] != "mostly_passing":
                res = llm_fix(client, tree, co.name, res, date)
        except Exception as exc:  # docker daemon trouble etc.: recorded, the survey goes on
            log.exception("survey %s", src.id)
            res = {"stage": "attempted", "rungs": [], "attempts": 0,
                   "stop": {"rung": None, "kind": "infra", "reason": f"{type(exc).__name__}: {exc}",
                            "line": str(exc)[-500:]}}
    return survey_row(src.id, co.commit, date, res, time.monotonic() - t0, run_id)


def run_survey(client, settings, srcs: list[Source], out_dir: str, run_id: str, parallel: int,
               on_row=None, one=survey_one) -> list[dict]:
    """Survey every source not yet committed under ``out_dir``; each row is committed when it is done.
    ``one`` surveys one source (tests pass a fake)."""
    done = done_keys(out_dir, PIPELINE)
    todo = [s for s in srcs if s.id not in done]
    rows: list[dict] = []
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futs = {pool.submit(one, client, settings, s, run_id): s for s in todo}
        for fut in as_completed(futs):
            row = fut.result()
            item = ItemResult(row["source"]).add("sandbox_surveys", row)
            fail = failure_for(row)
            if fail:
                item.add("failures", fail)
            commit_items(out_dir, PIPELINE, run_id, [item])
            rows.append(row)
            if on_row:
                on_row(row)
    return rows


def funnel(rows: list[dict]) -> dict:
    """Cumulative stage counts, rungs used by the sources that got through, stop reasons of the rest."""
    through = [r for r in rows if r["stage"] == "mostly_passing"]
    return {
        "sources": len(rows), "stages": funnel_counts([r["stage"] for r in rows]),
        "rungs_of_passing": dict(Counter(g["kind"] for r in through for g in r["rungs"])),
        "passing_with_rungs": sum(1 for r in through if r["rungs"]),
        "stops": dict(Counter(f"{r['stage']}: {r['stop_rung'] or 'no rung'}" for r in rows if r not in through)),
        "median_seconds": sorted(r["seconds"] for r in rows)[len(rows) // 2] if rows else 0.0,
    }
