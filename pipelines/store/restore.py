"""``crucible store restore``: bring back every intact commit a damaged store still holds.

Shards carry their commit in their Parquet footers (:mod:`crucible.pipelines.store.integrity`), so a commit is
found from any of its pieces: a manifest in ``_commits/`` (valid or not), shards in the table folders
that no manifest names, and manifests and shards under ``_quarantine/*/`` (moved there by ``store check
--quarantine`` or a run's ``recover``). For each commit not live and intact:

1. its manifest: the one in place if valid, else a valid quarantined one (newest first), else one
   rebuilt from its shards' metadata (commit id, pipeline, run id, item keys, created_at, tables,
   ``compacted_from``; the commit id must equal the hash of its pipeline and items, each shard's table
   its folder, every table of the commit present);
2. an intact copy of each of its shards: equal to the manifest's size and sha256 where it has them, else
   a readable file whose footer rows match (and, rebuilt, whose metadata names this commit);
3. none of its items committed by a live manifest already (redone since, or a compaction's copy);
4. then, under the writer lock: a damaged file in the way is moved aside (quarantine, with evidence),
   the chosen shards are moved into place, and the manifest is moved back or written (the commit point,
   last).

A commit that cannot be restored stays where it is, named with the reason (shards of before this
metadata: "no commit metadata"); a rerun of its pipeline redoes its items. Nothing is deleted.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import pyarrow.parquet as pq

from crucible.pipelines.store import fsio, integrity, lock
from crucible.pipelines.store import manifests as M
from crucible.pipelines.store.commit import stable_hash
from crucible.pipelines.store.records import TABLES


@dataclass
class Found:
    """Every piece of one commit found in the store."""

    pipeline: str
    commit_id: str
    live: dict | None = None  # its valid manifest in _commits/
    bad_in_place: str | None = None  # an unreadable or invalid manifest file in its place in _commits/
    quarantined: list[tuple[str, str, dict]] = field(default_factory=list)  # (stamp, path, manifest)
    shards: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # table -> [(where, path)]

    @property
    def name(self) -> str:
        return f"{self.pipeline}/{self.commit_id}"


@dataclass
class RestoreReport:
    restored: list[str] = field(default_factory=list)
    not_restored: list[str] = field(default_factory=list)  # rows that are not back: rerun to redo them
    kept: list[str] = field(default_factory=list)  # copies of rows that are live already

    @property
    def ok(self) -> bool:
        return not self.not_restored


def _find(out_dir: str) -> dict[tuple[str, str], Found]:
    found: dict[tuple[str, str], Found] = {}

    def get(p: str, c: str) -> Found:
        return found.setdefault((p, c), Found(p, c))

    for pipeline in M.pipelines_of(out_dir):
        for path in M.manifest_files(out_dir, pipeline):
            cid = os.path.basename(path).removesuffix(".json")
            if not M.COMMIT_ID_RE.fullmatch(cid):
                continue  # a copy under another name: `store check --quarantine` moves it aside
            try:
                get(pipeline, cid).live = M.read_manifest(path, pipeline)
            except M.ManifestError:
                get(pipeline, cid).bad_in_place = path
    for rel, path in M.shard_files(out_dir).items():
        get(*M.parse_shard_name(rel.split("/", 1)[1])).shards.setdefault(rel.split("/", 1)[0], []).append(
            ("in place", path))
    for stamp, rel, path in integrity.quarantined(out_dir):
        parts = rel.split("/")
        if len(parts) == 3 and parts[0] == M.COMMITS_DIR and M.PIPELINE_RE.fullmatch(parts[1]):
            try:
                m = M.read_manifest(path, parts[1])
            except M.ManifestError:
                continue  # unreadable or crafted: evidence only
            if m is not None:
                get(parts[1], m["commit_id"]).quarantined.append((stamp, path, m))
        elif len(parts) == 2 and parts[0] in TABLES and M.parse_shard_name(parts[1]):
            get(*M.parse_shard_name(parts[1])).shards.setdefault(parts[0], []).append((stamp, path))
    return found


def _metadata(f: Found) -> tuple[dict | None, str]:
    """The commit as its shards' footers describe it, or (None, why not)."""
    metas, why = {}, ""
    for table, copies in sorted(f.shards.items()):
        for _, path in copies:
            try:
                meta = integrity.commit_metadata(path) if integrity.kind_of(path) == "file" else None
            except Exception as exc:  # noqa: BLE001 - an unreadable copy: try the next one
                why = why or f"{table}/{os.path.basename(path)} is not a readable Parquet file ({type(exc).__name__})"
                continue
            if meta is None:
                why = why or f"{table}/{os.path.basename(path)} carries no commit metadata (written by an older version)"
                continue
            metas[table] = meta
            break
    if not metas:
        return None, why or "no shard of it is left"
    base = {k: v for k, v in next(iter(metas.values())).items() if k != "table"}
    for table, meta in metas.items():
        if meta.get("table") != table or {k: v for k, v in meta.items() if k != "table"} != base:
            return None, f"its shards' metadata disagree ({table})"
    if base.get("commit_id") != f.commit_id or base.get("pipeline") != f.pipeline:
        return None, "its shards' metadata name another commit"
    items, cf = base.get("items"), base.get("compacted_from")
    want = "c" + stable_hash(f.pipeline, sorted(cf or [])) if cf is not None else stable_hash(f.pipeline, items)
    if f.commit_id != want:
        return None, "its shards' metadata do not hash to its commit id (altered)"
    m = {k: base[k] for k in ("commit_id", "pipeline", "run_id", "items", "created_at", "compacted_from") if k in base}
    m["files"] = {t: M.shard_name(f.pipeline, f.commit_id) for t in base.get("tables") or []}
    try:
        return M.validate_manifest(m, M.manifest_path("", f.pipeline, f.commit_id), f.pipeline), ""
    except M.ManifestError as exc:
        return None, f"its shards' metadata are not a valid commit ({str(exc).split(': ', 2)[-1][:120]})"


