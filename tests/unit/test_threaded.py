"""Elements on a DoFn's own thread pool (pipelines/threaded.py ``ThreadedDoFn``), and the swe-curate DoFn that
uses it (pipelines/swe/curate.py ``Curate``): elements run at once, never more than ``threads``, every output
(side outputs too) emitted once; with one thread each element runs inline, so work that needs company waits
alone and fails."""

from __future__ import annotations

import threading
import time
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.pvalue import TaggedOutput
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from crucible.pipelines.config import load_config
from crucible.pipelines.swe.curate import Curate, curate_threads
from crucible.pipelines.swe.transforms import Hooks
from crucible.pipelines.threaded import ThreadedDoFn
from tests.support import llm_curate

MEET = threading.Barrier(3, timeout=20)


class _Meet(ThreadedDoFn):
    """Each element waits until two others are being worked on too."""

    def __init__(self, threads: int, barrier: threading.Barrier = MEET):
        self.threads, self.barrier = threads, barrier

    def outputs(self, x) -> list:
        self.barrier.wait()
        return [x * 10, TaggedOutput("side", x)]


def test_elements_run_at_once_and_every_output_is_emitted_once():
    with TestPipeline() as p:
        out = p | beam.Create(list(range(1, 7))) | beam.ParDo(_Meet(3)).with_outputs("side", main="main")
        assert_that(out.main, equal_to([10, 20, 30, 40, 50, 60]), label="main")
        assert_that(out.side, equal_to([1, 2, 3, 4, 5, 6]), label="side")


def test_switch_off_one_thread_runs_inline_and_the_element_waits_alone():
    dofn = _Meet(1, threading.Barrier(3, timeout=0.5))
    dofn.setup()
    dofn.start_bundle()
    assert dofn.pool is None
    with pytest.raises(threading.BrokenBarrierError):
        list(dofn.process(1))


class _Count(ThreadedDoFn):
    lock = threading.Lock()
    now = peak = 0

    def __init__(self, threads: int):
        self.threads = threads

    def outputs(self, x) -> list:
        with self.lock:
            type(self).now += 1
            type(self).peak = max(type(self).peak, type(self).now)
        time.sleep(0.05)
        with self.lock:
            type(self).now -= 1
        return [x]


def test_at_most_threads_elements_wait_at_once():
    dofn = _Count(2)
    dofn.setup()
    dofn.start_bundle()
    got = [y for x in range(8) for y in dofn.process(x)] + [w.value for w in dofn.finish_bundle()]
    dofn.teardown()
    assert sorted(got) == list(range(8)) and _Count.peak == 2


def _cfg(tmp_path, *sets) -> dict:
    return load_config("swe", [f"run.out_dir={tmp_path}", *sets]).to_dict()


def test_curate_threads_come_from_the_config_else_the_llm_concurrency(tmp_path):
    llm = {"base_urls": ["http://a/v1", "http://b/v1"], "max_concurrency": 4}
    assert curate_threads(_cfg(tmp_path), llm) == 8
    assert curate_threads(_cfg(tmp_path), None) == 1
    assert curate_threads(_cfg(tmp_path, "swe.curate_threads=3"), llm) == 3


def test_curate_runs_instances_on_threads_and_gives_llm_statements_to_the_first_n_only(tmp_path):
    cfg = _cfg(tmp_path, "swe.curate_threads=3", "swe.statements.llm_max_instances=2",
               "swe.rollouts.llm_max_instances=null")
    llm_curate.SEEN.clear()
    pairs = [({"instance_id": f"o__r-{n}"}, {}) for n in range(6)]
    with TestPipeline() as p:
        out = (p | beam.Create(pairs)
               | beam.ParDo(Curate(cfg, None, "r", "none", Hooks(ctx=llm_curate.no_ctx, curate=llm_curate.record_flags)))
               .with_output_types(Any))
        assert_that(out | beam.Map(lambda r: r.key), equal_to([f"o__r-{n}" for n in range(6)]))
    assert sorted(i for i, *_ in llm_curate.SEEN) == [f"o__r-{n}" for n in range(6)]
    assert sum(stmt for _, _, stmt, _ in llm_curate.SEEN) == 2  # decided in arrival order, before the threads
    assert all(with_llm for _, with_llm, _, _ in llm_curate.SEEN)
    assert {t for *_, t in llm_curate.SEEN} <= {f"Curate_{n}" for n in range(3)}
