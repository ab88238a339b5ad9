"""Progress lines of long loops (items committed, rollouts run): counts, rate and ETA; and, where the work runs
on pools (Docker engines, model endpoints) of more than one member, each member's in flight/done/failed on the
same line."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping

from crucible.pipelines.store import fsio

log = logging.getLogger(__name__)
# {"engines": {name: {"in_flight", "done", "failed", ...}}, "endpoints": {url: {...}}}
Members = Callable[[], Mapping[str, Mapping[str, Mapping]]]


class Progress:
    """Counts, rate and ETA, logged at most every ``every_s`` seconds. ``members`` (optional) gives the pools'
    per-member state at the time of each line (:func:`pool_members`)."""

    def __init__(self, label: str, total: int | None, every_s: float = 10.0, logger: logging.Logger = log,
                 members: Members | None = None):
        self.label, self.total, self.every_s, self.log, self.members = label, total, every_s, logger, members
        self.done = 0
        self.t0 = time.monotonic()
        self._last = 0.0

    def update(self, n: int = 1, force: bool = False) -> None:
        self.done += n
        now = time.monotonic()
        if self.every_s <= 0 and not force:
            return
        if force or now - self._last >= self.every_s:
            self._last = now
            self.log.info("%s", self.line())

    def line(self) -> str:
        el = max(time.monotonic() - self.t0, 1e-9)
        rate = self.done / el
        parts = [f"{self.label}: {self.done}" + (f"/{self.total}" if self.total else ""), f"{rate:.2f}/s"]
        if self.total and rate > 0:
            parts.append(f"ETA {max(self.total - self.done, 0) / rate:.0f}s")
        parts.append(f"elapsed {el:.0f}s")
        if self.members is not None:
            parts += members_parts(self.members())
        return ", ".join(parts)


def members_parts(pools: Mapping[str, Mapping[str, Mapping]]) -> list[str]:
    """``engines a 1/5/0 b 0/3/1 (in flight/done/failed)`` per pool of more than one member (one member:
    the line's own counts say it all)."""
    out = []
    for kind, members in pools.items():
        if len(members) < 2:
            continue
        each = " ".join(f"{name}{' (out)' if _out(m) else ''} {int(m['in_flight'])}/{int(m['done'])}/{int(m['failed'])}"
                        for name, m in sorted(members.items()))
        out.append(f"{kind} {each} (in flight/done/failed)")
    return out


def _out(member: Mapping) -> bool:
    """Drained (an engine) or taken out (an endpoint)."""
    return bool(member.get("drained")) or member.get("up") is False


def pool_members(engine_pool=None, llm_client=None) -> Members:
    """The ``members`` of a :class:`Progress` over an engine pool (:class:`crucible.sandbox.engines.EnginePool`) and an
    LLM client (:class:`crucible.pipelines.llm.LLMClient`), either None."""
    def members() -> dict:
        out = {}
        if engine_pool is not None:
            out["engines"] = engine_pool.stats()["engines"]
        if llm_client is not None:
            out["endpoints"] = llm_client.stats()["endpoints"]
        return out
    return members


# the stats files pools write under a run's out_dir (sandbox/engines.py, pipelines/llm/metrics.py): kind -> dir, key
STATS_FILES = {"engines": ("engine_pool", "engines"), "endpoints": ("llm_pool", "endpoints")}


def run_members(out_dir: str) -> Members:
    """The ``members`` of a :class:`Progress` from the pools' stats files of a run (every worker process's
    pools, as of their last write: an engine pool at each release, an LLM client at each bundle's end), summed
    per member; a member is marked out when any file says so. For lines far from the pools (the commit sink)."""
    def members() -> dict:
        out: dict[str, dict] = {}
        for kind, (sub, key) in STATS_FILES.items():
            for path in fsio.glob(fsio.join(out_dir, "stats", sub, "*.json")):
                try:
                    rec = json.loads(fsio.read_bytes(path))
                except (OSError, ValueError):
                    continue  # being replaced: the next line reads it
                for name, m in rec[key].items():
                    a = out.setdefault(kind, {}).setdefault(
                        name, {"in_flight": 0, "done": 0, "failed": 0, "drained": None, "up": True})
                    for k in ("in_flight", "done", "failed"):
                        a[k] += int(m[k])
                    a["drained"] = a["drained"] or m.get("drained")  # engines say drained, endpoints up
                    a["up"] = a["up"] and m.get("up") is not False
        return out
    return members
