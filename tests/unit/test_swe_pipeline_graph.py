"""The swe-curate stage graph (#27 items 1-3): each composite transform with TestPipeline + assert_that, the
element caps (fire -> failures row; off -> the result), skip-finished as a join, retried commit bundles."""

from __future__ import annotations

import time

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from crucible.pipelines.store import catalog
from crucible.pipelines.store.commit import ItemResult, commit_items, ensure_layout
from crucible.pipelines.swe import graph as G
from crucible.pipelines.swe.graph_sources import SourceSpec, source_specs
from crucible.pipelines.swe.records import SWEInstance
from tests.support import portable_swe as ps

OPTS = ["--runner=FnApiRunner"]


def _cfg(tmp_path, *overrides, rows=4, sleep_s=0.0):
    f = ps.write_rows(tmp_path / "rows.jsonl", [ps.swebench_row(i, sleep_s=sleep_s) for i in range(rows)],
                      bad_lines=("{not json",))
    return ps.small_config(str(tmp_path / "out"), f, *overrides).to_dict(), f


def _ids(results):
    return sorted(r.key for r in results)


def test_source_specs_are_small_elements_of_the_config():
    swe = ps.small_config("/tmp/x", "/data/rows.jsonl").to_dict()["swe"]
    assert source_specs(swe, None) == [SourceSpec("file", "/data/rows.jsonl")]
    swe = dict(swe, instances_file=None, sdists=["a==1", "b==2", "c==3"], mine=dict(swe["mine"], repos=["o/r"]))
    assert source_specs(swe, 2) == [SourceSpec("sdist", "a==1"), SourceSpec("sdist", "b==2"), SourceSpec("mine", "o/r")]


def test_sources_expand_an_instances_file_on_the_workers(tmp_path):
    cfg, f = _cfg(tmp_path)
    with TestPipeline(options=beam.options.pipeline_options.PipelineOptions(OPTS)) as p:
        out = (p | G.Sources([SourceSpec("file", f)]) | G.InjectMineCrawl(cfg, "r", "none"))
        assert_that(out["rows"] | beam.Map(lambda r: r["instance_id"]),
                    equal_to([f"demo__repo-{i}" for i in range(4)]), label="rows")
        assert_that(out["results"] | beam.Map(lambda it: it.key), equal_to([f"input:{f}:5"]), label="bad")


def test_skip_finished_is_a_join_against_committed_keys(tmp_path):
    out = str(tmp_path / "store")
    ensure_layout(out)
    commit_items(out, G.PIPELINE, "r", [ItemResult("k1"), ItemResult("k3")])
    with TestPipeline(options=beam.options.pipeline_options.PipelineOptions(OPTS)) as p:
        done = p | "Done" >> G.CommittedKeys(out, G.PIPELINE)
        assert_that(done, equal_to(["k1", "k3"]), label="keys")
        items = p | "Items" >> beam.Create([ItemResult(k) for k in ("k1", "k2", "k3", "k4")])
        kept = items | "Skip" >> G.SkipFinished(done, G.item_key) | "Key" >> beam.Map(G.item_key)
        assert_that(kept, equal_to(["k2", "k4"]), label="kept")
        # switched off (nothing committed): everything gets through
        nothing = p | "NoKeys" >> beam.Create([]).with_output_types(str)
        all_ = items | "SkipNone" >> G.SkipFinished(nothing, G.item_key) | "Key2" >> beam.Map(G.item_key)
        assert_that(all_, equal_to(["k1", "k2", "k3", "k4"]), label="all")


def test_limit_takes_the_first_unfinished_given_rows_and_passes_made_ones():
    rows = [SWEInstance.from_row(ps.swebench_row(i)) for i in (5, 2, 9)]
    made = SWEInstance.from_row(ps.swebench_row(0), source="injected")
    with TestPipeline(options=beam.options.pipeline_options.PipelineOptions(OPTS)) as p:
        out = p | beam.Create([*rows, made]) | G.LimitGivenRows(2) | beam.Map(lambda r: r["instance_id"])
        assert_that(out, equal_to(["demo__repo-2", "demo__repo-5", "demo__repo-0"]))


@pytest.mark.parametrize("cap, fires", [(0.3, True), (30, False)])
def test_validation_cap_fires_as_failures_rows_naming_it(tmp_path, cap, fires):
    cfg, _ = _cfg(tmp_path, f"swe.validation_timeout_s={cap}")
    slow = [SWEInstance.from_row(ps.swebench_row(i, sleep_s=1.0 if i == 2 else 0, env_commit="e" * 40))
            for i in (0, 2, 4)]
    with TestPipeline(options=beam.options.pipeline_options.PipelineOptions(OPTS)) as p:
        v = p | beam.Create(slow) | G.Validate(cfg, "r", "none", hooks=ps.hooks())
        valid = v["valid"] | "ValidIds" >> beam.Map(lambda pair: pair[0]["instance_id"])
        failures = v["results"] | "Failures" >> beam.FlatMap(
            lambda it: [(it.key, f["reason"].split(":")[0]) for f in it.rows.get("failures", [])])
        if fires:  # 0 validated; 2 hit the cap; 4 is abandoned with its env group
            assert_that(valid, equal_to(["demo__repo-0"]), label="valid")
            assert_that(failures, equal_to([("demo__repo-2", "validation_timeout_s"),
                                            ("demo__repo-4", "validation_timeout_s")]), label="failures")
        else:
            assert_that(valid, equal_to(["demo__repo-0", "demo__repo-2", "demo__repo-4"]), label="valid")
            assert_that(failures, equal_to([]), label="failures")


