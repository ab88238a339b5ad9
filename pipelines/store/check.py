"""``crucible store check``: verify every manifest against its shards, name each kind of damage, and
quarantine (never delete) what is damaged.

For each pipeline: every manifest parses and is well formed (:func:`manifests.validate_manifest`: names
from a fixed alphabet, tables known, shard names its own); each shard a live manifest names is a
regular file inside the store, of the size (and, unless ``fast``, the sha256) its manifest's checksums
say (manifests of before checksums: "no checksum", verified by footer and rows), holds the rows its
manifest says and (unless ``fast``) decodes. Then the other way round: a shard no readable manifest
names is an *unreferenced shard* (a lost, damaged or deleted manifest, or a killed run: damage, exit 1;
a shard of a writer holding the lock now is "in flight"), and a missing ``_commits/`` beside shards is
named. Superseded and conflicting manifests and temp files are leftovers the next run clears away.

``quarantine`` (under the writer lock) moves each damaged commit (manifest first, then its shards), each
unreadable or crafted manifest alone (never a file it names) and each unreferenced shard to
``_quarantine/<time>-<id>/`` with ``evidence.json`` (:func:`integrity.move_aside`): nothing is deleted,
nothing outside the store is read or moved. ``crucible store restore`` brings back every intact commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crucible.pipelines.store import fsio, integrity, lock, lockfree
from crucible.pipelines.store import manifests as M
from crucible.pipelines.store.commit import _stale_temp_files

RESTORE = "`crucible store restore --out {out}`"


@dataclass
class Problem:
    pipeline: str | None
    path: str  # relative to the store
    why: str
    commit_id: str | None = None  # a damaged commit: its manifest and shards move together
    movable: bool = True  # False: nothing to move (a folder that is missing)


@dataclass
class CheckReport:
    commits: int = 0
    shards: int = 0
    rows: int = 0
    damaged: list[Problem] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)  # cleared away by the next run of the pipeline
    no_checksum: list[str] = field(default_factory=list)  # shards of manifests written before checksums
    in_flight: list[str] = field(default_factory=list)  # shards of a writer that holds the lock now
    quarantined: list[str] = field(default_factory=list)
    in_quarantine: int = 0  # files under _quarantine/ (restorable ones come back with `store restore`)

    @property
    def ok(self) -> bool:
        return not self.damaged


def _manifests(out_dir: str, pipeline: str, rep: CheckReport) -> list[dict]:
    out = []
    for path in M.manifest_files(out_dir, pipeline):
        rel = f"{M.COMMITS_DIR}/{pipeline}/{path.replace(chr(92), '/').rsplit('/', 1)[-1]}"
        try:
            m = M.read_manifest(path, pipeline)
        except M.ManifestError as exc:
            rep.damaged.append(Problem(pipeline, rel, str(exc).split(": ", 1)[-1]))
            continue
        if m is not None:
            out.append(m)
    return out


def _check_live(out_dir: str, pipeline: str, m: dict, fast: bool, rep: CheckReport) -> None:
    rep.commits += 1
    for table, name in sorted(m["files"].items()):
        rel = f"{table}/{name}"
        rep.shards += 1
        if table not in (m.get("checksums") or {}):
            rep.no_checksum.append(rel)
        n, err = integrity.verify_shard(out_dir, m, table, deep=not fast)
        if err:
            rep.damaged.append(Problem(pipeline, rel, err, m["commit_id"]))
        else:
            rep.rows += n or 0


def _commit_folder(out_dir: str, rep: CheckReport) -> None:
    """Entries of ``_commits/`` that are no pipeline's commit folder (a crafted name, a file, a link)."""
    good = set(M.pipelines_of(out_dir))
    for name in M.commit_folders(out_dir):
        if name not in good:
            rep.damaged.append(Problem(None, f"{M.COMMITS_DIR}/{name}", "not a pipeline's commit folder (a pipeline "
                                       "name is [a-z0-9][a-z0-9_-]*, a real folder): nothing in it is read"))


def _unreferenced(out_dir: str, named: set[str], rep: CheckReport) -> None:
    shards = {rel: p for rel, p in M.shard_files(out_dir).items() if rel not in named}
    if not shards:
        return
    if not fsio.exists(fsio.join(out_dir, M.COMMITS_DIR)):
        rep.damaged.append(Problem(None, f"{M.COMMITS_DIR}/", f"missing, while {len(shards)} shard(s) lie in the "
                                   "table folders: no commit is read", movable=False))
    holder = lock.busy(out_dir)
    for rel, path in sorted(shards.items()):
        pipeline = M.parse_shard_name(rel.split("/", 1)[1])[0]
        if holder is not None:
            rep.in_flight.append(f"{rel} (a commit in flight of {lock.describe(holder)})")
            continue
        if not fsio.is_local(out_dir) and lockfree.in_flight(path):  # writers on an object store take no lock
            rep.in_flight.append(f"{rel} (younger than {lockfree.GRACE_S:.0f} s: a writer's commit in flight, or "
                                 "an attempt that lost; damage only once older)")
            continue
        kind = integrity.kind_of(path)
        try:
            meta = integrity.commit_metadata(path) if kind == "file" else None
            how = ("restore rebuilds its manifest from the shards" if meta else
                   "it carries no commit metadata (written by an older version): restore cannot rebuild its "
                   f"manifest, the next run of {pipeline} moves it aside and redoes its items")
        except Exception as exc:  # noqa: BLE001 - any decode error: named, not raised
            how = f"not a readable Parquet file ({type(exc).__name__})"
        if kind != "file":
            how = f"a {kind}, not a shard file"
        rep.damaged.append(Problem(pipeline, rel, "unreferenced shard: no manifest names it, its rows are not read "
                                   f"(a lost or damaged manifest, or a killed run); {how}"))


