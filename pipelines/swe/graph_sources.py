"""Sources of the SWE graph, read on the workers (issue #27 item 2).

The driver holds only the config: :func:`source_specs` turns it into O(#sources) small spec elements
(an sdist, a repo to mine, an instances file, the GitHub crawl), and :class:`ExpandSource` expands each spec
on a worker into instance rows (``rows`` output) and the ``failures`` of what could not be read (main output).
The store's committed keys are a PCollection too (:func:`committed_keys`), for the skip-finished join.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import apache_beam as beam

from crucible.pipelines.store import manifests as M
from crucible.pipelines.store.commit import ItemResult
from crucible.pipelines.swe.github import crawl, rejected_path_for
from crucible.pipelines.swe.github_client import RateLimitError, client_from_config
from crucible.pipelines.swe.records import FailureKind, Stage, failure
from crucible.pipelines.swe.runner import read_input
from crucible.pipelines.swe.transforms import InjectBugs, MineCommits

log = logging.getLogger(__name__)


class SourceSpec(NamedTuple):
    kind: str  # sdist | mine | file | github
    ref: str  # name==version, owner/name, a path, or the crawled repos joined by ","


def source_specs(swe: Mapping, limit: int | None) -> list[SourceSpec]:
    """The config's sources as spec elements (``run.limit`` caps the sdists and the mined repos; the rows of
    files and of the crawl are capped after the skip-finished join, see :func:`crucible.pipelines.swe.graph.build`)."""
    sdists = [] if swe["instances_file"] else list(swe["sdists"])
    mine = list(swe["mine"]["repos"])
    if limit:
        sdists, mine = sdists[:limit], mine[:limit]
    specs = [SourceSpec("sdist", s) for s in sdists] + [SourceSpec("mine", r) for r in mine]
    if swe["instances_file"]:
        specs.append(SourceSpec("file", str(swe["instances_file"])))
    if swe["github"]["repos"]:
        specs.append(SourceSpec("github", ",".join(swe["github"]["repos"])))
    return specs


def committed_keys(out_dir: str, pipeline: str):
    """The item keys committed to ``out_dir`` by ``pipeline`` (its live manifests), read where it runs."""
    yield from sorted(M.committed(out_dir, pipeline).done_keys)


def read_file_source(path: str, *, pipeline: str, run_id: str):
    """An instances file -> ItemResults of its bad rows, and its good rows tagged ``rows``."""
    rows, bad, _ = read_input(path, pipeline=pipeline, run_id=run_id, done=frozenset())
    yield from bad
    for r in rows:
        yield beam.pvalue.TaggedOutput("rows", r)


def crawl_source(gh: Mapping, out_dir: str, *, pipeline: str, run_id: str):
    """Crawl ``swe.github.repos`` (resumable: PRs seen by an earlier run cost no request) into
    ``<out_dir>/github/prs.jsonl``: every rejected PR and every repo or rate-limit failure is a ``failures``
    item, the candidate PRs are rows (``rows`` output). One element: the crawl shares one rate limit."""
    path = Path(out_dir) / "github" / "prs.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        s = crawl(client_from_config(gh), list(gh["repos"]), out_path=path, max_pulls=gh["max_pulls"],
                  since=gh["since"])
        log.info("swe: github crawl: %s", s.as_dict())
        errors = dict(s.repo_errors)
    except RateLimitError as exc:
        log.warning("swe: github crawl stopped by the rate limit: %s", exc)
        errors = {",".join(gh["repos"]): f"rate limit: {exc}"}
    for repo, why in errors.items():
        yield ItemResult(f"github:{repo}:{run_id}").add("failures", failure(
            pipeline, Stage.CRAWL, FailureKind.INFRA, why[:2000], run_id, f"github:{repo}"))
    yield from _rejected(rejected_path_for(path), pipeline=pipeline, run_id=run_id)
    if path.exists():
        rows, bad, _ = read_input(str(path), pipeline=pipeline, run_id=run_id, done=frozenset())
        yield from bad
        for r in rows:
            ref = f"{r['repo']}#{r['instance_id'].rsplit('-', 1)[-1]}"
            yield beam.pvalue.TaggedOutput("rows", r.replace(source="pr", source_ref=ref))


def _rejected(path: Path, *, pipeline: str, run_id: str):
    if not path.exists():
        return
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line is repaired by the next crawl
        key = f"github:{r['instance_id']}"
        yield ItemResult(key).add("failures", failure(pipeline, Stage.CRAWL, FailureKind.FILTERED, r["reason"],
                                                      run_id, key, payload={"detail": r.get("detail")}))


class ExpandSource(beam.DoFn):
    """One :class:`SourceSpec` -> instance rows (``rows``) and ItemResults (main: failures, and the
    validation rows of injected bugs that do not apply). sdists and mined repos go through
    :class:`~crucible.pipelines.swe.transforms.InjectBugs` / :class:`~crucible.pipelines.swe.transforms.MineCommits`, set up
    on first use (a worker that only reads files needs no Docker engine)."""

    def __init__(self, cfg: dict, run_id: str, network: str, pipeline: str):
        self.cfg, self.run_id, self.network, self.pipeline = cfg, run_id, network, pipeline
        self._fns: dict = {}

    def _fn(self, kind: str):
        if kind not in self._fns:
            fn = {"sdist": InjectBugs, "mine": MineCommits}[kind](self.cfg, self.run_id, self.network, self.pipeline)
            fn.setup()
            self._fns[kind] = fn
        return self._fns[kind]

    def process(self, spec: SourceSpec):
        kind, ref = spec
        kw = {"pipeline": self.pipeline, "run_id": self.run_id}
        if kind == "file":
            yield from read_file_source(ref, **kw)
        elif kind == "github":
            yield from crawl_source(self.cfg["swe"]["github"], self.cfg["run"]["out_dir"], **kw)
        elif kind in ("sdist", "mine"):
            yield from self._fn(kind).process(ref)
        else:
            raise ValueError(f"unknown source kind {kind!r} of {spec}")