def _intact(m: dict, table: str, path: str, rebuilt: bool) -> str | None:
    """None when ``path`` is an intact copy of ``m``'s shard of ``table``, else what is wrong with it."""
    want = (m.get("checksums") or {}).get(table)
    if want is not None:
        got = integrity.file_digest(path)
        return None if got == want else "does not match its manifest's size and sha256"
    if integrity.kind_of(path) != "file":
        return f"is a {integrity.kind_of(path)}"
    try:
        meta = integrity.commit_metadata(path)
        n = pq.read_table(integrity.source(path)).num_rows
        if integrity.data_intact(path) is False:
            return "its data pages differ from the sha256 in its own footer (edited)"
    except Exception as exc:  # noqa: BLE001
        return f"is not a readable Parquet file ({type(exc).__name__})"
    if rebuilt and (meta or {}).get("commit_id") != m["commit_id"]:
        return "carries another commit's metadata"
    rows = (m.get("rows") or {}).get(table)
    return None if rows is None or rows == n else f"holds {n} rows, its manifest says {rows}"


def _plan(f: Found) -> tuple[dict | None, bool, dict[str, tuple[str, str]], str]:
    """(manifest, rebuilt?, {table: (where, path) of the chosen copy}, why not restorable)."""
    rebuilt = False
    if f.live is not None:
        m = f.live
    elif f.quarantined:
        m = f.quarantined[0][2]
    else:
        m, why = _metadata(f)
        if m is None:
            names = ", ".join(f"{t}/{M.shard_name(f.pipeline, f.commit_id)}" for t in sorted(f.shards))
            return None, False, {}, f"{why}: its manifest cannot be rebuilt ({names})"
        rebuilt = True
    chosen = {}
    for table in sorted(m["files"]):
        problems = []
        for where, path in f.shards.get(table, []):
            err = _intact(m, table, path, rebuilt)
            if err is None:
                chosen[table] = (where, path)
                break
            problems.append(f"{where}: {err}")
        if table not in chosen:
            return m, rebuilt, {}, f"no intact copy of {table}/{m['files'][table]} ({'; '.join(problems) or 'none left'})"
    return m, rebuilt, chosen, ""


def _live_in_place(f: Found) -> bool:
    """A live commit with a file in place for each shard and no piece in quarantine: nothing to restore
    (``store check`` verifies its shards)."""
    return f.live is not None and not f.quarantined and all(
        [w for w, _ in f.shards.get(t, [])] == ["in place"] for t in f.live["files"])


