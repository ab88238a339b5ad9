"""LLMClient against the scripted fake OpenAI-compatible server (real HTTP on loopback)."""

import json
import pickle
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from crucible.pipelines.config import load_config
from crucible.pipelines.http_retry import retry_after_seconds
from crucible.pipelines.llm.client import ChatResult, LLMClient, LLMError, report_beam_metrics
from tests.support.fake_llm_server import FakeOpenAIServer, Reply

MSGS = [{"role": "user", "content": "hello"}]
FAST = dict(backoff_initial_s=0.01, backoff_max_s=0.05, cache=False)


@pytest.fixture
def srv():
    with FakeOpenAIServer() as s:
        yield s


def client(urls, **kw):
    return LLMClient(urls if isinstance(urls, list) else [urls], "test-model", **{**FAST, **kw})


# -- retries ------------------------------------------------------------------------------------


def test_retries_429_500_503_then_success(srv):
    srv.script(Reply(status=429), Reply(status=500), Reply(status=503), Reply(content="finally"))
    c = client(srv.base_url, max_retries=5)
    res = c.chat(MSGS)
    assert res.text == "finally" and res.retries == 3 and not res.cache_hit
    assert len(srv.chat_requests) == 4
    st = c.stats()
    assert (st["requests"], st["retries"], st["failures"], st["calls"]) == (4, 3, 0, 1)


def test_gives_up_after_max_retries_with_typed_error(srv):
    srv.script(*[Reply(status=500)] * 5)
    c = client(srv.base_url, max_retries=2)
    with pytest.raises(LLMError, match=r"after 3 attempt\(s\) \(transient, retries exhausted\)") as ei:
        c.chat(MSGS)
    assert ei.value.attempts == 3 and ei.value.status == 500
    assert len(srv.chat_requests) == 3
    assert c.stats()["failures"] == 1


def test_client_error_is_not_retried(srv):
    srv.script(Reply(status=400), Reply(content="never reached"))
    c = client(srv.base_url, max_retries=5)
    with pytest.raises(LLMError, match="not retryable") as ei:
        c.chat(MSGS)
    assert ei.value.status == 400 and len(srv.chat_requests) == 1


def test_timeout_is_retried(srv):
    srv.script(Reply(content="slow", delay_s=2.0), Reply(content="fast"))
    c = client(srv.base_url, timeout_s=0.3, max_retries=2)
    t0 = time.monotonic()
    res = c.chat(MSGS)
    assert res.text == "fast" and res.retries == 1
    assert 0.3 <= time.monotonic() - t0 < 1.5


def test_connection_refused_is_retried_then_raises():
    with FakeOpenAIServer() as s:
        url = s.base_url
    c = client(url, max_retries=1)
    with pytest.raises(LLMError, match="APIConnectionError") as ei:
        c.chat(MSGS)
    assert ei.value.attempts == 2


def test_retry_after_header_is_honoured(srv):
    srv.script(Reply(status=429, headers={"Retry-After": "0.6"}), Reply(content="ok"))
    c = client(srv.base_url, backoff_initial_s=0.001, backoff_max_s=0.001)
    res = c.chat(MSGS)
    t = [r.t for r in srv.requests]
    assert res.text == "ok" and t[1] - t[0] >= 0.55


def test_retry_after_ms_and_cap(srv):
    srv.script(Reply(status=429, headers={"retry-after-ms": "150"}), Reply(status=503, headers={"Retry-After": "60"}),
               Reply(content="ok"))
    c = client(srv.base_url, backoff_initial_s=0.001, retry_after_max_s=0.2)
    t0 = time.monotonic()
    assert c.chat(MSGS).text == "ok"
    t = [r.t for r in srv.requests]
    assert t[1] - t[0] >= 0.13 and 0.18 <= t[2] - t[1] < 2  # 60 s capped to 0.2 s
    assert time.monotonic() - t0 < 3


