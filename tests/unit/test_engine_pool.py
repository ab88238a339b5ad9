"""The engine pool (sandbox/engines.py) and images shared through a registry (sandbox/registry.py), on fake
engines (tests/support/registry_fake.py): placement, capacity, drain + retry recorded as infra, build once;
each defense with its switch-off."""

import json
import threading
import time

import pytest

from crucible.sandbox.engines import (
    Engine,
    EnginePool,
    EngineSpec,
    NoEngineLeft,
    run_on_pool,
    specs_from_config,
    stats_path_in,
)
from crucible.sandbox.registry import Registry, shared_image
from tests.support.registry_fake import FakeEngineClient, FakeRegistry


def make_pool(names=("a", "b"), capacity=2, *, affinity=True, drain=True, registry=None, stats_path=None):
    reg = registry or FakeRegistry()
    engines = [Engine(EngineSpec(n, f"unix:///tmp/{n}.sock", capacity, None), FakeEngineClient(n, reg))
               for n in names]

    def ping(e):
        return not e.client.down

    return EnginePool(engines, ping=ping, affinity=affinity, drain=drain, stats_path=stats_path), reg


# --- placement ---------------------------------------------------------------------------------------------

def test_work_goes_to_the_engine_that_holds_its_env_even_when_busier():
    pool, _ = make_pool()
    a, b = pool.engines["a"], pool.engines["b"]
    a.holds.add("env-x")
    a.in_flight = 1  # a is busier than b, but holds the env
    assert pool.place("env-x") is a
    assert pool.place("env-y") is b  # nobody holds it: the least loaded


def test_least_loaded_is_by_share_of_capacity_then_fewer_done():
    pool, _ = make_pool()
    a, b = pool.engines["a"], pool.engines["b"]
    a.spec = EngineSpec("a", "unix:///a", 4, None)
    a.in_flight, b.in_flight = 1, 1  # a: 1/4, b: 1/2
    assert pool.place(None) is a
    a.in_flight, b.in_flight, a.done = 0, 0, 3
    assert pool.place(None) is b


def test_a_holder_that_is_full_gives_way_to_a_free_engine():
    pool, _ = make_pool(capacity=1)
    a, b = pool.engines["a"], pool.engines["b"]
    a.holds.add("env-x")
    a.in_flight = 1
    assert pool.place("env-x") is b


def test_capacity_is_respected_acquire_waits_for_a_slot():
    pool, _ = make_pool(names=("a",), capacity=2)
    l1, l2 = pool.acquire("e1"), pool.acquire("e2")
    assert pool.engines["a"].in_flight == 2 and pool.place(None) is None
    got = []
    t = threading.Thread(target=lambda: got.append(pool.acquire("e3")))
    t.start()
    time.sleep(0.3)
    assert not got  # no third slot
    pool.release(l1, ok=True)
    t.join(5)
    assert got and got[0].engine.name == "a" and pool.engines["a"].in_flight == 2
    assert pool.engines["a"].queue_wait_s[-1] >= 0.25
    pool.release(l2, ok=True)
    pool.release(got[0], ok=True)
    assert pool.engines["a"].in_flight == 0 and pool.engines["a"].done == 3


def test_without_affinity_an_env_moves_between_engines_and_is_pulled_more():
    def pulls(affinity: bool) -> int:
        pool, reg = make_pool(affinity=affinity)
        r = Registry("127.0.0.1:5000", lock_dir=lock_dir)

        def work(eng, left):
            with shared_image(eng.client, r, "crucible/env-x:py3.11-k1", "k1"):
                if not eng.client.store.get("crucible/env-x:py3.11-k1"):
                    eng.client.build("crucible/env-x:py3.11-k1")
            for item in left:
                yield item, item

        for group in range(6):  # six groups of the same env, one after another
            list(run_on_pool(pool, "env-x", [group], work, is_infra=lambda r: False, key=str,
                             holds=lambda r: ()))
        return sum(len(e.client.pulls) for e in pool.engines.values())

    import tempfile

    lock_dir = tempfile.mkdtemp()
    assert pulls(affinity=True) == 0  # every group of env-x on the engine that built it
    assert pulls(affinity=False) >= 1  # least loaded ties broken by fewer done: the env hops, and is pulled


