"""Requests/tokens-per-minute pacing shared by every caller of one client (threads and coroutines)."""

from __future__ import annotations

import threading
import time


class RatePacer:
    """Smooth pacing at ``per_minute`` units/minute (GCRA-style).

    ``reserve(n)`` books ``n`` units and returns how long the caller must wait for its slot (a coroutine
    sleeps that with ``asyncio.sleep``); ``acquire(n)`` books and sleeps. ``adjust(delta)`` corrects a
    reservation once the real amount is known (e.g. tokens actually used).
    """

    def __init__(self, per_minute: float, clock=time.monotonic, sleep=time.sleep):
        if per_minute <= 0:
            raise ValueError("per_minute must be > 0")
        self.interval = 60.0 / float(per_minute)
        self._next = 0.0
        self._lock = threading.Lock()
        self._clock, self._sleep = clock, sleep

    def reserve(self, amount: float = 1.0) -> float:
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + amount * self.interval
        return start - now

    def acquire(self, amount: float = 1.0) -> float:
        wait = self.reserve(amount)
        if wait > 0:
            self._sleep(wait)
        return wait

    def adjust(self, delta: float) -> None:
        with self._lock:
            self._next += delta * self.interval