def test_retry_after_parsing_pure():
    assert retry_after_seconds({"Retry-After": "7"}) == 7.0
    assert retry_after_seconds({"retry-after-ms": "1500"}) == 1.5
    assert retry_after_seconds({"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=1445412480.0) == 10.0
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({}) is None


# -- concurrency, rate limits, endpoints --------------------------------------------------------------


def test_concurrency_cap_per_endpoint_is_respected():
    with FakeOpenAIServer(latency_s=0.1) as s:
        c = client(s.base_url, max_concurrency=3)
        t0 = time.monotonic()
        with ThreadPoolExecutor(12) as ex:
            results = list(ex.map(lambda i: c.chat([{"role": "user", "content": f"q{i}"}]), range(12)))
        elapsed = time.monotonic() - t0
        assert s.peak_in_flight == 3
        assert len(results) == 12 and {r.text for r in results} == {f"echo: q{i}" for i in range(12)}
        assert elapsed >= 0.38  # 12 calls / 3 at a time * 0.1 s


def test_requests_per_minute_paces_request_starts():
    with FakeOpenAIServer() as s:
        c = client(s.base_url, max_concurrency=8, requests_per_minute=1200)  # one per 50 ms
        with ThreadPoolExecutor(8) as ex:
            list(ex.map(lambda i: c.chat([{"role": "user", "content": str(i)}]), range(8)))
        t = sorted(r.t for r in s.requests)
        assert t[-1] - t[0] >= 0.3  # 7 gaps of 50 ms, less the first request's arrival jitter under load
        gaps = sorted(b - a for a, b in zip(t, t[1:], strict=False))
        # paced, not a burst: a loaded machine may bunch one pair of arrivals, never most of them
        assert gaps[len(gaps) // 2] >= 0.035 and sum(g < 0.02 for g in gaps) <= 1


def test_tokens_per_minute_paces_by_used_tokens():
    usage = {"prompt_tokens": 60, "completion_tokens": 40, "total_tokens": 100}
    with FakeOpenAIServer(responder=lambda body: Reply(content="x", usage=usage)) as s:
        c = client(s.base_url, tokens_per_minute=60_000)  # 1000 tokens/s -> 100 ms per call
        for i in range(5):
            c.chat([{"role": "user", "content": str(i)}], max_tokens=100)
        t = [r.t for r in s.requests]
        assert t[-1] - t[0] >= 0.35


def test_requests_spread_across_endpoints_each_capped():
    with FakeOpenAIServer(latency_s=0.1) as a, FakeOpenAIServer(latency_s=0.1) as b:
        c = client([a.base_url, b.base_url], max_concurrency=2)
        with ThreadPoolExecutor(8) as ex:
            res = list(ex.map(lambda i: c.chat([{"role": "user", "content": str(i)}]), range(8)))
        na, nb = len(a.chat_requests), len(b.chat_requests)
        assert na + nb == 8 and na >= 3 and nb >= 3
        assert a.peak_in_flight <= 2 and b.peak_in_flight <= 2
        assert {r.endpoint for r in res} == {a.base_url, b.base_url}
        assert c.stats()["per_endpoint"] == {a.base_url: na, b.base_url: nb}


def test_retry_fails_over_to_the_other_endpoint():
    with FakeOpenAIServer() as a, FakeOpenAIServer() as b:
        a.script(Reply(status=502))
        c = client([a.base_url, b.base_url])
        res = c.chat(MSGS)
        assert res.retries == 1 and res.endpoint == b.base_url
        assert len(a.chat_requests) == 1 and len(b.chat_requests) == 1


# -- request shape, params, tool calls ----------------------------------------------------------------


def test_params_precedence_and_extra_body(srv):
    from crucible.pipelines.llm.prompts import parse_prompt

    p = parse_prompt({"id": "p", "version": 2, "user": "x", "params": {"temperature": 0, "max_tokens": 9}}, "t")
    c = client(srv.base_url, default_params={"temperature": 0.7, "max_tokens": 100, "seed": 3})
    res = c.chat(MSGS, prompt=p, max_tokens=20, top_k=5)
    body = srv.chat_requests[-1]
    assert body["model"] == "test-model" and body["messages"] == MSGS
    assert (body["temperature"], body["max_tokens"], body["seed"], body["top_k"]) == (0, 20, 3, 5)
    assert (res.prompt_id, res.prompt_version) == ("p", "2")
    c.chat(MSGS, seed=None)
    assert "seed" not in srv.chat_requests[-1]


def test_native_tool_calls_normalized(srv):
    tc = [{"id": "call_x", "type": "function", "function": {"name": "search", "arguments": '{"query": "q"}'}}]
    srv.script(Reply(content=None, tool_calls=tc, finish_reason="tool_calls"))
    tools = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}]
    res = client(srv.base_url).chat(MSGS, tools=tools)
    assert res.tool_calls == tc and res.finish_reason == "tool_calls"
    assert res.message == {"role": "assistant", "content": None, "tool_calls": tc}
    assert srv.chat_requests[-1]["tools"] == tools


def test_text_tool_calls_parsed_only_when_tools_offered(srv):
    content = 'ok <tool_call>{"name": "search", "arguments": {"query": "q"}}</tool_call>'
    srv.script(Reply(content=content), Reply(content=content))
    tools = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}]
    c = client(srv.base_url)
    with_tools = c.chat(MSGS, tools=tools)
    assert [t["function"]["name"] for t in with_tools.tool_calls] == ["search"]
    assert json.loads(with_tools.tool_calls[0]["function"]["arguments"]) == {"query": "q"}
    assert with_tools.text == "ok"
    without = c.chat(MSGS)
    assert without.tool_calls == [] and without.text == content


