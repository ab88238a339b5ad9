"""Progress lines of long loops (items committed, rollouts run): counts, rate and ETA."""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


class Progress:
    """Counts, rate and ETA, logged at most every ``every_s`` seconds."""

    def __init__(self, label: str, total: int | None, every_s: float = 10.0, logger: logging.Logger = log):
        self.label, self.total, self.every_s, self.log = label, total, every_s, logger
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
        return ", ".join(parts)
