"""Wall-clock caps for the elements of the SWE graph (issue #27 item 3): one slow element must not hold its
bundle (Dataflow treats a worker blocked ~20 minutes in one call as lost, and cannot split one record).

:func:`run_capped` runs a call on a daemon thread and stops waiting at the cap: the caller gets
:class:`CapExceeded` and turns it into a ``failures`` row naming the cap. Python cannot kill a thread: the
abandoned call runs on in the background until its own bounds end it (every container command has its
``command_timeout_s``, every test run its ``sandbox`` timeout), its result is dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
_END = object()


class CapExceeded(Exception):
    """``cap`` (the config key, e.g. ``swe.validation_timeout_s``) fired after ``seconds`` on ``what``."""

    def __init__(self, cap: str, seconds: float, what: str):
        self.cap, self.seconds, self.what = cap, seconds, what
        super().__init__(f"{cap.rsplit('.', 1)[-1]}: {what} exceeded {cap}={seconds:g} s")


def run_capped(fn: Callable[[], T], seconds: float, *, cap: str, what: str) -> T:
    """``fn()`` or :class:`CapExceeded` once ``seconds`` have passed; its exception is re-raised here."""
    box: dict = {}
    finished = threading.Event()

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc
        finally:
            finished.set()

    threading.Thread(target=target, daemon=True, name=f"capped:{what}"[:60]).start()
    if not finished.wait(seconds):
        log.warning("%s: abandoned after %g s (%s); it runs on in the background until its own bounds end it",
                    what, seconds, cap)
        raise CapExceeded(cap, seconds, what)
    if "error" in box:
        raise box["error"]
    return box["value"]


def capped_iter(it: Iterator[T], seconds: float, *, cap: str, what: Callable[[int], str]) -> Iterator[T]:
    """The items of ``it``, each ``next`` bounded by ``seconds`` (``what(n)`` names the n-th step)."""
    n = 0
    while True:
        item = run_capped(lambda: next(it, _END), seconds, cap=cap, what=what(n))
        if item is _END:
            return
        yield item
        n += 1