# -- structured output ----------------------------------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"capital": {"type": "string", "minLength": 2}},
          "required": ["capital"], "additionalProperties": False}


def test_structured_valid_first_time_sends_json_schema(srv):
    srv.script(Reply(content='{"capital": "Paris"}'))
    res = client(srv.base_url).structured(MSGS, SCHEMA, name="cap")
    assert res.parsed == {"capital": "Paris"} and res.ok and res.attempts == 1
    rf = srv.chat_requests[-1]["response_format"]
    assert rf == {"type": "json_schema", "json_schema": {"name": "cap", "schema": SCHEMA, "strict": True}}


def test_structured_invalid_then_valid_retries_with_the_error_shown(srv):
    srv.script(Reply(content='{"capital": 7}'), Reply(content='```json\n{"capital": "Lima"}\n```'))
    c = client(srv.base_url)
    res = c.structured(MSGS, SCHEMA)
    assert res.parsed == {"capital": "Lima"} and res.attempts == 2
    second = srv.chat_requests[1]["messages"]
    assert second[1] == {"role": "assistant", "content": '{"capital": 7}'}
    assert "schema violation at capital" in second[2]["content"]
    assert res.usage["total_tokens"] > 0 and c.stats()["structured_invalid"] == 1


def test_structured_final_failure_keeps_raw_text_and_reason(srv):
    srv.script(Reply(content="I think it is Paris."), Reply(content='{"city": "Paris"}'))
    c = client(srv.base_url)
    res = c.structured(MSGS, SCHEMA, max_attempts=2)
    assert res.parsed is None and not res.ok
    assert res.error.startswith("invalid structured output after 2 attempt(s): schema violation")
    assert res.text == '{"city": "Paris"}' and res.raw["choices"][0]["message"]["content"] == '{"city": "Paris"}'
    assert len(srv.chat_requests) == 2 and c.stats()["structured_failed"] == 1


def test_structured_rejects_invalid_schema_before_calling(srv):
    from jsonschema import SchemaError

    with pytest.raises(SchemaError):
        client(srv.base_url).structured(MSGS, {"type": "nonsense"})
    assert srv.chat_requests == []


# -- cache ----------------------------------------------------------------------------------------------