def test_engine_specs_from_config():
    specs = specs_from_config([{"host": None, "capacity": 4, "tls": None},
                               {"host": "tcp://10.0.0.2:2376", "capacity": 8,
                                "tls": {"ca": "/c/ca.pem", "cert": "/c/cert.pem", "key": "/c/key.pem"}}])
    assert [(s.name, s.capacity) for s in specs] == [("local", 4), ("tcp://10.0.0.2:2376", 8)]
    with pytest.raises(ValueError, match="twice"):
        specs_from_config([{"host": "unix:///a", "capacity": 1, "tls": None}] * 2)
    with pytest.raises(ValueError, match="tls is for tcp"):
        EngineSpec("x", "unix:///a", 1, {"ca": "a", "cert": "b", "key": "c"})
    with pytest.raises(ValueError, match="capacity"):
        EngineSpec("x", "unix:///a", 0, None)


# --- drain + retry -----------------------------------------------------------------------------------------

class Res:
    def __init__(self, item, engine, infra=False):
        self.item, self.engine, self.infra = item, engine, infra
        self.row = {"reason": "infra: daemon error" if infra else None}


def dying_work(kill_at: str, mode: str):
    """Work over items that, on engine a, kills the engine at ``kill_at``: an infra result (mode "result") or an
    exception from the docker call (mode "raise")."""
    def work(eng, left):
        for item in left:
            if eng.name == "a" and item == kill_at:
                eng.client.down = True
                if mode == "raise":
                    eng.client.ping()  # the SDK's ConnectionError, out of the work
                yield item, Res(item, eng.name, infra=True)
                continue
            yield item, Res(item, eng.name)
    return work


@pytest.mark.parametrize("mode", ["result", "raise"])
def test_a_dead_engine_is_drained_and_its_items_retried_elsewhere_as_infra(mode):
    pool, _ = make_pool()
    out = list(run_on_pool(pool, "env-x", ["i1", "i2", "i3"], dying_work("i2", mode),
                           is_infra=lambda r: r.infra, key=str, holds=lambda r: ()))
    assert [i for i, _, _ in out] == ["i1", "i2", "i3"]  # each once, in order
    by = {i: (r, att) for i, r, att in out}
    assert by["i1"][0].engine == "a" and by["i1"][1] == []
    assert by["i2"][0].engine == "b" and not by["i2"][0].infra  # its result is the live engine's
    assert [a["engine"] for a in by["i2"][1]] == ["a"] and by["i2"][1][0]["kind"] == "infra"
    assert by["i3"][0].engine == "b" and by["i3"][1] == []
    st = pool.stats()["engines"]
    assert st["a"]["drained"] and st["a"]["failed"] == 1 and st["b"]["done"] == 1 and st["b"]["drained"] is None
    assert pool.place("env-x") is pool.engines["b"]  # drained: no new work


def test_without_drain_the_engine_death_stands_as_the_result_or_loses_the_items():
    pool, _ = make_pool(drain=False)
    out = list(run_on_pool(pool, "env-x", ["i1", "i2", "i3"], dying_work("i2", "result"),
                           is_infra=lambda r: r.infra, key=str, holds=lambda r: ()))
    assert out[1][1].infra and out[1][1].engine == "a"  # the dead engine's failure is i2's row
    pool, _ = make_pool(drain=False)
    got = []
    with pytest.raises(Exception, match="connection refused"):
        for item, _, _ in run_on_pool(pool, "env-x", ["i1", "i2", "i3"], dying_work("i2", "raise"),
                                      is_infra=lambda r: r.infra, key=str, holds=lambda r: ()):
            got.append(item)
    assert got == ["i1"]  # i2 and i3 are lost


def test_an_infra_failure_of_a_live_engine_is_a_row_not_a_move():
    pool, _ = make_pool()

    def work(eng, left):
        for item in left:
            yield item, Res(item, eng.name, infra=item == "i1")

    out = list(run_on_pool(pool, None, ["i1", "i2"], work, is_infra=lambda r: r.infra, key=str,
                           holds=lambda r: ()))
    assert out[0][1].infra and out[0][2] == [] and pool.stats()["engines"]["a"]["drained"] is None


def test_no_engine_left():
    pool, _ = make_pool(names=("a",))
    out = list(run_on_pool(pool, None, ["i1", "i2"], dying_work("i1", "result"), is_infra=lambda r: r.infra,
                           key=str, holds=lambda r: ()))
    assert [i for i, _, _ in out] == ["i1", "i2"] and out[0][1].infra  # nowhere to go: the infra row stands
    with pytest.raises(NoEngineLeft):
        pool.place(None)


