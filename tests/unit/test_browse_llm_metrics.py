"""Browse stages (pipelines/browse/transforms.py ``StageDoFn``) report the shared LLM client's calls, made on
the stage's thread pool, as Beam metrics at each bundle's end, set the pool gauges and rewrite its stats file."""

from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline

from crucible.pipelines.browse.transforms import StageDoFn
from crucible.pipelines.llm import LLMClient
from tests.support.fake_llm_server import FakeOpenAIServer

SERVER = {}


class _Ask(StageDoFn):
    """A pooled stage whose work is one chat (on the stage's worker threads)."""

    def setup(self):  # a bare client instead of the browse worker state
        self.ctx = SimpleNamespace(client=LLMClient.from_config(
            {"base_urls": SERVER["urls"], "cache": False}, out_dir=SERVER["out"]))
        self.pool = ThreadPoolExecutor(2)

    def work(self, ctx, q):
        ctx.client.chat([{"role": "user", "content": q}])
        yield q


def test_stage_calls_on_worker_threads_become_metrics_and_a_stats_file(tmp_path):
    with FakeOpenAIServer() as a, FakeOpenAIServer() as b:
        SERVER.update(urls=[a.base_url, b.base_url], out=str(tmp_path))
        p = TestPipeline()
        _ = p | beam.Create(list("abcde")) | beam.ParDo(_Ask(SimpleNamespace(workers=2))).with_output_types(Any)
        result = p.run()
        result.wait_until_finish()
    q = result.metrics().query(MetricsFilter().with_namespace("crucible.llm"))
    assert {m.key.metric.name: m.committed for m in q["counters"]}["calls"] == 5
    gauges = result.metrics().query(MetricsFilter().with_namespace("crucible.llm.pool"))["gauges"]
    assert sum(m.committed.value for m in gauges if m.key.metric.name.startswith("done@")) == 5
    assert len(list((tmp_path / "stats" / "llm_pool").iterdir())) == 1


def test_a_stage_without_a_client_reports_nothing():
    dofn = StageDoFn(SimpleNamespace(workers=1))
    dofn.ctx, dofn.pending = SimpleNamespace(client=None), set()
    assert list(dofn.finish_bundle()) == []