def test_second_run_replays_from_cache_with_zero_requests(srv, tmp_path):
    srv.responder = lambda body: Reply(content='{"capital": "Paris"}' if "response_format" in body
                                       else f"echo: {body['messages'][-1]['content']}")
    prompts = [[{"role": "user", "content": f"q{i}"}] for i in range(3)]
    first = LLMClient([srv.base_url], "m", cache_dir=tmp_path)
    r1 = [first.chat(m) for m in prompts] + [first.structured(MSGS, SCHEMA)]
    assert len(srv.chat_requests) == 4
    srv.reset_stats()
    second = LLMClient([srv.base_url], "m", cache_dir=tmp_path)
    r2 = [second.chat(m) for m in prompts] + [second.structured(MSGS, SCHEMA)]
    assert srv.chat_requests == []
    assert [r.text for r in r2] == [r.text for r in r1] and r2[-1].parsed == {"capital": "Paris"}
    assert all(r.cache_hit for r in r2) and second.stats()["cache_hits"] == 4
    assert second.stats()["requests"] == 0


def test_cache_distinguishes_sample_index_and_prompt_version(srv, tmp_path):
    c = LLMClient([srv.base_url], "m", cache_dir=tmp_path)
    c.chat(MSGS, sample_index=0)
    c.chat(MSGS, sample_index=1)
    c.chat(MSGS, prompt=("p", 1))
    c.chat(MSGS, prompt=("p", 2))
    c.chat(MSGS, prompt=("p", 2))
    assert len(srv.chat_requests) == 4


def test_sample_index_offsets_the_seed(srv):
    c = client(srv.base_url, default_params={"seed": 10, "temperature": 1.0})
    for i in range(3):
        c.chat(MSGS, sample_index=i)
    assert [b["seed"] for b in srv.chat_requests] == [10, 11, 12]


def test_cache_can_be_disabled(srv, tmp_path):
    for _ in range(2):
        LLMClient([srv.base_url], "m", cache_dir=tmp_path, cache=False).chat(MSGS)
    c = LLMClient([srv.base_url], "m", cache_dir=tmp_path)
    c.chat(MSGS, use_cache=False)
    assert len(srv.chat_requests) == 3 and not any(tmp_path.iterdir())


# -- construction, accounting, threads, Beam -----------------------------------------------------------------


def test_from_config_uses_the_llm_section_and_pickles(srv, tmp_path):
    cfg = load_config("defaults", [f"llm.base_urls=[{srv.base_url}]", "llm.max_concurrency=4",
                                   "llm.temperature=0.1", f"llm.cache_dir={tmp_path}"]).llm
    c = LLMClient.from_config(cfg)
    c.chat(MSGS)
    body = srv.chat_requests[-1]
    assert body["model"] == "qwen2.5-coder-1.5b-instruct-q4_k_m" and body["temperature"] == 0.1
    assert body["max_tokens"] == 512 and body["seed"] == 0
    clone = pickle.loads(pickle.dumps(c))
    assert clone.base_urls == [srv.base_url] and clone.cache.dir == tmp_path
    assert clone.chat(MSGS).cache_hit


def test_from_config_errors_are_clear(monkeypatch):
    with pytest.raises(ValueError, match="llm.base_urls is empty"):
        LLMClient.from_config({"model": "m", "base_urls": []})
    monkeypatch.delenv("CRUCIBLE_TEST_KEY", raising=False)
    with pytest.raises(ValueError, match="environment variable CRUCIBLE_TEST_KEY is not set"):
        LLMClient.from_config({"base_urls": ["http://127.0.0.1:1/v1"], "api_key_env": "CRUCIBLE_TEST_KEY"})


def test_api_key_from_env_is_sent(srv, monkeypatch):
    monkeypatch.setenv("CRUCIBLE_TEST_KEY", "sekrit")
    c = LLMClient.from_config({"base_urls": [srv.base_url], "api_key_env": "CRUCIBLE_TEST_KEY", "cache": False})
    c.chat(MSGS)
    assert srv.requests[-1].headers.get("authorization") == "Bearer sekrit"


def test_accounting_per_call_and_thread_safe_aggregates():
    usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    with FakeOpenAIServer(responder=lambda b: Reply(content="x", usage=usage)) as s:
        c = client(s.base_url, max_concurrency=8)
        barrier = threading.Barrier(8)

        def work(i):
            barrier.wait()
            return [c.chat([{"role": "user", "content": f"{i}-{j}"}]) for j in range(10)]

        with ThreadPoolExecutor(8) as ex:
            results = [r for rs in ex.map(work, range(8)) for r in rs]
        st = c.stats()
        assert (st["calls"], st["requests"], st["prompt_tokens"], st["completion_tokens"]) == (80, 80, 560, 240)
        acc = results[0].accounting()
        assert acc["prompt_tokens"] == 7 and acc["completion_tokens"] == 3 and acc["cache_hit"] is False
        assert acc["latency_s"] > 0 and acc["retries"] == 0 and acc["model"] == "test-model"


