"""Progress lines of long loops (items committed, rollouts run): counts, rate and ETA; and, where the work runs
on pools (Docker engines, model endpoints) of more than one member, each member's in flight/done/failed on the
same line."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

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
    """The ``members`` of a :class:`Progress` over an engine pool (:class:`sandbox.engines.EnginePool`) and an
    LLM client (:class:`pipelines.llm.LLMClient`), either None."""
    def members() -> dict:
        out = {}
        if engine_pool is not None:
            out["engines"] = engine_pool.stats()["engines"]
        if llm_client is not None:
            out["endpoints"] = llm_client.stats()["endpoints"]
        return out
    return members
