"""Hardening that works: obfuscation sized to uniqueness, add_hop through functional relations,
no edit that names a hidden entity, the lineage of every try, and the solver in the loop."""

import random

import pytest

from crucible.pipelines.browse import harden as H
from crucible.pipelines.browse import stages
from crucible.pipelines.browse import synth as S
from crucible.pipelines.browse.kg.model import Entity, Graph, Triple
from crucible.pipelines.config import load_config
from crucible.pipelines.options import PolicyKind, build_options
from tests.support.browse_rows import trajectory
from tests.unit.test_synth_harden import airport_draft, toy_graph


def template(g):
    return lambda d: (S.render_question(g, d), "template")


def crowded_graph(n: int = 40) -> Graph:
    """``n`` cities of one country with populations 1000 apart: a 30% population range holds many of
    them, so a unique description of one city needs a narrow range."""
    ents = [Entity("country/X", "country", "Xland"), Entity("currency/X", "currency", "Xland mark")]
    ents += [Entity(f"us_state/S{j}", "us_state", f"State {j}") for j in range((n + 9) // 10)]
    tris = [Triple("country/X", "currency", "currency/X")]
    for i in range(n):
        ents.append(Entity(f"city/{i}", "city", f"Town {i}", attributes={"population": 50_000 + 1000 * i}))
        # ten towns a state: the state is the clue a search finds, the population range narrows within it
        tris += [Triple(f"city/{i}", "country", "country/X"), Triple(f"city/{i}", "state", f"us_state/S{i // 10}")]
    return Graph(ents, tris)


def test_obfuscate_narrows_a_range_until_the_entity_is_unique():
    g = crowded_graph()
    d = S.draft_from_chain([g.triple("city/20", "country", "country/X"), g.triple("country/X", "currency", "currency/X")])
    new = H.obfuscate(g, d, random.Random(0))
    assert new is not None and S.is_unique(g, new) and S.check_supported(g, new)[0]
    (c,) = [c for c in new.formalization["constraints"] if "attr" in c]
    # the state (a clue a search finds) comes first; the range then shuts out the state's next town
    assert ["?y0", "state", "us_state/S2"] in new.formalization["triples"]
    assert c["attr"] == "population" and c["min"] <= 70_000 <= c["max"] < 71_000
    # the fixed 20% range of the old operator holds about 14 towns: not a description
    wide = new.copy()
    wide.formalization["constraints"][-1].update(min=63_000, max=77_000)
    assert not S.is_unique(g, wide)


def _two_airports(country_name: str, tz_name: str = "America/Bogota") -> Graph:
    ents = [Entity("airport/A", "airport", "Alpha Field", attributes={"elevation_ft": 100}),
            Entity("airport/B", "airport", "Beta Field", attributes={"elevation_ft": 100}),
            Entity("city/lima", "city", "Lima"), Entity("city/cusco", "city", "Cusco"),
            Entity("country/L", "country", country_name), Entity("country/O", "country", "Otherland"),
            Entity("tz/a", "timezone", tz_name)]
    tris = [Triple("airport/A", "serves_city", "city/lima"), Triple("airport/B", "serves_city", "city/cusco"),
            Triple("airport/A", "country", "country/L"), Triple("airport/B", "country", "country/O"),
            Triple("airport/A", "timezone", "tz/a")]
    return Graph(ents, tris)


def test_obfuscate_never_names_a_hidden_entity():
    # the airport's only distinguishing clue is a country whose name contains the hidden city's
    g = _two_airports("Lima Republic")
    assert H.obfuscate(g, S.draft_from_chain([g.triple("airport/A", "serves_city", "city/lima")]),
                       random.Random(0)) is None
    # with an innocent name the same clue is used
    g2 = _two_airports("Andesia")
    new = H.obfuscate(g2, S.draft_from_chain([g2.triple("airport/A", "serves_city", "city/lima")]), random.Random(0))
    assert new is not None and ["?y0", "country", "country/L"] in new.formalization["triples"]


def test_obfuscate_never_uses_a_time_zone_clue():
    # "America/Bogota" is unique to airport A, but a time zone names a city: a shortcut to the country
    g = _two_airports("Lima Republic")
    assert "timezone" in H.NAMING_RELATIONS
    assert H.obfuscate(g, S.draft_from_chain([g.triple("airport/A", "serves_city", "city/lima")]),
                       random.Random(0)) is None


def test_add_hop_uses_a_functional_relation_even_when_the_node_has_many_subjects():
    g = toy_graph()  # Peru has five things located in it; each names Peru uniquely
    d = S.draft_from_chain([g.triple("country/PE", "currency", "currency/PEN")])
    new = H.add_hop(g, d, random.Random(0))
    assert new is not None and S.path_length(new) == 2 and S.is_unique(g, new)
    z, r, var = new.formalization["triples"][0]
    assert r == "country" and new.binding[var] == "country/PE" and g.objects(z, r) == ["country/PE"]
    assert "Peru" not in S.render_question(g, new)


def test_add_hop_skips_an_entity_whose_name_gives_the_node_away():
    g = toy_graph()
    ents = list(g.entities.values()) + [Entity("airport/SPJC", "airport", "Lima Airport")]
    g = Graph(ents, [*g.triples, Triple("airport/SPJC", "serves_city", "city/lima")])
    d = S.draft_from_chain([g.triple("city/lima", "country", "country/PE"), g.triple("country/PE", "currency", "currency/PEN")])
    assert H.add_hop(g, d, random.Random(0)) is None  # "the city served by Lima Airport" names Lima


def test_add_hop_never_enters_a_variable_a_named_entity_already_pins(monkeypatch):
    """'the country whose capital is Lima' is pinned by Lima: a hop into the country ("the country where
    Lima Airport ... is (whose capital is Lima)") adds a clue nobody needs; the hop goes into Lima instead."""
    g = toy_graph()
    ents = list(g.entities.values()) + [Entity("airport/X", "airport", "Jorge Chavez Field")]
    g = Graph(ents, [*g.triples, Triple("airport/X", "serves_city", "city/lima")])
    d = S.draft_from_chain([g.triple("country/PE", "capital", "city/lima"),
                            g.triple("country/PE", "currency", "currency/PEN")], None, "city/lima")
    assert H.hop_starts(d.formalization, d.binding) == ["city/lima"]
    for seed in range(5):
        new = H.add_hop(g, d, random.Random(seed))
        assert new is not None
        pinned_var = next(t[0] for t in new.formalization["triples"] if t[1] == "capital")
        assert not any(t[2] == pinned_var for t in new.formalization["triples"])  # nothing hops into the country
    # switched off (every unreached variable a start): a hop into the pinned country is taken
    monkeypatch.setattr(H, "hop_starts", lambda f, b: [v for v in b if not any(t[2] == v for t in f["triples"])])
    off = [H.add_hop(g, d, random.Random(seed)) for seed in range(5)]
    assert any(o is not None and any(t[2] == next(u[0] for u in o.formalization["triples"] if u[1] == "capital")
                                     for t in o.formalization["triples"]) for o in off)


def test_harden_records_every_try_and_counts_accepted_edits():
    g = toy_graph()
    final, state = H.harden(g, airport_draft(g), random.Random(2), rounds=2, writer=template(g),
                            answer="Peruvian sol", aliases=["sol"])
    assert state["unique"] and state["supported"]
    phases = [e["phase"] for e in final.lineage]
    assert phases[0] == "write" and set(phases[1:]) == {"pre_rollout"}
    accepted = [e for e in final.lineage if e["accepted"] and e["operator"] != "write"]
    assert accepted and H.accepted_edits(final.lineage) == len(accepted)
    for e in final.lineage:
        if e["operator"] != "write" and not e["checks"]["applicable"]:
            assert e["accepted"] is False and e["question_after"] is None
    assert final.question == accepted[-1]["question_after"]


def test_hardening_summary_counts_edited_questions_and_histograms_pass_rates():
    qs = [{"n_accepted_edits": 2, "n_solver_rounds": 1, "pass_rate": 0.5},
          {"n_accepted_edits": 0, "n_solver_rounds": 0, "pass_rate": 1.0},
          {"n_accepted_edits": 1, "n_solver_rounds": 0, "pass_rate": 0.0},
          {"n_accepted_edits": 1, "n_solver_rounds": 0, "pass_rate": None}]
    s = H.hardening_summary(qs)
    assert s["with_accepted_edit"] == 3 and s["share_with_accepted_edit"] == 0.75 and s["solver_rounds"] == 1
    assert s["pass_rate_histogram"] == {"0.00": 1, "0.50": 1, "1.00": 1, "none": 1}


# ---------------------------------------------------------------- solver in the loop

@pytest.fixture
def solver_ctx(monkeypatch):
    """A context over the toy graph whose scripted solver answers right only while the question
    still names the seed airport: the written question is easy, a hardened one is not."""
    g = toy_graph()
    questions = []

    def fake_trajectory(job, ctx):
        questions.append(job.question)
        ok = "Alejandro Velasco Astete" in job.question
        return stages.RolloutOutcome(job.key, job.index, trajectory(
            traj_id=f"{job.key}-{job.index}", question_id=job.key, question=job.question,
            verdict="correct" if ok else "incorrect"), None)

    monkeypatch.setattr(stages, "roll_out", fake_trajectory)

    def make(**opts):
        o = build_options(load_config("browse", [])).browse.replace(rounds=0, k=2, **opts)
        return stages.Context(graph=g, client=None, env=None, opts=o, run_id="r", model="m", prompts={},
                              policy=PolicyKind.NATIVE, reward=None), questions

    return make


def _item(g):
    d = airport_draft(g)
    return {"key": "q-1", "chain": [[s, r, o] for s, r, o in [("airport/SPZO", "serves_city", "city/cusco"),
                                                              ("city/cusco", "country", "country/PE"),
                                                              ("country/PE", "currency", "currency/PEN")]],
            "pattern": S.pattern_hash(d)}


def test_a_too_easy_question_is_hardened_again_and_rolled_out_again(solver_ctx):
    ctx, asked = solver_ctx(harden_rounds=2, target_pass_rate_max=0.75)
    res = stages.process_question(_item(ctx.graph), ctx)
    (q,) = res.rows["questions"]
    assert q["initial_pass_rate"] == 1.0 and q["pass_rate"] == 0.0 and q["n_solver_rounds"] == 1
    rollouts = [e for e in q["lineage"] if e["operator"] == "rollout"]
    assert [e["pass_rate"] for e in rollouts] == [1.0, 0.0] and all(e["n_rollouts"] == 2 for e in rollouts)
    solver = [e for e in q["lineage"] if e["phase"] == "solver" and e["accepted"]]
    assert len(solver) == 1 and solver[0]["checks"]["unique"] and solver[0]["checks"]["supported"]
    assert solver[0]["question_before"] == rollouts[0]["question_after"]
    assert solver[0]["question_after"] == rollouts[1]["question_after"] == q["question"]
    assert q["n_accepted_edits"] == 1 and "Alejandro" not in q["question"]
    # only the final question's trajectories are rows; 4 rollouts ran in all
    trajs = res.rows["browse_trajectories"]
    assert len(asked) == 4 and len(trajs) == 2 and all(t["question"] == q["question"] for t in trajs)
    assert all(t["pass_rate_k"] == 0.0 for t in trajs)


def test_with_the_solver_loop_off_the_easy_question_is_kept(solver_ctx):
    ctx, asked = solver_ctx(harden_rounds=0)
    (q,) = stages.process_question(_item(ctx.graph), ctx).rows["questions"]
    assert q["pass_rate"] == 1.0 and q["n_solver_rounds"] == 0 and q["n_accepted_edits"] == 0 and len(asked) == 2
    # a question inside the band is not touched either
    asked.clear()
    ctx, asked = solver_ctx(harden_rounds=2, target_pass_rate_max=1.0)
    (q,) = stages.process_question(_item(ctx.graph), ctx).rows["questions"]
    assert q["pass_rate"] == 1.0 and q["n_solver_rounds"] == 0 and len(asked) == 2


def test_a_name_two_entities_share_is_not_accepted_until_obfuscated():
    g = crowded_graph(6)
    # a second "Town 3" elsewhere: the name no longer says which town is meant
    other = Entity("city/dup", "city", "Town 3", attributes={"population": 1})
    g = Graph([*g.entities.values(), Entity("country/Y", "country", "Yland"), other],
              [*g.triples, Triple("city/dup", "country", "country/Y")])
    d = S.draft_from_chain([g.triple("city/3", "country", "country/X"), g.triple("country/X", "currency", "currency/X")])
    assert S.is_unique(g, d)  # by id it is unique ...
    st = H.checks(g, d, "What is the currency of the country where Town 3 is located?", "Xland mark", [], None)
    assert st["unique"] is False and st["ambiguous_names"] == ["Town 3"]  # ... but not for a reader
    final, state = H.harden(g, d, random.Random(0), rounds=2, writer=template(g), answer="Xland mark", aliases=[])
    assert state["unique"] and "Town 3" not in final.question and H.ambiguous_names(g, final) == []
    assert final.lineage[0]["accepted"] is False and H.accepted_edits(final.lineage) >= 1


def test_numeric_ranges_of_small_values_keep_their_decimals():
    rng = random.Random(0)
    lo, hi = H.numeric_range(28.95414, rng, 0.01)  # a latitude: about 0.29 wide, not 2 whole degrees
    assert lo <= 28.95414 <= hi and hi - lo < 0.5
    lo, hi = H.numeric_range(12154, rng, 0.01)  # a population: whole numbers
    assert isinstance(lo, int) and lo <= 12154 <= hi and hi - lo < 200