@pytest.mark.parametrize("cap, fires", [(0.3, True), (30, False)])
def test_rollout_cap_fires_as_a_failures_row_and_no_trajectory(tmp_path, cap, fires):
    cfg, _ = _cfg(tmp_path, f"swe.rollouts.rollout_timeout_s={cap}")
    insts = [SWEInstance.from_row(ps.swebench_row(i, sleep_s=1.0 if i == 2 else 0)) for i in (0, 2)]
    pairs = [(i, dict(ps.samples.swe_validation(0), instance_id=i.instance_id)) for i in insts]
    with TestPipeline(options=beam.options.pipeline_options.PipelineOptions(OPTS)) as p:
        res = p | beam.Create(pairs) | G.CurateStage(cfg, None, "r", "none", ps.hooks())
        trajs = res | "Trajs" >> beam.FlatMap(lambda it: [t["instance_id"] for t in it.rows.get("swe_trajectories", [])])
        fails = res | "Fails" >> beam.FlatMap(lambda it: [(f["item_key"], f["reason"].split(":")[0], f["stage"])
                                                          for f in it.rows.get("failures", [])])
        if fires:
            assert_that(trajs, equal_to(["demo__repo-0"]), label="trajs")
            assert_that(fails, equal_to([("demo__repo-2:gold:0", "rollout_timeout_s", "filter_trajectory")]),
                        label="fails")
        else:
            assert_that(trajs, equal_to(["demo__repo-0", "demo__repo-2"]), label="trajs")
            assert_that(fails, equal_to([]), label="fails")


def _rows(out: str) -> dict:
    sql = {"swe_instances": "select instance_id from swe_instances order by 1",
           "swe_validations": "select instance_id, status from swe_validations order by all",
           "swe_trajectories": "select traj_id from swe_trajectories order by 1",
           "failures": "select failure_id, item_key, reason from failures order by all"}
    return {t: catalog.query(out, q)[1] for t, q in sql.items()}


def test_whole_graph_commits_once_and_a_rerun_skips_what_is_committed(tmp_path):
    cfg, f = _cfg(tmp_path)
    conf = ps.small_config(cfg["run"]["out_dir"], f)
    ps.run_graph(conf)
    first = _rows(cfg["run"]["out_dir"])
    assert [r[0] for r in first["swe_instances"]] == ["demo__repo-0", "demo__repo-2"]
    assert len(first["swe_validations"]) == 4 and len(first["swe_trajectories"]) == 2
    assert sorted({r[1] for r in first["failures"]}) == sorted(["demo__repo-1", "demo__repo-3", f"{f}:5"])
    manifests = sorted(p.name for p in (tmp_path / "out").rglob("*.json") if "_commits" in p.parts)
    ps.run_graph(conf)  # every key committed: the join drops them all, nothing is written twice
    assert _rows(cfg["run"]["out_dir"]) == first
    assert sorted(p.name for p in (tmp_path / "out").rglob("*.json") if "_commits" in p.parts) == manifests


@pytest.mark.parametrize("cap, fires", [(0.3, True), (30, False)])
def test_a_gold_rollout_cut_by_the_cap_rejects_the_instance_in_curation(monkeypatch, cap, fires):
    from crucible.pipelines.swe.curate import curate_instance
    from tests.support.local_repro import grounding

    def slow_rollout(ctx, inst, policy, **kw):
        time.sleep(1.0)
        return ps.fake_rollout(ctx, inst, policy, **kw)

    monkeypatch.setattr("crucible.pipelines.swe.rollout.run_rollout", slow_rollout)
    monkeypatch.setattr("crucible.pipelines.swe.statement_repro.ground", lambda ctx, inst, scfg: grounding())
    cfg = ps.small_config("/tmp/unused", "/tmp/unused.jsonl", f"swe.rollouts.rollout_timeout_s={cap}").to_dict()
    inst = dict(ps.samples.swe_instance(1), problem_statement="", meta={"function": "f", "path": "pkg/x.py"})
    res = curate_instance(None, inst, ps.samples.swe_validation(1), cfg=cfg, run_id="r", client=None, prompt=None)
    stages = {(f["stage"], f["reason"].split(":")[0]) for f in res.rows.get("failures", [])}
    if fires:
        assert "swe_instances" not in res.rows and "swe_trajectories" not in res.rows
        assert res.rows["swe_validations"][0]["reason"].startswith("gold_unresolved: no gold trajectory: rollout_timeout_s")
        assert stages == {("filter_trajectory", "rollout_timeout_s"), ("gold_check", "gold_unresolved")}
    else:
        assert [t["policy"] for t in res.rows["swe_trajectories"]] == ["gold"]
        assert res.rows["swe_instances"][0]["instance_id"] == "demo__repo-1" and not stages
