"""The long-run progress line (pipelines/store/progress.py) with pools: per engine and per endpoint in flight,
done, failed, on the one line, only for a pool of more than one member."""

import json
import logging

from crucible.pipelines.store.progress import Progress, members_parts, pool_members
from crucible.sandbox.engines import Engine, EnginePool, EngineSpec, run_on_pool
from tests.support.registry_fake import FakeEngineClient


def two_engines():
    engines = [Engine(EngineSpec(n, f"unix:///tmp/{n}.sock", 2, None), FakeEngineClient(n)) for n in "ab"]
    return EnginePool(engines, ping=lambda e: not e.client.down, affinity=True, drain=True)


def test_the_line_shows_each_engine_in_flight_done_failed():
    pool = two_engines()

    def work(eng, left):
        for item in left:
            if eng.name == "a" and item == "i2":
                eng.client.down = True
                raise ConnectionError("engine a: connection refused")
            yield item, item

    list(run_on_pool(pool, "env", ["i1", "i2"], work, is_infra=lambda r: False, key=str, holds=lambda r: ()))
    lease = pool.acquire("env")  # one in flight on b (it holds env now)
    line = Progress("curated", 10, members=pool_members(engine_pool=pool)).line()
    pool.release(lease, ok=True)
    assert "\n" not in line and line.startswith("curated: 0/10")
    assert "engines a (out) 0/0/1 b 1/1/0 (in flight/done/failed)" in line


def test_endpoints_taken_out_are_marked_and_each_counted():
    parts = members_parts({"endpoints": {"http://e1/v1": {"in_flight": 3, "done": 7, "failed": 0, "up": True},
                                         "http://e2/v1": {"in_flight": 0, "done": 2, "failed": 4, "up": False}}})
    assert parts == ["endpoints http://e1/v1 3/7/0 http://e2/v1 (out) 0/2/4 (in flight/done/failed)"]


def test_one_member_pools_and_no_members_leave_the_line_as_it_was(caplog):
    one = {"engines": {"local": {"in_flight": 1, "done": 2, "failed": 0, "drained": None}},
           "endpoints": {"http://e1/v1": {"in_flight": 1, "done": 2, "failed": 0, "up": True}}}
    assert members_parts(one) == []
    with_one = Progress("curated", None, members=lambda: one).line()
    without = Progress("curated", None).line()
    assert with_one.split(", ")[0] == without.split(", ")[0] == "curated: 0" and "engines" not in with_one
    with caplog.at_level(logging.INFO):
        Progress("curated", None, every_s=1, members=pool_members()).update(1, force=True)
    assert caplog.records[-1].getMessage().startswith("curated: 1,")


def test_a_line_far_from_the_pools_reads_their_stats_files(tmp_path):
    from crucible.pipelines.store.progress import run_members
    from crucible.sandbox.engines import stats_path_in

    pool = two_engines()
    pool.stats_path = stats_path_in(str(tmp_path / "stats" / "engine_pool"))
    for name in ("a", "b"):
        lease = pool.acquire(None)
        pool.release(lease, ok=name == "a")
    lease = pool.acquire(None)  # not in the file yet: a pool writes it at each release
    (tmp_path / "stats" / "llm_pool").mkdir(parents=True)
    (tmp_path / "stats" / "llm_pool" / "w1.json").write_text(json.dumps({"endpoints": {
        "http://e1/v1": {"in_flight": 2, "done": 5, "failed": 0, "up": True},
        "http://e2/v1": {"in_flight": 0, "done": 1, "failed": 3, "up": False}}}))
    (tmp_path / "stats" / "llm_pool" / "w2.json").write_text(json.dumps({"endpoints": {
        "http://e1/v1": {"in_flight": 1, "done": 4, "failed": 1, "up": True},
        "http://e2/v1": {"in_flight": 0, "done": 2, "failed": 0, "up": True}}}))
    line = Progress("browse items committed", 10, members=run_members(str(tmp_path))).line()
    pool.release(lease, ok=True)
    assert "engines a 0/1/0 b 0/0/1 (in flight/done/failed)" in line
    assert "endpoints http://e1/v1 3/9/1 http://e2/v1 (out) 0/3/3 (in flight/done/failed)" in line


def test_a_run_without_pool_stats_files_keeps_the_plain_line(tmp_path):
    from crucible.pipelines.store.progress import run_members

    assert run_members(str(tmp_path))() == {}
    assert Progress("x", None, members=run_members(str(tmp_path))).line().count(",") == 2