def check_store(out_dir: str, fast: bool = False) -> CheckReport:
    M.require_store(out_dir)
    rep = CheckReport()
    _commit_folder(out_dir, rep)
    named: set[str] = set()
    for pipeline in M.pipelines_of(out_dir):
        res = M.resolve(_manifests(out_dir, pipeline, rep))
        rep.leftovers += [f"{M.COMMITS_DIR}/{pipeline}/{m['commit_id']}.json (superseded by a compaction)"
                          for m in res.superseded]
        rep.leftovers += [f"{M.COMMITS_DIR}/{pipeline}/{m['commit_id']}.json (repeats item keys of an earlier "
                          "commit)" for m in res.conflicting]
        for m in res.live:
            _check_live(out_dir, pipeline, m, fast, rep)
        named.update(f"{t}/{n}" for m in res.live + res.superseded + res.conflicting for t, n in m["files"].items())
        rep.leftovers += [integrity._rel(out_dir, p) + " (temp file)" for p in _stale_temp_files(out_dir, pipeline)]
    _unreferenced(out_dir, named, rep)
    rep.in_quarantine = len(integrity.quarantined(out_dir))
    return rep


def quarantine(out_dir: str, rep: CheckReport) -> list[str]:
    """Move each damaged commit (manifest, then shards), each unreadable or crafted manifest and each
    unreferenced shard to ``_quarantine/<time>-<id>/`` with its evidence. Returns the moved paths."""
    with lock.writer(out_dir, "crucible store check --quarantine"):
        entries, seen = [], set()
        for p in rep.damaged:
            if not p.movable:
                continue
            paths = [fsio.join(out_dir, p.path)]
            if p.commit_id is not None:  # the whole commit: its items are then not done, the next run redoes them
                m = M.read_manifest(M.manifest_path(out_dir, p.pipeline, p.commit_id), p.pipeline)
                paths = [] if m is None else [M.manifest_path(out_dir, p.pipeline, p.commit_id)] + [
                    fsio.join(out_dir, t, n) for t, n in sorted(m["files"].items())]
            for path in paths:
                if path not in seen:
                    seen.add(path)
                    entries.append((path, {"why": f"{p.path}: {p.why}", "pipeline": p.pipeline,
                                           "commit_id": p.commit_id}))
        rep.quarantined = integrity.move_aside(out_dir, entries, by="crucible store check --quarantine")
    return rep.quarantined


def unresolved_after_quarantine(out_dir: str, rep: CheckReport) -> list[Problem]:
    """Damage still in the store after :func:`quarantine`: a problem whose file (or whole commit) did not move.
    A missing ``_commits/`` is resolved once no unreferenced shard is left in the table folders."""
    moved = set(rep.quarantined)
    left = []
    for p in rep.damaged:
        rel = f"{M.COMMITS_DIR}/{p.pipeline}/{p.commit_id}.json" if p.commit_id is not None else p.path
        if p.movable and rel not in moved and integrity.kind_of(fsio.join(out_dir, rel)) != "missing":
            left.append(p)
    if any(not p.movable for p in rep.damaged) and M.unreferenced_shards(out_dir):
        left += [p for p in rep.damaged if not p.movable]
    return left


def format_report(out_dir: str, rep: CheckReport) -> str:
    lines = [f"{out_dir}: {rep.commits} live commits, {rep.shards} shards, {rep.rows} rows checked"]
    lines += [f"  DAMAGED {p.path}: {p.why}" for p in rep.damaged]
    lines += [f"  in flight {x}" for x in rep.in_flight]
    if rep.no_checksum:
        lines.append(f"  no checksum: {len(rep.no_checksum)} shard(s) of commits written before checksums, checked "
                     f"by footer and rows only ({', '.join(rep.no_checksum[:3])}{' ...' if len(rep.no_checksum) > 3 else ''})")
    if fsio.is_local(out_dir):
        lines += [f"  leftover {x}: cleared away by the next run of its pipeline (moved to {integrity.QUARANTINE_DIR}/,"
                  " or deleted once proven merged)" for x in rep.leftovers]
    else:  # an object store: never read, never deleted (pipelines/store/lockfree.py)
        lines += [f"  leftover {x}: not read; kept (an object store deletes nothing)" for x in rep.leftovers]
    lines += [f"  quarantined {x} -> {integrity.QUARANTINE_DIR}/" for x in rep.quarantined]
    restore = RESTORE.format(out=out_dir)
    if rep.in_quarantine:
        lines.append(f"  {integrity.QUARANTINE_DIR}/ holds {rep.in_quarantine} file(s): {restore} brings back every "
                     "intact commit among them")
    if rep.quarantined:
        lines.append(f"moved {len(rep.quarantined)} file(s) to {integrity.QUARANTINE_DIR}/ (nothing deleted): "
                     f"{restore} brings back every intact commit; rerun the pipeline after it to redo the rest")
    elif rep.damaged:
        lines.append(f"{len(rep.damaged)} problem(s): {restore} rebuilds lost manifests from their shards and puts "
                     f"intact commits back; `crucible store check --out {out_dir} --quarantine` moves damaged files "
                     "aside (nothing is deleted); then a rerun of the pipeline redoes the items of what cannot be "
                     "restored")
    else:
        lines.append("ok")
    return "\n".join(lines)
