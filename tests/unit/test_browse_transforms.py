"""The synth-browse Beam transforms (pipelines/browse/transforms*.py) on TestPipeline: the toy user graph,
the scripted fake OpenAI server (tests/support), real tantivy index, agent loop and store."""

from __future__ import annotations

import json

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from crucible.pipelines.browse import stages as ST
from crucible.pipelines.browse import synth as S
from crucible.pipelines.browse import transforms_plan as TP
from crucible.pipelines.browse.api import load_kg
from crucible.pipelines.browse.context import build_context
from crucible.pipelines.browse.planning import DropKind, Planned, chain_tail, plan_items
from crucible.pipelines.browse.transforms import (
    FilterRows,
    HardenQuestions,
    RolloutRound,
    WorkerSpec,
    WriteQuestions,
)
from crucible.pipelines.config import load_config
from crucible.pipelines.llm import endpoint_config
from crucible.pipelines.options import build_options
from crucible.pipelines.store import catalog
from crucible.pipelines.store.commit import ItemResult, commit_items, ensure_layout
from crucible.pipelines.store.sinks import CommitResults
from tests.support.fake_browse import responder, write_toy_graph
from tests.support.fake_llm_server import FakeOpenAIServer

OPTS = ["--runner=FnApiRunner"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browse_tf")
    mp = pytest.MonkeyPatch()
    mp.setenv("CRUCIBLE_CACHE_DIR", str(tmp / "cache"))
    files = write_toy_graph(tmp)
    with FakeOpenAIServer(responder=responder) as srv:
        def make(*extra):
            sets = [f"run.out_dir={tmp / 'out'}", "llm.engine=openai", f"llm.base_urls=[{srv.base_url}]",
                    "llm.model=fake-model", "search.kg.embedded=false", f"search.kg.extra={json.dumps(files)}",
                    "browse.seeds=6", "browse.min_hops=2", "browse.max_hops=3", "browse.k=2", "browse.rounds=1",
                    "browse.max_per_pattern=5", "browse.max_per_answer=5", "browse.policy=json_step", *extra]
            cfg = load_config("browse", sets)
            opts = build_options(cfg)
            return opts, WorkerSpec(opts, endpoint_config(cfg.llm, [srv.base_url]), "t", 2)
        yield tmp, make
    mp.undo()


def _plain(res: ItemResult) -> tuple:
    """An item result without its clock fields, comparable across runs."""
    def row(r):
        return json.dumps({k: v for k, v in r.items() if k not in ("created_at", "latency_s")}, sort_keys=True,
                          default=str)
    return res.key, tuple(sorted((t, row(r)) for t, rows in res.rows.items() for r in rows
                                 if t != "browse_trajectories") +
                          sorted(("traj", r["traj_id"], r["verdict"]) for r in res.rows.get("browse_trajectories") or []))


def _items(opts):
    """The planned items, plus a Peru-currency question the fake solver answers right (so a too-easy
    question exists whatever the sampler drew)."""
    g = load_kg(opts.search)
    chain = [g.triple("city/cusco", "country", "country/PE"), g.triple("country/PE", "currency", "currency/PEN")]
    draft = S.draft_from_chain(chain, None, S.chain_start(chain))
    solved = {"key": "q-solved", "chain": [[t.subject, t.relation, t.object] for t in chain],
              "start": S.chain_start(chain), "pattern": S.pattern_hash(draft), "answer_attr": None}
    return [*plan_items(g, opts.browse)[0], solved]


def _synth(p, items, spec, rounds):
    written = p | beam.Create(items) | "Write" >> WriteQuestions(spec)
    hardened = written.questions | "Harden" >> HardenQuestions(spec)
    out, states = [written.dropped, hardened.dropped], hardened.questions
    for r in range(rounds + 1):
        rnd = states | f"Round{r}" >> RolloutRound(spec)
        out += [rnd["dropped"], rnd["final"] | f"Filter{r}" >> FilterRows(spec)]
        states = rnd["again"]
    return tuple(out) | beam.Flatten()


@pytest.mark.parametrize("extra", [(), ("browse.target_pass_rate_max=0.0", "browse.harden_rounds=2")])
def test_the_stage_graph_gives_the_rows_of_one_sequential_run(toy, extra):
    """Same questions, trajectories and failures as process_question over the same items, also when a too
    easy question is hardened again and rolled out again (target 0.0: any solved question goes round)."""
    _, make = toy
    opts, spec = make(*extra)
    items = _items(opts)
    ctx = build_context(opts, spec.llm_cfg, spec.run_id)
    want = [_plain(ST.process_question(it, ctx)) for it in items]
    assert any(x[0] == "questions" for _, rs in want for x in rs)
    with TestPipeline(options=PipelineOptions(OPTS)) as p:
        got = _synth(p, items, spec, int(opts.browse.harden_rounds)) | beam.Map(_plain)
        assert_that(got, equal_to(want))
    if extra:  # the loop really ran: a solved question was hardened again after its rollouts
        rows = [json.loads(x[1]) for _, rs in want for x in rs if x[0] == "questions"]
        ops = [[e["operator"] for e in q["lineage"]] for q in rows if q["pass_rate"]]
        assert any("rollout" in o and o.index("rollout") < len(o) - 1 for o in ops)


def test_write_drops_a_chain_the_graph_does_not_hold(toy):
    _, make = toy
    opts, spec = make()
    good = _items(opts)[0]
    bad = {**good, "key": "q-gone", "chain": [["city/nowhere", "country", "country/PE"]]}
    with TestPipeline(options=PipelineOptions(OPTS)) as p:
        out = p | beam.Create([good, bad]) | WriteQuestions(spec)
        assert_that(out.questions | beam.Map(lambda st: st.key), equal_to([good["key"]]), label="kept")
        assert_that(out.dropped | beam.Map(lambda r: (r.key, r.rows["failures"][0]["stage"])),
                    equal_to([("q-gone", "synthesize")]), label="dropped")


def test_each_stage_logs_its_progress_between_planning_and_the_commit(toy, caplog):
    _, make = toy
    opts, spec = make()
    items = _items(opts)
    caplog.set_level("INFO", logger="crucible.pipelines.store.progress")
    with TestPipeline(options=PipelineOptions(OPTS)) as p:
        _ = p | beam.Create(items) | WriteQuestions(spec)
    lines = [r.getMessage() for r in caplog.records if r.name == "crucible.pipelines.store.progress"]
    assert any(ln.startswith("synth-browse write (this worker): ") for ln in lines)
    assert any(f"write (this worker): {len(items)}," in ln for ln in lines)  # the bundle's end says its count


def test_rollouts_fan_out_k_per_question_and_regroup(toy):
    _, make = toy
    opts, spec = make("browse.k=3", "browse.harden_rounds=0")
    items = _items(opts)
    with TestPipeline(options=PipelineOptions(OPTS)) as p:
        states = p | beam.Create(items) | "Write" >> WriteQuestions(spec)
        rnd = states.questions | "Round" >> RolloutRound(spec)
        got = rnd["final"] | beam.Map(lambda st: (st.key, sorted(t["sample_index"] for t in st.trajs)))
        assert_that(got, equal_to([(it["key"], [0, 1, 2]) for it in items]))


def test_a_rollout_past_its_wall_clock_cap_is_a_failures_row(toy):
    _, make = toy
    opts, spec = make("browse.rollout_timeout_s=0.000000001", "browse.harden_rounds=0")
    items = _items(opts)[-1:]
    with TestPipeline(options=PipelineOptions(OPTS)) as p:
        res = _synth(p, items, spec, 0)
        got = res | beam.FlatMap(lambda r: [(f["stage"], f["reason"].split(":")[0]) for f in r.rows["failures"]
                                            if f["stage"] == "rollout"])
        assert_that(got, equal_to([("rollout", "RolloutTimeout")] * 2))
    _, make = toy  # the cap off (generous): the same rollouts give trajectories
    opts, spec = make("browse.rollout_timeout_s=600", "browse.harden_rounds=0")
    with TestPipeline(options=PipelineOptions(OPTS)) as p:
        res = _synth(p, items, spec, 0)
        assert_that(res | beam.Map(lambda r: len(r.rows.get("browse_trajectories") or [])), equal_to([2]))


def _planned(key, shard, seq, pattern, answer):
    return Planned(key, shard, seq, item={"key": key, "pattern": pattern}, answer=answer)


def test_caps_hold_across_shards_and_keep_the_earliest_draws():
    group = [_planned("q-b", 1, 1, "P", "x"), _planned("q-a", 0, 5, "P", "y"), _planned("q-c", 1, 0, "P", "z")]
    out = list(TP._cap(("P", group), 2, DropKind.PATTERN, "structural duplicate ({most} times)"))
    assert [(p.key, p.item is not None) for p in out] == [("q-a", True), ("q-c", True), ("q-b", False)]
    assert out[2].drop == {"key": "q-b", "kind": DropKind.PATTERN.value, "reason": "structural duplicate (2 times)",
                           "pattern": "P"}
    assert all(p.item for p in TP._cap(("P", group), 3, DropKind.PATTERN, "-"))  # a cap not reached drops nothing
    assert TP._first_of_chain(("q-a", [_planned("q-a", 2, 0, "P", "x"), _planned("q-a", 0, 9, "P", "x")])).shard == 0


def test_plan_seeds_on_workers_equals_one_sampler_and_shards_keep_the_caps(toy):
    _, make = toy
    opts, _ = make("browse.seeds=8", "browse.max_per_pattern=2", "browse.max_per_answer=1")
    items, drops = plan_items(load_kg(opts.search), opts.browse)
    with TestPipeline(options=PipelineOptions(OPTS)) as p:
        got = p | TP.PlanSeeds(opts) | beam.Map(lambda pl: (pl.key, pl.item is not None))
        assert_that(got, equal_to([(i["key"], True) for i in items] + [(d["key"], False) for d in drops]))
    sharded, _ = make("browse.seeds=8", "browse.max_per_pattern=2", "browse.max_per_answer=1",
                      "browse.plan_shard_size=3")
    with TestPipeline(options=PipelineOptions(OPTS)) as p:
        kept = p | TP.PlanSeeds(sharded) | beam.Filter(lambda pl: pl.item is not None)

        def check(planned):
            keys = [pl.key for pl in planned]
            assert len(keys) == len(set(keys))
            for field, most in (("pattern", 2), ("answer", 1), ("tail", 1)):
                vals = [pl.item["pattern"] if field == "pattern" else pl.answer if field == "answer"
                        else chain_tail(pl.item) for pl in planned]
                assert all(vals.count(v) <= most for v in vals), field
        assert_that(kept, check)


def test_skip_committed_joins_against_the_store_keys(tmp_path):
    out = str(tmp_path / "store")
    ensure_layout(out)
    row = {"failure_id": "f", "pipeline": "browse", "stage": "sample", "kind": "filtered", "reason": "r",
           "run_id": "t", "created_at": "2026-01-01T00:00:00+00:00"}
    commit_items(out, "browse", "t", [ItemResult("q-done").add("failures", row)])
    planned = [_planned("q-done", 0, 0, "P", "x"), _planned("q-new", 0, 1, "P", "y")]
    with TestPipeline(options=PipelineOptions(OPTS)) as p:
        got = p | beam.Create(planned) | TP.SkipCommitted(out, "browse") | beam.Map(lambda pl: pl.key)
        assert_that(got, equal_to(["q-new"]))
    with TestPipeline(options=PipelineOptions(OPTS)) as p:  # another pipeline's commits skip nothing here
        got = p | beam.Create(planned) | TP.SkipCommitted(out, "browse-rollout") | beam.Map(lambda pl: pl.key)
        assert_that(got, equal_to(["q-done", "q-new"]))


def test_a_retried_bundle_commits_each_question_once(toy):
    """Beam may run a bundle twice (Flink, Dataflow): the same items committed again add no rows."""
    tmp, make = toy
    opts, spec = make("browse.harden_rounds=0")
    out = str(tmp / "retried")
    ensure_layout(out)
    ctx = build_context(opts, spec.llm_cfg, spec.run_id)
    results = [ST.process_question(it, ctx) for it in _items(opts)]
    for attempt in range(2):
        with TestPipeline(options=PipelineOptions(OPTS)) as p:
            _ = p | f"Items{attempt}" >> beam.Create(results) | CommitResults(out, "browse", "t", every_items=1)
    _, rows = catalog.query(out, "select question_id, count(*) from questions group by 1")
    assert rows and all(n == 1 for _, n in rows)
    _, trajs = catalog.query(out, "select count(*) from browse_trajectories")
    assert trajs[0][0] == sum(len(r.rows.get("browse_trajectories") or []) for r in results)


def test_deadline_guard_stops_at_the_first_step_past_the_cap():
    from crucible.pipelines.browse.trajectory import RolloutTimeout, deadline_guard

    now = [0.0]
    seen = []
    guard = deadline_guard(10, seen.append, clock=lambda: now[0])
    guard({"kind": "tool_call", "turn": 0})
    now[0] = 10.5
    with pytest.raises(RolloutTimeout, match="rollout_timeout_s=10 s .*observation at turn 1"):
        guard({"kind": "observation", "turn": 1})
    assert len(seen) == 2  # the caller's hook still saw every event
    relaxed = deadline_guard(1e9, clock=lambda: now[0])  # a cap far away: nothing stops
    relaxed({"kind": "answer", "turn": 5})


def test_run_limit_keeps_the_first_planned_items_and_every_drop(toy):
    _, make = toy
    opts, _ = make("browse.seeds=8", "browse.max_per_pattern=1", "run.limit=1")
    items, drops = plan_items(load_kg(opts.search), opts.browse)
    assert len(items) > 1  # the limit has something to cut
    with TestPipeline(options=PipelineOptions(OPTS)) as p:
        got = p | TP.PlanSeeds(opts) | beam.Map(lambda pl: (pl.key, pl.item is not None))
        assert_that(got, equal_to([(items[0]["key"], True)] + [(d["key"], False) for d in drops]))
