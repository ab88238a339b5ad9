"""The model pool (pipelines/llm/pool.py) through LLMClient against fake OpenAI-compatible servers: routing by
least outstanding requests, sticky sessions, failover (taken out, retried elsewhere, probed back in), async
concurrency without a thread per request, and the per-endpoint stats."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from crucible.pipelines.llm import aio
from crucible.pipelines.llm.client import LLMClient, LLMError
from crucible.pipelines.llm.pool import EndpointPool, PoolSettings
from tests.support.fake_llm_server import FakeOpenAIServer, Reply

FAST = dict(backoff_initial_s=0.01, backoff_max_s=0.05, cache=False)
POOL = {"probe_interval_s": 0.1, "health_interval_s": 30}
REPO = Path(__file__).resolve().parents[2]


def make(urls, pool=None, **kw):
    return LLMClient(urls, "m", pool={**POOL, **(pool or {})}, **{**FAST, **kw})


def settings(**kw):
    base = dict(max_concurrency=4, sticky=True, failover=True, down_after_failures=3, health_interval_s=30,
                probe_interval_s=0.1, probe_timeout_s=1, sticky_sessions_max=1000)
    return PoolSettings(**{**base, **kw})


async def _turns(client, sessions, turns, tool_s=0.0):
    """``sessions`` rollouts of ``turns`` turns each (a tool pause between turns); endpoint per turn."""
    async def rollout(i):
        eps = []
        for t in range(turns):
            r = await client.achat([{"role": "user", "content": f"s{i} t{t}"}], session=f"s{i}")
            eps.append(r.endpoint)
            await asyncio.sleep(tool_s)
        return eps
    return await asyncio.gather(*(rollout(i) for i in range(sessions)), return_exceptions=True)


def run(coro):
    return aio.submit(coro).result(timeout=60)


def later_share(routes):
    later = [(eps[0], e) for eps in routes for e in eps[1:]]
    return sum(a == b for a, b in later) / len(later)


# -- routing -------------------------------------------------------------------------------------------------


def test_first_turn_goes_to_the_least_outstanding_endpoint():
    pool = EndpointPool([("a", None), ("b", None), ("c", None)], settings(), probe=None)
    a, b, c = pool.endpoints
    a.in_flight, b.in_flight, b.queued, c.in_flight = 3, 1, 1, 1
    assert all(pool.choose(None) is c for _ in range(3))
    c.queued = 5
    assert all(pool.choose(None) is b for _ in range(5))  # outstanding = in flight + queued
    b.in_flight = c.in_flight = c.queued = b.queued = a.in_flight = 0
    assert {pool.choose(None).url for _ in range(3)} == {"a", "b", "c"}  # ties round robin


def test_later_turns_stick_and_a_taken_out_endpoint_moves_its_sessions():
    pool = EndpointPool([("a", None), ("b", None)], settings(), probe=None)
    first = pool.choose("s1")
    first.in_flight = 10  # busy, but the session stays for its prefix cache
    assert all(pool.choose("s1") is first for _ in range(3))
    first.up = False
    moved = pool.choose("s1")
    assert moved is not first and pool.choose("s1") is moved
    assert pool.counts["sticky_turns"] == 4 and pool.counts["moved_sessions"] == 1


def test_sticky_off_routes_every_turn_by_load():
    pool = EndpointPool([("a", None), ("b", None)], settings(sticky=False), probe=None)
    assert {pool.choose("s1").url for _ in range(4)} == {"a", "b"}


def test_sticky_sessions_over_http_and_switched_off():
    with FakeOpenAIServer(latency_s=0.02) as a, FakeOpenAIServer(latency_s=0.02) as b, \
            FakeOpenAIServer(latency_s=0.02) as c:
        urls = [a.base_url, b.base_url, c.base_url]
        on = make(urls, max_concurrency=8)
        routes = run(_turns(on, 12, 4))
        assert later_share(routes) == 1.0
        assert {eps[0] for eps in routes} == set(urls)  # first turns spread by load
        assert on.stats()["routing"]["first_turns"] == 12
        off = make(urls, pool={"sticky": False}, max_concurrency=8)
        assert later_share(run(_turns(off, 12, 4))) < 0.7
        on.close(), off.close()


# -- failover ------------------------------------------------------------------------------------------------


def _spawn_server(latency):
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.fake_llm_server", "--latency", *map(str, latency)],
                            stdout=subprocess.PIPE, text=True, cwd=REPO)
    line = proc.stdout.readline().split()
    assert line and line[0] == "READY", line
    return proc, line[1]


def _kill_mid_session(failover: bool):
    b, b_url = _spawn_server((0.01, 0.01))
    with FakeOpenAIServer(latency_s=0.01) as a:
        a_url = a.base_url
        c = make([a_url, b_url], pool={"failover": failover}, max_retries=2)
        first = run(_turns(c, 8, 1))
        on_b = [i for i, eps in enumerate(first) if eps[0] == b_url]
        b.kill()  # reset and refused from now on
        b.wait()
        later = run(_turns(c, 8, 2))
        st = c.stats()
        c.close()
        return a_url, b_url, on_b, later, st


def test_a_dead_endpoint_is_taken_out_and_its_sessions_finish_elsewhere():
    a, b, on_b, later, st = _kill_mid_session(failover=True)
    assert on_b and all(not isinstance(r, Exception) for r in later)
    assert all(e == a for eps in later for e in eps)
    assert st["endpoints"][b]["up"] is False and st["endpoints"][b]["taken_out"] == 1
    assert st["failures"] == 0


def test_without_failover_the_sessions_of_a_dead_endpoint_fail():
    a, b, on_b, later, st = _kill_mid_session(failover=False)
    lost = [r for r in later if isinstance(r, LLMError)]
    assert on_b and len(lost) == len(on_b)  # every session stuck to b errors; the others finish
    assert all(r.endpoint == b for r in lost) and st["endpoints"][b]["up"] is True


def test_repeated_5xx_takes_an_endpoint_out_then_a_probe_brings_it_back():
    with FakeOpenAIServer() as a, FakeOpenAIServer() as b:
        b.responder = lambda body: Reply(status=500)
        c = make([a.base_url, b.base_url], pool={"down_after_failures": 2}, max_retries=3, max_concurrency=1)
        res = run(_turns(c, 6, 2))
        assert all(not isinstance(r, Exception) for r in res)
        st = c.stats()["endpoints"][b.base_url]
        assert st["up"] is False and st["failed"] == 2  # taken out after 2; nothing sent there since
        b.responder = None
        deadline = time.monotonic() + 5
        while not c.stats()["endpoints"][b.base_url]["up"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.stats()["endpoints"][b.base_url]["restored"] == 1
        c.close()


def test_in_flight_requests_of_a_killed_server_are_retried_on_another():
    slow, slow_url = _spawn_server((1.0, 1.0))
    try:
        with FakeOpenAIServer(latency_s=0.01) as fast:
            c = make([slow_url, fast.base_url], max_concurrency=16)

            async def go():
                tasks = [asyncio.ensure_future(c.achat([{"role": "user", "content": str(i)}])) for i in range(16)]
                await asyncio.sleep(0.4)  # half of them are in flight on the slow one
                os.kill(slow.pid, signal.SIGKILL)
                return await asyncio.gather(*tasks)

            res = run(go())
            st = c.stats()
            assert len(res) == 16 and {r.endpoint for r in res} == {fast.base_url}
            assert st["endpoints"][slow_url]["failed"] >= 1 and st["endpoints"][slow_url]["up"] is False
            assert st["retries"] >= 1 and st["failures"] == 0
            c.close()
    finally:
        slow.kill()
        slow.wait()


def test_with_one_endpoint_nothing_is_taken_out(tmp_path):
    with FakeOpenAIServer() as a:
        a.script(*[Reply(status=500)] * 4)
        c = make([a.base_url], pool={"down_after_failures": 1}, max_retries=5)
        assert c.chat([{"role": "user", "content": "x"}]).text == "echo: x"
        assert c.stats()["endpoints"][a.base_url]["up"] is True


# -- async concurrency ---------------------------------------------------------------------------------------


def test_hundreds_in_flight_without_a_thread_each():
    srv, url = _spawn_server((0.5, 0.5))
    try:
        c = make([url], max_concurrency=300)
        threads_before = threading.active_count()
        seen = []

        async def go():
            tasks = [asyncio.ensure_future(c.achat([{"role": "user", "content": str(i)}])) for i in range(300)]
            while not all(t.done() for t in tasks):
                seen.append((c.stats()["endpoints"][url]["in_flight"], threading.active_count()))
                await asyncio.sleep(0.02)
            return await asyncio.gather(*tasks)

        t0 = time.monotonic()
        res = run(go())
        wall = time.monotonic() - t0
        assert len(res) == 300 and wall < 10  # 300 x 0.5 s at once, not 150 s one after another
        # the loop thread and asyncio's bounded resolver pool (getaddrinfo for new connections), not one a request
        assert max(n for n, _ in seen) >= 200 and max(t for _, t in seen) - threads_before <= 12
        c.close()
    finally:
        srv.kill()
        srv.wait()


def test_cap_per_endpoint_queues_and_measures_the_wait():
    with FakeOpenAIServer(latency_s=0.1) as a:
        c = make([a.base_url], max_concurrency=2)
        run(_turns(c, 6, 1))
        e = c.stats()["endpoints"][a.base_url]
        assert a.peak_in_flight == 2 and e["done"] == 6 and e["queue_wait_s_max"] >= 0.15
        assert 0.5 < e["busy_share"] <= 1.0 and e["in_flight"] == 0 and e["queued"] == 0
        c.close()


def test_sync_call_from_the_loop_thread_is_refused():
    with FakeOpenAIServer() as a:
        c = make([a.base_url])

        async def inside():
            return c.chat([{"role": "user", "content": "x"}])

        with pytest.raises(RuntimeError, match="would deadlock"):
            run(inside())


# -- stats for crucible stats --------------------------------------------------------------------------------


def test_close_writes_the_pool_stats_and_store_stats_reads_them(tmp_path):
    from crucible.pipelines.store.stats import llm_pool_stats

    with FakeOpenAIServer() as srv_a, FakeOpenAIServer() as srv_b:
        a, b = srv_a.base_url, srv_b.base_url
        for _ in range(2):
            c = LLMClient.from_config({"base_urls": [a, b], "cache": False}, out_dir=tmp_path)
            for i in range(4):
                c.chat([{"role": "user", "content": str(i)}])
            c.close()
        unused = LLMClient.from_config({"base_urls": [a], "cache": False}, out_dir=tmp_path)
        unused.close()  # no requests: no file
    files = sorted((tmp_path / "stats" / "llm_pool").glob("*.json"))
    assert len(files) == 2 and json.loads(files[0].read_text())["endpoints"][a]["done"] == 2
    s = llm_pool_stats(str(tmp_path))
    assert s["llm_endpoints"][a]["done"] == 4 and s["llm_endpoints"][b]["requests"] == 4
    assert s["llm_endpoints"][a]["clients"] == 2
    assert llm_pool_stats(str(tmp_path / "nothing")) == {}


def test_achat_awaited_on_another_loop_runs_on_the_llm_loop():
    with FakeOpenAIServer() as a:
        c = make([a.base_url])
        res = asyncio.run(c.achat([{"role": "user", "content": "x"}], session="s"))
        assert res.text == "echo: x" and res.endpoint == a.base_url
        c.close()


def test_beam_metrics_per_call_and_per_endpoint():
    import apache_beam as beam
    from apache_beam.metrics.metric import MetricsFilter
    from apache_beam.testing.test_pipeline import TestPipeline

    from crucible.pipelines.llm.metrics import report_beam_metrics, report_pool_metrics

    with FakeOpenAIServer() as a, FakeOpenAIServer() as b:
        cfg = {"base_urls": [a.base_url, b.base_url], "cache": False}

        class Ask(beam.DoFn):
            def setup(self):
                self.client = LLMClient.from_config(cfg, out_dir="/nonexistent-never-written")

            def process(self, q):
                report_beam_metrics(self.client.chat([{"role": "user", "content": q}]))
                yield q

            def finish_bundle(self):
                report_pool_metrics(self.client.stats())

        p = TestPipeline()
        _ = p | beam.Create(["a", "b", "c", "d"]) | beam.ParDo(Ask())
        result = p.run()
        result.wait_until_finish()
        urls = (a.base_url, b.base_url)
    q = result.metrics().query(MetricsFilter().with_namespace("crucible.llm"))
    counters = {m.key.metric.name: m.committed for m in q["counters"]}
    assert sum(counters[f"requests@{u}"] for u in urls) == 4
    assert [d.committed.count for d in q["distributions"] if d.key.metric.name == "queue_wait_ms"] == [4]
    gauges = {m.key.metric.name: m.committed.value for m in
              result.metrics().query(MetricsFilter().with_namespace("crucible.llm.pool"))["gauges"]}
    assert sum(gauges[f"done@{u}"] for u in urls) == 4 and all(gauges[f"up@{u}"] == 1 for u in urls)


def test_periodic_probe_takes_out_a_silent_endpoint_and_ends_with_a_dropped_client():
    import gc

    with FakeOpenAIServer() as a:
        dead, dead_url = _spawn_server((0.01, 0.01))
        c = make([a.base_url, dead_url], pool={"health_interval_s": 0.1})
        c.chat([{"role": "user", "content": "x"}])
        dead.kill()
        dead.wait()
        deadline = time.monotonic() + 5
        while c.stats()["endpoints"][dead_url]["up"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.stats()["endpoints"][dead_url]["taken_out"] == 1  # no request failed: the probe found it
        health, probe = c._pool._health_task, c._pool.endpoints[1].probe_task
        del c
        gc.collect()
        deadline = time.monotonic() + 5
        while not (health.done() and probe.done()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert health.done() and probe.done()


def test_partial_config_takes_the_schema_defaults():
    from crucible.pipelines.llm.settings import llm_schema

    props = llm_schema()["properties"]
    c = LLMClient.from_config({"base_urls": ["http://127.0.0.1:9/v1"], "cache": False})
    pool = props["pool"]["properties"]
    assert c.max_retries == props["max_retries"]["default"]
    assert c.pool_settings.max_concurrency == props["max_concurrency"]["default"]
    assert (c.pool_settings.sticky, c.pool_settings.down_after_failures, c.pool_settings.health_interval_s) == (
        pool["sticky"]["default"], pool["down_after_failures"]["default"], pool["health_interval_s"]["default"])
    assert c.stats_dir is None  # no out_dir, no stats_dir: no stats file


def test_crucible_stats_text_shows_the_endpoints(tmp_path):
    from crucible.pipelines.llm.metrics import write_pool_stats
    from crucible.pipelines.store.stats import format_stats, llm_pool_stats

    with FakeOpenAIServer() as a:
        c = make([a.base_url])
        c.chat([{"role": "user", "content": "x"}])
        write_pool_stats(str(tmp_path / "stats" / "llm_pool"), c.stats())
        url = a.base_url
    text = format_stats({"counts": {}, **llm_pool_stats(str(tmp_path))})
    assert "llm_endpoints:" in text and f"{url} " in text and "done=1" in text and "failed=0" in text
