"""SWE rollouts and grading on the engine pool (pipelines/swe/pooled.py ``pooled_call``, reached through
``run_rollout`` and ``grade_patch`` when ``ctx.pool`` is set), on fake engines: placed on the engine holding the
env image, the image pulled where missing, an engine that dies mid-call drained and the call run again
elsewhere, recorded as infra, one row per call; each with its switch-off."""

from pathlib import Path

from crucible.pipelines.swe import grade, rollout
from crucible.pipelines.swe.envs import ValidateContext
from crucible.sandbox.api import Settings
from crucible.sandbox.engines import Engine, EnginePool, EngineSpec
from tests.support.engine_calls import fake_grade_here, fake_rollout_here
from tests.support.registry_fake import FakeEngineClient, FakeRegistry

IMAGE = "crucible/env-r:py3.11-k1"
INST = {"instance_id": "o__r-1", "repo": "o/r", "base_commit": "c0", "env_image": IMAGE,
        "recipe": {"test_cmd": "pytest"}, "FAIL_TO_PASS": ["t::a"], "PASS_TO_PASS": []}


def make_ctx(tmp_path, *, drain=True, affinity=True, registry=None, reg_address=None):
    reg = registry or FakeRegistry()
    engines = [Engine(EngineSpec(n, f"unix:///tmp/{n}.sock", 2, None), FakeEngineClient(n, reg)) for n in "ab"]
    pool = EnginePool(engines, ping=lambda e: not e.client.down, affinity=affinity, drain=drain)
    settings = Settings(cache_dir=Path(tmp_path), registry=reg_address)
    return ValidateContext(client=None, settings=settings, workdir=Path(tmp_path), pool=pool), pool, reg


def _rollout(ctx):
    return rollout.run_rollout(ctx, INST, "gold", policy_name="gold", run_id="r")


def test_a_rollout_moves_off_an_engine_that_dies_mid_rollout(tmp_path, monkeypatch):
    ctx, pool, _ = make_ctx(tmp_path)
    calls = []
    monkeypatch.setattr(rollout, "rollout_here", fake_rollout_here("a", calls))
    row = _rollout(ctx)
    assert calls == ["a", "b"]  # run again on b, once
    assert row["exit_status"] == "submitted" and row["resolved"]  # the dead engine's error is no result
    assert row["meta"]["engine"] == "b"
    (retry,) = row["meta"]["engine_retries"]
    assert retry["engine"] == "a" and retry["kind"] == "infra" and "rollout_error" in retry["reason"]
    st = pool.stats()["engines"]
    assert st["a"]["drained"] and st["a"]["failed"] == 1 and st["b"]["done"] == 1
    assert IMAGE in pool.engines["b"].holds


def test_without_drain_the_dead_engine_error_is_the_rollout_row(tmp_path, monkeypatch):
    ctx, pool, _ = make_ctx(tmp_path, drain=False)
    calls = []
    monkeypatch.setattr(rollout, "rollout_here", fake_rollout_here("a", calls))
    row = _rollout(ctx)
    assert calls == ["a"] and row["exit_status"] == "error" and row["grade_reason"].startswith("rollout_error")
    assert row["meta"]["engine"] == "a" and "engine_retries" not in row["meta"]


def test_a_rollout_failing_on_a_live_engine_is_its_row_not_a_move(tmp_path, monkeypatch):
    ctx, pool, _ = make_ctx(tmp_path)
    calls = []
    broken = fake_rollout_here("a", calls)

    def live_but_failing(on, inst, policy, **kw):
        row = broken(on, inst, policy, **kw)
        on.client.down = False  # the engine answers: the failure was the rollout's own
        return row

    monkeypatch.setattr(rollout, "rollout_here", live_but_failing)
    row = _rollout(ctx)
    assert calls == ["a"] and row["exit_status"] == "error" and pool.engines["a"].drained is None