def _apply(out_dir: str, f: Found, m: dict, rebuilt: bool, chosen: dict, stamp: str) -> str:
    aside = []
    for table, (where, _path) in sorted(chosen.items()):
        dest = fsio.join(out_dir, table, m["files"][table])
        if where != "in place" and integrity.kind_of(dest) != "missing":
            aside.append((dest, {"why": "not an intact copy; replaced by one from quarantine by store restore",
                                 "pipeline": f.pipeline, "commit_id": f.commit_id}))
    if f.live is None and f.bad_in_place:
        aside.append((f.bad_in_place, {"why": "unreadable manifest; replaced by store restore",
                                       "pipeline": f.pipeline, "commit_id": f.commit_id}))
    integrity.move_aside(out_dir, aside, stamp, by="crucible store restore")
    moved = 0
    for table, (where, path) in sorted(chosen.items()):
        if where != "in place":
            fsio.rename(path, fsio.join(out_dir, table, m["files"][table]))
            moved += 1
    dest = M.manifest_path(out_dir, f.pipeline, f.commit_id)
    if f.live is not None:
        return f"{f.name}: {moved} shard(s) moved back from {integrity.QUARANTINE_DIR}/"
    if not rebuilt:
        fsio.rename(f.quarantined[0][1], dest)
        return f"{f.name}: manifest and {moved} shard(s) moved back from {integrity.QUARANTINE_DIR}/{f.quarantined[0][0]}/"

    m = {**m, "rows": {}, "checksums": {}}
    for table in m["files"]:
        path = fsio.join(out_dir, table, m["files"][table])
        m["rows"][table] = pq.read_metadata(integrity.source(path)).num_rows
        m["checksums"][table] = integrity.file_digest(path)
    fsio.write_bytes_atomic(dest, json.dumps(m, indent=1, sort_keys=True).encode())
    return (f"{f.name}: manifest rebuilt from its shards' metadata ({len(m['files'])} shard(s), "
            f"{sum(m['rows'].values())} rows; {moved} moved back from {integrity.QUARANTINE_DIR}/)")


def restore(out_dir: str, dry_run: bool = False) -> RestoreReport:
    """Restore every intact commit (see module docstring). ``dry_run``: say what would be done, change nothing."""
    M.require_store(out_dir)
    rep = RestoreReport()
    with lock.writer(out_dir, "crucible store restore"):
        found = _find(out_dir)
        done: dict[str, dict[str, str]] = {}  # pipeline -> item key -> live commit id
        for pipeline in {p for p, _ in found}:  # the valid manifests in place (a damaged one is no error here)
            for m in M.resolve([f.live for f in found.values() if f.pipeline == pipeline and f.live]).live:
                done.setdefault(pipeline, {}).update({k: m["commit_id"] for k in m["items"]})
        plans = [(f, *_plan(f)) for f in found.values() if not _live_in_place(f)]
        stamp = integrity.new_stamp()
        for f, m, rebuilt, chosen, why in sorted(plans, key=lambda x: (str((x[1] or {}).get("created_at") or ""),
                                                                       x[0].name)):
            if m is not None and f.live is not None and not why and all(w == "in place" for w, _ in chosen.values()):
                continue  # live and intact (a stale copy in quarantine)
            held = sorted({done.get(f.pipeline, {}).get(k) for k in (m or {}).get("items", [])} - {None, f.commit_id})
            if m is not None and f.live is None and held:
                rep.kept.append(f"{f.name}: its items are committed by {', '.join(held)} (redone since, or a copy)")
            elif why:
                rep.not_restored.append(f"{f.name}: {why}")
            elif dry_run:
                rep.restored.append(f"{f.name}: would be restored ({'rebuilt manifest' if rebuilt else 'manifest kept'})")
            else:
                rep.restored.append(_apply(out_dir, f, m, rebuilt, chosen, stamp))
                done.setdefault(f.pipeline, {}).update({k: f.commit_id for k in m["items"]})
    return rep


def format_restore(out_dir: str, rep: RestoreReport) -> str:
    lines = [f"  restored {x}" for x in rep.restored]
    lines += [f"  NOT RESTORED {x}" for x in rep.not_restored]
    lines += [f"  kept in place {x}" for x in rep.kept]
    lines.append(f"{out_dir}: {len(rep.restored)} commit(s) restored, {len(rep.not_restored)} not restorable"
                 + (f": rerun their pipelines to redo their items (their files stay in {integrity.QUARANTINE_DIR}/ "
                    "or where they are; nothing was deleted)" if rep.not_restored else ""))
    return "\n".join(lines)
