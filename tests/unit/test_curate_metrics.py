"""The swe-curate DoFn's observability (pipelines/swe/curate.py ``Curate``; pipelines/llm/metrics.py): LLM calls
made on rollout threads reach Beam metrics through the client's call log, the pool gauges are set per bundle,
and the model pool's stats file is written at each bundle's end (one file per client, rewritten), not only at
close."""

import json
import threading
from typing import Any

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline

from crucible.pipelines.config import load_config
from crucible.pipelines.llm import LLMClient
from crucible.pipelines.llm.metrics import report_beam_metrics
from crucible.pipelines.swe.curate import Curate
from crucible.pipelines.swe.transforms import Hooks
from tests.support.fake_llm_server import FakeOpenAIServer
from tests.support.llm_curate import chat_on_a_thread, no_ctx

INSTS = [({"instance_id": f"o__r-{n}"}, {}) for n in range(4)]


def _curate(tmp_path, urls):
    cfg = load_config("swe", [f"run.out_dir={tmp_path}"]).to_dict()
    # one instance at a time (curate_threads from max_concurrency 1): the chats go to threads of their own
    llm = {"base_urls": urls, "cache": False, "max_concurrency": 1}
    return Curate(cfg, llm, "r", "none", Hooks(ctx=no_ctx, curate=chat_on_a_thread))


def test_calls_made_on_other_threads_are_beam_metrics_with_pool_gauges(tmp_path):
    with FakeOpenAIServer() as a, FakeOpenAIServer() as b:
        urls = [a.base_url, b.base_url]
        p = TestPipeline()
        _ = p | beam.Create(INSTS) | beam.ParDo(_curate(tmp_path, urls)).with_output_types(Any)
        result = p.run()
        result.wait_until_finish()
    q = result.metrics().query(MetricsFilter().with_namespace("crucible.llm"))
    counters = {m.key.metric.name: m.committed for m in q["counters"]}
    assert counters["calls"] == 4 and sum(counters[f"requests@{u.rstrip('/')}"] for u in urls) == 4
    assert [d.committed.count for d in q["distributions"] if d.key.metric.name == "latency_ms"] == [4]
    g = result.metrics().query(MetricsFilter().with_namespace("crucible.llm.pool"))["gauges"]
    done = {m.key.metric.name: m.committed.value for m in g if m.key.metric.name.startswith("done@")}
    assert sum(done.values()) == 4 and len(done) == 2


def test_switch_off_reported_from_the_calling_thread_beam_drops_them():
    """What the call log is for: a metric set on a thread that is not the bundle's counts nowhere."""
    with FakeOpenAIServer() as a:
        cfg = {"base_urls": [a.base_url], "cache": False}

        class Ask(beam.DoFn):
            def setup(self):
                self.client = LLMClient.from_config(cfg, out_dir="/nonexistent-never-written")

            def process(self, q):
                t = threading.Thread(target=lambda: report_beam_metrics(
                    self.client.chat([{"role": "user", "content": q}])))
                t.start()
                t.join(30)
                yield q

        p = TestPipeline()
        _ = p | beam.Create(["a", "b"]) | beam.ParDo(Ask())
        result = p.run()
        result.wait_until_finish()
    q = result.metrics().query(MetricsFilter().with_namespace("crucible.llm"))
    assert not [m for m in q["counters"] if m.key.metric.name == "calls"]


def test_the_stats_file_is_written_at_bundle_end_and_rewritten_not_added(tmp_path):
    with FakeOpenAIServer() as a:
        dofn = _curate(tmp_path, [a.base_url])
        dofn.setup()
        stats_dir = tmp_path / "stats" / "llm_pool"
        list(dofn.process(INSTS[0]))
        assert not stats_dir.exists()  # nothing before the bundle ends
        list(dofn.finish_bundle())
        (first,) = stats_dir.iterdir()
        assert json.loads(first.read_text())["totals"]["requests"] == 1  # there without teardown
        list(dofn.process(INSTS[1]))
        list(dofn.finish_bundle())
        dofn.teardown()
        assert list(stats_dir.iterdir()) == [first]  # the same file: crucible stats sums files, counts once
        assert json.loads(first.read_text())["totals"]["requests"] == 2


def test_a_client_closed_without_any_bundle_end_still_writes_once(tmp_path):
    with FakeOpenAIServer() as a:
        c = LLMClient.from_config({"base_urls": [a.base_url], "cache": False}, out_dir=str(tmp_path))
        c.chat([{"role": "user", "content": "q"}])
        c.close()
    assert len(list((tmp_path / "stats" / "llm_pool").iterdir())) == 1