def test_grading_moves_off_a_dead_engine_and_says_where_it_ran(tmp_path, monkeypatch):
    ctx, pool, _ = make_ctx(tmp_path)
    calls = []
    monkeypatch.setattr(grade, "grade_here", fake_grade_here("a", calls))
    g = grade.grade_patch(ctx, INST, "diff")
    assert calls == ["a", "b"] and g["grade"] == "resolved" and g["engine"] == "b"
    assert [r["engine"] for r in g["engine_retries"]] == ["a"] and g["engine_retries"][0]["kind"] == "infra"


def test_without_drain_grading_on_a_dead_engine_is_an_infra_grade(tmp_path, monkeypatch):
    ctx, pool, _ = make_ctx(tmp_path, drain=False)
    calls = []
    monkeypatch.setattr(grade, "grade_here", fake_grade_here("a", calls))
    g = grade.grade_patch(ctx, INST, "diff")
    assert calls == ["a"] and g["grade"] == "infra" and g["engine_retries"] == []


def test_a_rollout_goes_to_the_engine_that_holds_the_env_image(tmp_path, monkeypatch):
    ctx, pool, _ = make_ctx(tmp_path)
    pool.engines["b"].client.build(IMAGE)  # built there by an earlier run: not in the pool's memory
    calls = []
    monkeypatch.setattr(rollout, "rollout_here", fake_rollout_here(None, calls))
    row = _rollout(ctx)
    assert calls == ["b"] and row["meta"]["image_there"]


def test_without_affinity_the_least_loaded_engine_runs_it_without_the_image(tmp_path, monkeypatch):
    ctx, pool, _ = make_ctx(tmp_path, affinity=False)
    pool.engines["b"].client.build(IMAGE)
    calls = []
    monkeypatch.setattr(rollout, "rollout_here", fake_rollout_here(None, calls))
    row = _rollout(ctx)
    assert calls == ["a"] and not row["meta"]["image_there"]


def test_an_engine_lacking_the_image_pulls_it_from_the_registry_never_builds(tmp_path, monkeypatch):
    reg = FakeRegistry()
    reg.blobs[f"127.0.0.1:5000/{IMAGE}"] = "sha256:built-once"
    ctx, pool, _ = make_ctx(tmp_path, registry=reg, reg_address="127.0.0.1:5000")
    calls = []
    monkeypatch.setattr(rollout, "rollout_here", fake_rollout_here(None, calls))
    row = _rollout(ctx)
    a = pool.engines["a"].client
    assert row["meta"]["image_there"] and a.pulls == [f"127.0.0.1:5000/{IMAGE}"] and a.builds == []
    assert a.store[IMAGE].id == "sha256:built-once"


def test_without_a_registry_nothing_is_pulled(tmp_path, monkeypatch):
    reg = FakeRegistry()
    reg.blobs[f"127.0.0.1:5000/{IMAGE}"] = "sha256:built-once"
    ctx, pool, _ = make_ctx(tmp_path, registry=reg, reg_address=None)
    calls = []
    monkeypatch.setattr(rollout, "rollout_here", fake_rollout_here(None, calls))
    row = _rollout(ctx)
    assert not row["meta"]["image_there"] and pool.engines["a"].client.pulls == []


def test_without_a_pool_the_call_runs_on_the_context_engine(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(rollout, "rollout_here", fake_rollout_here(None, calls))
    ctx = ValidateContext(client=FakeEngineClient("local"), settings=None, workdir=Path(tmp_path))
    row = _rollout(ctx)
    assert calls == ["local"] and "engine" not in row["meta"]


def test_unplaced_work_leaves_a_drained_engine_and_keeps_the_pool(tmp_path):
    from crucible.pipelines.swe.pooled import live_ctx

    ctx, pool, _ = make_ctx(tmp_path)
    ctx.client = pool.engines["a"].client
    assert live_ctx(ctx) is ctx  # a live: as it was
    pool.drain(pool.engines["a"], "gone")
    moved = live_ctx(ctx)
    assert moved.client is pool.engines["b"].client and moved.pool is pool


def test_without_a_pool_the_context_stays_on_its_engine(tmp_path):
    from crucible.pipelines.swe.pooled import live_ctx

    ctx = ValidateContext(client=FakeEngineClient("local"), settings=None, workdir=Path(tmp_path))
    assert live_ctx(ctx) is ctx
