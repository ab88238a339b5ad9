"""The LLM benchmarks' own measuring and report code, against fake servers (the real runs are
benchmarks/bench_llm_pool.py and benchmarks/bench_embedded_slots.py)."""

import pytest

from benchmarks import bench_embedded_slots as slots
from benchmarks import bench_llm_pool as pool
from crucible.pipelines.llm.embedded import EmbeddedModelError
from tests.support.fake_llm_server import FakeManagedServer, FakeOpenAIServer, Reply

USAGE = {"prompt_tokens": 40, "completion_tokens": 32, "total_tokens": 72}


def test_measure_counts_generated_tokens_of_concurrent_unique_requests():
    with FakeOpenAIServer(responder=lambda b: Reply(content="x", usage=USAGE), latency_s=0.05) as srv:
        row = slots.measure(srv.base_url, concurrency=2, per_slot=3, max_tokens=32)
        bodies = srv.chat_requests
    assert row["requests"] == 6 and row["completion_tokens"] == 192 and row["prompt_tokens"] == 240
    assert row["gen_tokens_per_s"] == pytest.approx(192 / row["wall_s"], rel=0.01)
    assert all(b["ignore_eos"] is True and b["max_tokens"] == 32 and b["temperature"] == 0.0 for b in bodies)
    assert len({b["messages"][0]["content"][:10] for b in bodies}) == 6  # no shared prefix
    assert srv.peak_in_flight == 2


def test_best_slots_picks_the_fastest_and_reports_speedups():
    rows = [{"n_parallel": 1, "gen_tokens_per_s": 20.0}, {"n_parallel": 2, "gen_tokens_per_s": 31.0},
            {"n_parallel": 4, "gen_tokens_per_s": 29.0}]
    s = slots.best_slots(rows)
    assert s["best_n_parallel"] == 2 and s["speedup_vs_1"] == {"1": 1.0, "2": 1.55, "4": 1.45}
    assert slots.best_slots([{"bench": "embedded_slots", "skipped": "no model"}])["best_n_parallel"] is None


def test_run_slots_starts_one_server_per_slot_count(monkeypatch):
    made = []

    def fake_make_server(cfg):
        made.append(FakeManagedServer(cfg, responder=lambda b: Reply(content="x", usage=USAGE)))
        return made[-1]

    monkeypatch.setattr(slots, "make_server", fake_make_server)
    rows = slots.run_slots([1, 2], per_slot=1, max_tokens=8)
    assert [m.cfg["embedded"]["n_parallel"] for m in made] == [1, 2] and all(m.stopped for m in made)
    assert [r["client_concurrency"] for r in rows[:2]] == [1, 2] and rows[2]["summary"] is True
    assert rows[1]["requests"] == 2 and rows[2]["best_n_parallel"] in (1, 2)


def test_run_slots_without_the_engine_is_one_skipped_row(monkeypatch):
    def no_engine(cfg):
        raise EmbeddedModelError("the embedded LLM engine (xllamacpp) is not installed")

    monkeypatch.setattr(slots, "make_server", no_engine)
    assert slots.run_slots([1, 2, 4], 1, 8) == [{"bench": "embedded_slots", "skipped":
                                                 "the embedded LLM engine (xllamacpp) is not installed"}]


def test_pool_bench_loses_no_rollout_when_an_endpoint_is_killed():
    row = pool.bench_pool(8, duration_s=1.5, turns=2, endpoints=2, kill_at_s=0.7, latency=(0.05, 0.1))
    assert row["rollouts"] > 8 and row["rollouts_lost"] == 0 and row["failures"] == 0
    assert sum(not e["up"] for e in row["per_endpoint"].values()) == 1
    assert 0 < row["fraction_of_bound"] <= 1.0 and row["requests"] == 2 * row["rollouts"]
    assert row["throughput_rps"] <= row["bound_rps"] * 1.01