# --- build once --------------------------------------------------------------------------------------------

def _ensure(client, reg, image="crucible/env-x:py3.11-k1"):
    with shared_image(client, reg, image, "k1") as note:
        if image not in client.store:
            client.build(image)
    return note


def test_an_env_is_built_once_and_pulled_by_the_other_engine(tmp_path):
    shared = FakeRegistry()
    a, b = FakeEngineClient("a", shared), FakeEngineClient("b", shared)
    reg = Registry("127.0.0.1:5000", tmp_path / "locks")
    assert _ensure(a, reg)["pushed"] is True
    note = _ensure(b, reg)
    assert note["pulled"] is True and b.builds == [] and a.builds == ["crucible/env-x:py3.11-k1"]
    assert b.store["crucible/env-x:py3.11-k1"].id == a.store["crucible/env-x:py3.11-k1"].id  # the same image
    assert b.pulls == ["127.0.0.1:5000/crucible/env-x:py3.11-k1"]
    assert not [n for c in (a, b) for n in c.store if n.startswith("127.0.0.1:5000/")]  # one name per image
    assert _ensure(b, reg) == {"pulled": False, "pushed": False, "lock_wait_s": 0.0}  # there now: nothing


def test_an_image_an_engine_had_before_is_published_for_the_others(tmp_path):
    shared = FakeRegistry()
    a, b = FakeEngineClient("a", shared), FakeEngineClient("b", shared)
    _ensure(a, None)  # built before the registry was configured
    reg = Registry("127.0.0.1:5000", tmp_path / "locks")
    assert _ensure(a, reg)["pushed"] is True and shared.pushes == 1
    assert _ensure(a, reg)["pushed"] is False and shared.pushes == 1  # held there now: not pushed again
    assert _ensure(b, reg)["pulled"] is True and b.builds == []


