"""Disk accounting and garbage collection of sandbox images (split from ``crucible.sandbox.images``): list the
images Crucible built (by their ``crucible.*`` labels), ``docker system df`` by kind, and a pure
:func:`plan_gc` deciding which env/base images to remove."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone


def list_images(client) -> list[dict]:
    rows = []
    for img in client.images.list(filters={"label": "crucible.kind"}):
        labels = img.labels or {}
        rows.append({
            "id": img.short_id, "tags": img.tags, "kind": labels.get("crucible.kind"),
            "key": labels.get("crucible.key"), "name": labels.get("crucible.name", ""),
            "size_mb": round(img.attrs.get("Size", 0) / 1e6, 1), "created": img.attrs.get("Created", ""),
            "last_used": labels.get("crucible.last_used", ""),
        })
    return rows


def disk_usage(client) -> dict:
    """Images (by kind), sandbox containers and their writable layers, from ``docker system df``."""
    df = client.df()
    by_kind: dict[str, dict] = {}
    for img in df.get("Images") or []:
        labels = img.get("Labels") or {}
        kind = labels.get("crucible.kind")
        if not kind:
            continue
        d = by_kind.setdefault(kind, {"count": 0, "size_mb": 0.0, "unique_mb": 0.0})
        d["count"] += 1
        d["size_mb"] += img.get("Size", 0) / 1e6
        d["unique_mb"] += max(img.get("Size", 0) - img.get("SharedSize", 0), 0) / 1e6
    conts = [c for c in df.get("Containers") or [] if (c.get("Labels") or {}).get("crucible.sandbox")]
    return {
        "images": {k: {kk: round(vv, 1) if isinstance(vv, float) else vv for kk, vv in v.items()}
                   for k, v in by_kind.items()},
        "containers": {"count": len(conts), "rw_mb": round(sum(c.get("SizeRw", 0) or 0 for c in conts) / 1e6, 1)},
        "layers_total_mb": round((df.get("LayersSize") or 0) / 1e6, 1),
    }


def _lineage(img: dict) -> tuple:
    tag = (img.get("tags") or [""])[0]
    repo, _, t = tag.rpartition(":")
    return img["kind"], img.get("name", ""), repo, t.rsplit("-", 1)[0]  # e.g. ("env", "toolz", repo, "py3.9")


def plan_gc(images: list[dict], keep_keys: set[str], in_use_ids: set[str], kinds: tuple[str, ...] = ("env",),
            older_than_s: float = 0.0, now: float | None = None, superseded_only: bool = False) -> list[dict]:
    """Pure: which images to remove: those of ``kinds`` whose key is not kept, not used by a container and
    created more than ``older_than_s`` ago. With ``superseded_only``, only images for which a newer image of
    the same lineage (kind, repo name, Python) exists."""
    now = time.time() if now is None else now
    newest: dict[tuple, float] = {}
    for img in images:
        lin = _lineage(img)
        newest[lin] = max(newest.get(lin, 0.0), iso_ts(img.get("created") or ""))
    out = []
    for img in images:
        if img["kind"] not in kinds or img["key"] in keep_keys or img["id"] in in_use_ids:
            continue
        if superseded_only and iso_ts(img.get("created") or "") >= newest[_lineage(img)]:
            continue
        ts = iso_ts(img.get("created") or "")
        if now - ts >= older_than_s:
            out.append(img)
    return out


def iso_ts(text: str) -> float:
    """Seconds since the epoch of Docker's ``2026-11-22T03:20:00.123456789Z`` (0.0 if unparsable)."""

    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)", text or "")
    if not m:
        return 0.0
    return datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()


def gc(client, keep_keys: set[str] = frozenset(), kinds: tuple[str, ...] = ("env",), older_than_s: float = 0.0,
       dry_run: bool = False, superseded_only: bool = False) -> dict:
    """Remove stopped sandbox containers, then unkept images of ``kinds``; returns what was removed."""
    removed_containers = 0
    for c in client.containers.list(all=True, filters={"label": "crucible.sandbox"}):
        if c.status != "running":
            if not dry_run:
                c.remove(force=True)
            removed_containers += 1
    in_use = {c.image.short_id for c in client.containers.list(all=True)}
    plan = plan_gc(list_images(client), set(keep_keys), in_use, kinds, older_than_s, superseded_only=superseded_only)
    freed = 0.0
    for img in plan:
        if not dry_run:
            client.images.remove(img["id"], force=False)
        freed += img["size_mb"]
    if not dry_run:
        client.images.prune(filters={"dangling": True})
    return {"removed_images": [i["tags"] or i["id"] for i in plan], "removed_containers": removed_containers,
            "freed_mb_at_most": round(freed, 1), "dry_run": dry_run}
