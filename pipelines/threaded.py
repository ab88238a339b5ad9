"""A DoFn whose elements run on a thread pool of its own: for work that waits on a model server or a
container rather than on this process's CPU (a browse stage's LLM calls, a SWE instance's statement and
rollouts). Beam's local runner runs one bundle at a time, so without it such a stage leaves the model's
slots and the engine idle while one element waits.

Finished elements are emitted as they finish; at most ``threads`` wait at once; the rest are emitted at the
end of the bundle (in the global window, as batch pipelines are). ``threads`` of 0 or 1: each element runs
inline, in order, as a plain DoFn would.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue


def windowed(out: Any):
    """An output of ``finish_bundle`` (Beam wants it windowed; the graphs that use this are in the global
    window)."""
    if isinstance(out, TaggedOutput):
        return TaggedOutput(out.tag, WindowedValue(out.value, MIN_TIMESTAMP, [GlobalWindow()]))
    return WindowedValue(out, MIN_TIMESTAMP, [GlobalWindow()])


class ThreadedDoFn(beam.DoFn):
    """Subclasses give ``outputs(element)`` (run on a pool thread; a list, ``TaggedOutput`` for a side
    output) and set ``threads`` before :meth:`setup` runs; ``emitted()`` is called on the bundle's thread
    after each element's outputs went out (progress lines, counters). A subclass with its own ``setup`` or
    ``finish_bundle`` calls these (``yield from super().finish_bundle()``)."""

    threads: int = 1

    def outputs(self, element) -> list:
        raise NotImplementedError

    def emitted(self) -> None:
        """After each element's outputs are emitted, on the bundle's thread."""

    def setup(self):
        self.pool = (ThreadPoolExecutor(self.threads, thread_name_prefix=type(self).__name__)
                     if self.threads > 1 else None)
        self.pending: set[Future] = set()

    def start_bundle(self):
        self.pending = set()

    def process(self, element):
        if self.pool is None:
            yield from self.outputs(element)
            self.emitted()
            return
        self.pending.add(self.pool.submit(self.outputs, element))
        if len(self.pending) >= self.threads:
            done, self.pending = wait(self.pending, return_when=FIRST_COMPLETED)
        else:
            done = {f for f in self.pending if f.done()}
            self.pending -= done
        for f in done:
            yield from f.result()
            self.emitted()

    def finish_bundle(self):
        pending, self.pending = self.pending, set()
        for f in wait(pending).done:
            for out in f.result():
                yield windowed(out)
            self.emitted()

    def teardown(self):
        if getattr(self, "pool", None) is not None:
            self.pool.shutdown(wait=False)