def test_two_engines_at_once_build_it_once_under_the_key_lock(tmp_path):
    shared = FakeRegistry()
    clients = [FakeEngineClient(n, shared) for n in "ab"]
    reg = Registry("127.0.0.1:5000", tmp_path / "locks")
    slow = threading.Event()

    def build_slowly(c):
        orig = c.build

        def build(image):
            slow.wait(0.5)
            return orig(image)
        c.build = build
        return c

    threads = [threading.Thread(target=_ensure, args=(build_slowly(c), reg)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sum(len(c.builds) for c in clients) == 1 and sum(len(c.pulls) for c in clients) == 1


def test_without_a_registry_every_engine_builds_it():
    a, b = FakeEngineClient("a"), FakeEngineClient("b")
    _ensure(a, None)
    _ensure(b, None)
    assert a.builds and b.builds and a.store["crucible/env-x:py3.11-k1"].id != b.store["crucible/env-x:py3.11-k1"].id


def test_a_refused_push_keeps_the_build_and_says_why(tmp_path):
    shared = FakeRegistry()
    shared.refuse = True
    a = FakeEngineClient("a", shared)
    note = _ensure(a, Registry("127.0.0.1:5000", tmp_path / "locks"))
    assert note["pushed"] is False and "denied" in note["push_error"] and a.builds


# --- observability -----------------------------------------------------------------------------------------

def test_stats_file_is_what_crucible_stats_shows(tmp_path):
    from crucible.pipelines.store.stats import engine_pool_stats, format_stats

    path = stats_path_in(str(tmp_path / "stats" / "engine_pool"))
    pool, _ = make_pool(stats_path=path)
    list(run_on_pool(pool, "env-x", ["i1", "i2"], dying_work("i1", "result"), is_infra=lambda r: r.infra,
                     key=str, holds=lambda r: ()))
    rec = json.loads(open(path).read())
    assert rec["engines"]["a"]["drained"] and rec["engines"]["b"]["done"] == 1
    s = engine_pool_stats(str(tmp_path))["engines"]
    assert s["a"]["failed"] == 1 and s["a"]["drained"] == 1 and s["b"]["done"] == 1 and s["b"]["drained"] == 0
    assert 0.0 <= s["b"]["busy_share_mean"] <= 1.0 and s["b"]["queued"] == 1
    text = format_stats({"counts": {}, "engines": s})
    assert "engines:" in text and "failed=1" in text
    assert engine_pool_stats(str(tmp_path / "nothing")) == {}


# --- the SWE validation path on a pool (pipelines/swe/pooled.py) -----------------------------------------

INSTS = [{"instance_id": f"o__r-{n}", "repo": "o/r", "base_commit": "c0", "source": "swebench"} for n in (1, 2, 3)]


def fake_group(die_at: str | None):
    """validate_env_group's shape on a fake engine: a valid row per instance; on engine a, ``die_at`` stops
    the engine and gets an infra row (what a container run against a stopped dockerd gives)."""
    from crucible.pipelines.swe.envs import TaskEnv
    from crucible.pipelines.swe.records import FailureKind, Status, Step, not_valid, validation_row
    from crucible.pipelines.swe.validate import Validation

    def group(ctx, insts, run_id, *, reference):
        for inst in insts:
            row = validation_row(inst["instance_id"], run_id, meta={})
            if ctx.client.name == "a" and inst["instance_id"] == die_at:
                ctx.client.down = True
                not_valid(row, Status.ERROR, FailureKind.INFRA, Step.RUN, "infra: before run infra/daemon")
                yield inst, Validation(row, None)
                continue
            row["status"] = Status.VALID.value
            yield inst, Validation(row, TaskEnv(image="crucible/env-r:py3.11-k1", recipe={"test_cmd": "pytest"}))
    return group


def _ctx(pool):
    from pathlib import Path

    from crucible.pipelines.swe.envs import ValidateContext

    return ValidateContext(client=None, settings=None, workdir=Path("/nonexistent"), pool=pool)


def test_swe_group_moves_off_a_dead_engine_rows_once_infra_recorded():
    from crucible.pipelines.swe.pooled import pooled_group

    pool, _ = make_pool()
    out = list(pooled_group(_ctx(pool), pool, INSTS, "run", reference=True, group=fake_group("o__r-2")))
    assert [i["instance_id"] for i, _ in out] == ["o__r-1", "o__r-2", "o__r-3"]
    rows = {i["instance_id"]: v.row for i, v in out}
    assert all(r["status"] == "valid" for r in rows.values())  # no engine death stands as a result
    assert rows["o__r-1"]["meta"]["engine"] == "a" and "engine_retries" not in rows["o__r-1"]["meta"]
    retry = rows["o__r-2"]["meta"]["engine_retries"]
    assert rows["o__r-2"]["meta"]["engine"] == "b" and retry[0]["engine"] == "a" and retry[0]["kind"] == "infra"
    assert "crucible/env-r:py3.11-k1" in pool.engines["b"].holds  # the next group of this env goes to b


def test_swe_group_without_drain_is_graded_on_the_dead_engine():
    from crucible.pipelines.swe.pooled import pooled_group

    pool, _ = make_pool(drain=False)
    out = list(pooled_group(_ctx(pool), pool, INSTS, "run", reference=True, group=fake_group("o__r-2")))
    rows = {i["instance_id"]: v.row for i, v in out}
    assert rows["o__r-2"]["status"] == "error" and rows["o__r-2"]["failure_kind"] == "infra"


def test_validate_env_group_takes_the_pool_path_only_with_a_pool():
    from crucible.pipelines.swe.transforms import engine_pool

    cfg = {"sandbox": {"engines": [{"host": None, "capacity": 4, "tls": None}], "registry": None}}
    assert engine_pool(cfg) is None  # the default: the local engine as before, rows unchanged


POOL = {}


def test_beam_metrics_per_engine():
    import apache_beam as beam
    from apache_beam.metrics.metric import MetricsFilter
    from apache_beam.testing.test_pipeline import TestPipeline

    POOL["pool"] = make_pool()[0]

    class Validate(beam.DoFn):
        def process(self, insts):
            from crucible.pipelines.swe.pooled import pooled_group

            pool = POOL["pool"]
            for inst, _ in pooled_group(_ctx(pool), pool, insts, "run", reference=True, group=fake_group("o__r-2")):
                yield inst["instance_id"]

    p = TestPipeline()
    _ = p | beam.Create([INSTS]) | beam.ParDo(Validate())
    result = p.run()
    result.wait_until_finish()
    q = result.metrics().query(MetricsFilter().with_namespace("crucible.sandbox.engines"))
    gauges = {m.key.metric.name: m.committed.value for m in q["gauges"]}
    assert gauges["drained@a"] == 1 and gauges["drained@b"] == 0 and gauges["done@a"] == 0
    assert gauges["in_flight@b"] == 1  # reported while b held the group
