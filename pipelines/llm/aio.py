"""The one event loop thread of a process: every LLM request of the process runs on it as a coroutine, so
a worker holds hundreds of requests in flight without a thread each.

Synchronous callers (the agent loop, thread pools in stages) hand a coroutine over with :func:`run_sync`
and block on its result; async callers await the client's ``a*`` methods on this loop (:func:`loop`)
or run their own coroutines on it with :func:`submit`. The loop is started on first use and belongs
to the process that started it: a forked child (Beam's multi-process runner) starts its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_state: dict[str, Any] = {"pid": None, "loop": None, "thread": None}


def loop() -> asyncio.AbstractEventLoop:
    """The process's event loop, started in a daemon thread on first use."""
    with _lock:
        if _state["pid"] != os.getpid() or _state["loop"] is None or not _state["thread"].is_alive():
            ev = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(ev)
                ev.call_soon(ready.set)
                ev.run_forever()

            th = threading.Thread(target=run, name="crucible-llm-loop", daemon=True)
            th.start()
            ready.wait()
            _state.update(pid=os.getpid(), loop=ev, thread=th)
        return _state["loop"]


def in_loop_thread() -> bool:
    return _state["pid"] == os.getpid() and _state["thread"] is threading.current_thread()


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Schedule ``coro`` on the process loop; a concurrent future for its result."""
    return asyncio.run_coroutine_threadsafe(coro, loop())


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the process loop and wait for its result (from any thread but the loop's own)."""
    if in_loop_thread():
        coro.close()
        raise RuntimeError("a synchronous LLM call from the LLM event loop itself would deadlock; "
                           "await the async method (achat / astructured) instead")
    return submit(coro).result()
