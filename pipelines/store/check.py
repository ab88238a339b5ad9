"""``crucible store check``: verify every manifest against its shards, and quarantine damaged commits.

For each pipeline: every manifest parses and is well formed; each shard a live manifest names exists,
has a readable footer, holds the rows its manifest says and (unless ``fast``) its data decodes. Left
overs of killed writers (orphan shards, superseded or conflicting manifests, temp files) are counted:
the next run's ``recover`` removes them.

``quarantine`` (under the writer lock) moves each damaged commit, its manifest and all its shards, to
``_quarantine/<time>/`` keeping their paths: its items are then not done, so the next run redoes them,
and nothing is deleted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pyarrow.parquet as pq

from pipelines.store import fsio, lock
from pipelines.store import manifests as M
from pipelines.store.catalog import _one_line, _source, check_footer
from pipelines.store.commit import QUARANTINE_DIR, _stale_temp_files, is_shard_of, quarantine_commits
from pipelines.store.records import TABLES


@dataclass
class Problem:
    pipeline: str
    path: str  # relative to the store
    why: str
    commit_id: str | None = None  # the damaged commit (None: the manifest itself is unreadable)


@dataclass
class CheckReport:
    commits: int = 0
    shards: int = 0
    rows: int = 0
    damaged: list[Problem] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)  # removed by the next recover
    quarantined: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.damaged


def check_store(out_dir: str, fast: bool = False) -> CheckReport:
    M.require_store(out_dir)
    rep = CheckReport()
    for pipeline in M.pipelines_of(out_dir):
        manifests = []
        for path in fsio.glob(fsio.join(out_dir, M.COMMITS_DIR, pipeline, "*.json")):
            rel = f"{M.COMMITS_DIR}/{pipeline}/{path.replace(chr(92), '/').rsplit('/', 1)[-1]}"
            try:
                m = M.read_manifest(path, pipeline)
            except M.ManifestError as exc:
                rep.damaged.append(Problem(pipeline, rel, str(exc).split(": ", 1)[-1]))
                continue
            if m is not None:
                manifests.append(m)
        res = M.resolve(manifests)
        rep.leftovers += [f"{M.COMMITS_DIR}/{pipeline}/{m['commit_id']}.json (superseded by a compaction)"
                          for m in res.superseded]
        rep.leftovers += [f"{M.COMMITS_DIR}/{pipeline}/{m['commit_id']}.json (repeats item keys of an earlier "
                          "commit)" for m in res.conflicting]
        referenced = set()
        for m in res.live:
            rep.commits += 1
            for table, name in sorted(m["files"].items()):
                rel = f"{table}/{name}"
                referenced.add(rel)
                rep.shards += 1
                path = fsio.join(out_dir, table, name)
                n, err = check_footer(path)
                want = (m.get("rows") or {}).get(table)
                if err is None and want is not None and n != want:
                    err = f"holds {n} rows, its manifest says {want}"
                if err is None and not fast:
                    try:
                        pq.read_table(_source(path))
                    except Exception as exc:  # noqa: BLE001
                        err = f"data not readable ({type(exc).__name__}: {_one_line(exc)})"
                if err:
                    rep.damaged.append(Problem(pipeline, rel, err, m["commit_id"]))
                else:
                    rep.rows += n or 0
        for m in res.superseded + res.conflicting:
            referenced.update(f"{t}/{name}" for t, name in m["files"].items())
        for table in TABLES:
            for path in fsio.glob(fsio.join(out_dir, table, f"part-{pipeline}-*.parquet")):
                name = path.replace("\\", "/").rsplit("/", 1)[-1]
                if is_shard_of(name, pipeline) and f"{table}/{name}" not in referenced:
                    rep.leftovers.append(f"{table}/{name} (no manifest names it)")
        rep.leftovers += [p[len(str(out_dir)):].lstrip("/") + " (temp file)" for p in _stale_temp_files(out_dir, pipeline)]
    return rep


def quarantine(out_dir: str, rep: CheckReport) -> list[str]:
    """Move each damaged commit (manifest + shards) or unreadable manifest to ``_quarantine/<time>/``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    moved: list[str] = []
    with lock.writer(out_dir, "crucible store check --quarantine"):
        for p in rep.damaged:
            if p.commit_id is None:  # the manifest itself is unreadable: move it alone
                src = fsio.join(out_dir, p.path)
                if fsio.exists(src):
                    fsio.rename(src, fsio.join(out_dir, QUARANTINE_DIR, stamp, p.path))
                    moved.append(p.path)
                continue
            m = M.read_manifest(M.manifest_path(out_dir, p.pipeline, p.commit_id), p.pipeline)
            if m is not None:
                root = str(out_dir).rstrip("/") + "/"
                moved += [x[len(root):] if x.startswith(root) else x
                          for x in quarantine_commits(out_dir, p.pipeline, [m])]
    rep.quarantined = moved
    return moved


def format_report(out_dir: str, rep: CheckReport) -> str:
    lines = [f"{out_dir}: {rep.commits} live commits, {rep.shards} shards, {rep.rows} rows checked"]
    for p in rep.damaged:
        lines.append(f"  DAMAGED {p.path}: {p.why}")
    for x in rep.leftovers:
        lines.append(f"  leftover {x}: removed by the next run of its pipeline")
    for x in rep.quarantined:
        lines.append(f"  quarantined {x} -> {QUARANTINE_DIR}/")
    if rep.damaged and not rep.quarantined:
        lines.append(f"{len(rep.damaged)} damaged file(s): `crucible store check --out {out_dir} --quarantine` moves "
                     "their commits aside; the next run redoes their items")
    elif rep.quarantined:
        lines.append(f"moved {len(rep.quarantined)} file(s) to {QUARANTINE_DIR}/; rerun the pipeline to redo their items")
    else:
        lines.append("ok")
    return "\n".join(lines)