def test_beam_dofn_builds_client_in_setup_and_reports_metrics(srv, tmp_path):
    import apache_beam as beam
    from apache_beam.metrics.metric import MetricsFilter
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    cfg = {"base_urls": [srv.base_url], "model": "m", "cache_dir": str(tmp_path), "max_retries": 2,
           "backoff_initial_s": 0.01}
    srv.script(Reply(status=500))

    class Ask(beam.DoFn):
        def __init__(self, llm_cfg):
            self.llm_cfg = llm_cfg

        def setup(self):
            self.client = LLMClient.from_config(self.llm_cfg)

        def process(self, q):
            res = self.client.chat([{"role": "user", "content": q}])
            report_beam_metrics(res)
            yield res.text

    p = TestPipeline()
    out = p | beam.Create(["a", "b", "c"]) | beam.ParDo(Ask(cfg))
    assert_that(out, equal_to(["echo: a", "echo: b", "echo: c"]))
    result = p.run()
    result.wait_until_finish()
    counters = {m.key.metric.name: m.committed for m in
                result.metrics().query(MetricsFilter().with_namespace("crucible.llm"))["counters"]}
    assert counters["calls"] == 3 and counters["retries"] == 1 and counters["prompt_tokens"] > 0
    dists = result.metrics().query(MetricsFilter().with_name("latency_ms"))["distributions"]
    assert dists and dists[0].committed.count == 3


def test_chat_result_message_without_tool_calls():
    r = ChatResult(text="hi", tool_calls=[], finish_reason="stop", usage={}, latency_s=0, retries=0,
                   cache_hit=False, raw=None, model="m")
    assert r.message == {"role": "assistant", "content": "hi"} and r.ok


def test_rate_pacer_reserves_slots_and_adjusts():
    from crucible.pipelines.llm.client import RatePacer

    now = [100.0]
    slept = []

    def sleep(s):
        slept.append(round(s, 6))
        now[0] += s

    p = RatePacer(60, clock=lambda: now[0], sleep=sleep)  # 1 unit per second
    assert p.acquire() == 0
    assert p.acquire() == 1.0 and p.acquire(2) == 1.0  # slots at t=101, then t=102 (2 units)
    assert slept == [1.0, 1.0] and now[0] == 102.0
    p.adjust(-2)  # the 2-unit reservation really used 0 units
    assert p.acquire() == 0.0
    with pytest.raises(ValueError):
        RatePacer(0)


def test_backoff_is_jittered_exponential_and_capped():
    import random

    from crucible.pipelines.http_retry import backoff_seconds

    rng = random.Random(0)
    for attempt, base in ((1, 1.0), (2, 2.0), (3, 4.0), (10, 30.0)):
        vals = [backoff_seconds(attempt, 1.0, 30.0, rng) for _ in range(50)]
        assert all(base / 2 <= v <= base for v in vals) and len(set(vals)) > 1


@pytest.mark.parametrize("text, expected", [
    ('{"a": 1}', {"a": 1}),
    ('```json\n{"a": 1}\n```', {"a": 1}),
    ('Here you go: {"a": {"b": 2}} hope it helps', {"a": {"b": 2}}),
    ("[1, 2]", [1, 2]),
])
def test_parse_json_text_accepts_common_wrappings(text, expected):
    from crucible.pipelines.llm.client import parse_json_text

    assert parse_json_text(text) == expected


@pytest.mark.parametrize("text", [None, "", "Paris", "{'a': 1}"])
def test_parse_json_text_rejects_non_json(text):
    from crucible.pipelines.llm.client import parse_json_text

    with pytest.raises(ValueError):
        parse_json_text(text)
