"""Faithful questions (asked type, relation back-check) and sampling that means difficulty
(hub cap, trivial hops, attribute answers)."""

import json
import random
from collections import Counter

import pytest

from crucible.pipelines.browse import harden as H
from crucible.pipelines.browse import qtype as Q
from crucible.pipelines.browse import sampling, stages
from crucible.pipelines.browse import synth as S
from crucible.pipelines.browse.corpus import render_entity
from crucible.pipelines.browse.kg.model import Entity, Graph, Triple
from crucible.pipelines.llm.prompts import load_prompt
from crucible.pipelines.options import PolicyKind
from tests.support.fake_writer import ScriptedWriter
from tests.unit.browse_helpers import browse_opts, small_graph
from tests.unit.test_synth_harden import toy_graph


def png_graph() -> Graph:
    """Mindik Airport is in Papua New Guinea, whose only neighbour is Indonesia (capital Jakarta)."""
    E = [Entity("airport/AYMI", "airport", "Mindik Airport", attributes={"iata": "MXK", "icao": "AYMI"}),
         Entity("airport/AYGA", "airport", "Goroka Airport", attributes={"iata": "GKA", "icao": "AYGA",
                                                                         "latitude": -6.082, "longitude": 145.392}),
         Entity("country/PG", "country", "Papua New Guinea", attributes={"iso3": "PNG", "tld": ".pg"}),
         Entity("country/ID", "country", "Indonesia", attributes={"iso3": "IDN", "tld": ".id"}),
         Entity("country/MY", "country", "Malaysia", attributes={"iso3": "MYS", "tld": ".my"}),
         Entity("country/TL", "country", "East Timor", attributes={"iso3": "TLS", "tld": ".tl"}),
         Entity("city/jakarta", "city", "Jakarta"), Entity("city/kl", "city", "Kuala Lumpur"),
         Entity("city/goroka", "city", "Goroka", attributes={"latitude": -6.083, "longitude": 145.386})]
    T = [Triple("airport/AYMI", "country", "country/PG"), Triple("airport/AYGA", "country", "country/PG"),
         Triple("airport/AYGA", "serves_city", "city/goroka"), Triple("city/goroka", "country", "country/PG"),
         Triple("country/PG", "shares_border_with", "country/ID"),
         *[Triple("country/ID", "shares_border_with", c) for c in ("country/PG", "country/MY", "country/TL")],
         Triple("country/MY", "shares_border_with", "country/ID"), Triple("country/TL", "shares_border_with", "country/ID"),
         Triple("country/ID", "capital", "city/jakarta"), Triple("country/MY", "capital", "city/kl"),
         Triple("city/jakarta", "country", "country/ID"), Triple("city/kl", "country", "country/MY")]
    return Graph(E, T)


def mindik_draft(g, answer_attr=None):
    chain = [g.triple("airport/AYMI", "country", "country/PG"), g.triple("country/PG", "shares_border_with", "country/ID"),
             g.triple("country/ID", "capital", "city/jakarta")]
    return S.draft_from_chain(chain, answer_attr)


# ---------------------------------------------------------------- asked type

@pytest.mark.parametrize("question,kind", [
    ("What is the currency of the country where Freeport is located?", "currency"),
    ("Which country is the city located in?", "country"),
    ("What city is the capital of Peru?", "city"),
    ("A Chilean city has 20,000 people. What is the capital of its country?", "city"),
    ("What is the US state where the capital of the country where X is located is located?", "us_state"),
    ("In what year was the element discovered by J.L. Soret discovered?", "year"),
    ("How many countries share a border with Peru?", "count"),
    ("What is the ISO 3166 alpha-3 code of the country where Mindik Airport is located?", "code"),
    ("What is the internet top-level domain of Peru?", "code"),
    ("Who discovered neon?", "discoverer"),
    ("What is a language spoken in the country where Kempten is located?", "language"),
    ("What is the time zone of the city served by X?", "timezone"),
    ("Where is the airport?", None),          # cannot tell: a rewrite like this falls back
    ("What is spoken in Peru?", None),
])
def test_asked_type_reads_the_kind_of_thing_asked(question, kind):
    assert Q.asked_type(question) == kind


def _sampled_drafts(g, n, seed=0):
    """Sampled chains (with and without attribute answers), each with its hardening edits."""
    rng = random.Random(seed)
    pools = S.seed_pools(g)
    out = []
    for _ in range(n):
        c = S.sample_chain_weighted(g, rng, rng.randint(1, 3), pools, candidates=2, skip_trivial=rng.random() < 0.5,
                                    inverse=rng.random() < 0.7)
        if c is None:
            continue
        d = S.draft_from_chain(c, None, S.chain_start(c))
        opts = S.answer_attr_options(g, d.answer_id)
        d = S.draft_from_chain(c, rng.choice(opts)[0] if opts and rng.random() < 0.5 else None, S.chain_start(c))
        out.append(d)
        for op in ("obfuscate", "add_hop", "blur", "drop_clue"):
            nd = H.OPERATORS[op](g, out[-1], rng)
            if nd is not None:
                out.append(nd)
    return out


@pytest.mark.parametrize("make", [toy_graph, small_graph, png_graph])
def test_template_questions_always_ask_the_answer_type_and_back_check(make):
    g = make()
    drafts = _sampled_drafts(g, 120)
    kinds = Counter(Q.answer_kind(g, d) for d in drafts)
    assert len(drafts) >= 60 and len(kinds) >= 2
    assert any(inv for d in drafts for *_x, inv in S.path_steps(d))  # inverse hops are rendered too
    mism = [(S.render_question(g, d), Q.type_mismatch(g, d, S.render_question(g, d))) for d in drafts]
    assert [m for m in mism if m[1]] == []
    back = [(S.render_question(g, d), Q.relation_backcheck(g, d, S.render_question(g, d))) for d in drafts]
    assert [b for b in back if b[1]] == []


# ---------------------------------------------------------------- the observed bad rewrites

GOOD = ["Which city is the capital of the country bordering the one where Mindik Airport is located?",
        "What is the capital of the only country that borders the nation where Mindik Airport lies?"]
WRONG_TYPE = "Which country borders the country where Mindik Airport is located?"
WRONG_RELATION = "A country has a border with Mindik Airport. What is the capital of that country?"


def test_observed_bad_rewrites_are_rejected_and_good_ones_kept():
    g = png_graph()
    d = mindik_draft(g)
    ok, why = stages.validate_question(g, d, WRONG_TYPE, "Jakarta", [])
    assert not ok and why.startswith("asked type") and "country" in why and "city" in why
    ok, why = stages.validate_question(g, d, WRONG_RELATION, "Jakarta", [])
    assert not ok and why.startswith("relations") and "Mindik Airport" in why and "shares_border_with" in why
    for q in GOOD:
        assert stages.validate_question(g, d, q, "Jakarta", []) == (True, "ok"), q
    # seen with the embedded model: the named entity made the capital ("the country where the capital is X")
    ok, why = stages.validate_question(
        g, d, "Which city is the capital of the country bordering the country whose capital is Mindik Airport?",
        "Jakarta", [])
    assert not ok and "Mindik Airport is linked by capital" in why
    # a relation the formalization does not have, stated anywhere
    ok, why = stages.validate_question(
        g, d, "Which city is the capital of the country that borders, and uses the currency of, the country where "
              "Mindik Airport is located?",
        "Jakarta", [])
    assert not ok and "currency" in why


def test_without_the_new_checks_the_bad_rewrites_got_through():
    """The checks before this change (question mark, answer leak, clue names) accept both."""
    g = png_graph()
    d = mindik_draft(g)
    for q in (WRONG_TYPE, WRONG_RELATION):
        assert q.endswith("?") and S.leaks_answer(q, "Jakarta", []) is None and S.missing_clues(g, d, q) == []


def test_writer_falls_back_to_the_template_and_records_why():
    g = png_graph()
    prompt = load_prompt("browse_write_question")
    ctx = stages.Context(graph=g, client=ScriptedWriter([WRONG_RELATION, GOOD[0]]), env=None,
                         opts=browse_opts(), run_id="t", model="m", prompts={"write": prompt},
                         policy=PolicyKind.NATIVE, reward=None)
    write = stages.make_writer(ctx)
    d = mindik_draft(g)
    q, origin = write(d)
    assert (q, origin) == (S.render_question(g, d), "template")
    assert d.rewrite_check["origin"] == "template" and d.rewrite_check["reason"].startswith("relations")
    assert d.rewrite_check["rewrite"] == WRONG_RELATION
    d2 = mindik_draft(g)
    assert write(d2) == (GOOD[0], "llm") and d2.rewrite_check["reason"] == "ok"


def test_attribute_answer_rewrite_must_ask_for_the_value_and_not_name_the_entity():
    g = png_graph()
    d = mindik_draft(g)
    chain = [g.triple("airport/AYMI", "country", "country/PG"), g.triple("country/PG", "shares_border_with", "country/ID")]
    d = S.draft_from_chain(chain, "iso3")
    answer, aliases, atype = S.answer_spec(g, d)
    assert (answer, atype) == ("IDN", "code")
    good = "What is the ISO alpha-3 code of the country bordering the one where Mindik Airport is located?"
    assert stages.validate_question(g, d, good, answer, aliases) == (True, "ok")
    ok, why = stages.validate_question(g, d, "Which country borders the one where Mindik Airport is located?",
                                       answer, aliases)
    assert not ok and "asks for a country, the answer is a code" in why
    ok, why = stages.validate_question(g, d, "What is the ISO alpha-3 code of Indonesia, which borders the country "
                                             "where Mindik Airport is located?", answer, aliases)
    assert not ok and "hidden entity (Indonesia)" in why


# ---------------------------------------------------------------- trivial hops

def us_graph() -> Graph:
    E = [Entity("country/US", "country", "United States", attributes={"iso3": "USA"}),
         Entity("country/CA", "country", "Canada", attributes={"iso3": "CAN"}),
         Entity("us_state/MO", "us_state", "Missouri"), Entity("us_state/KS", "us_state", "Kansas"),
         Entity("city/ls", "city", "Lee's Summit"), Entity("city/wi", "city", "Wichita"),
         Entity("city/ott", "city", "Ottawa"), Entity("city/dc", "city", "Washington"),
         Entity("currency/USD", "currency", "US Dollar", attributes={"iso4217": "USD"}),
         Entity("airport/KLXT", "airport", "Lee's Summit Municipal Airport", attributes={"iata": "LXT"})]
    T = [Triple("city/ls", "state", "us_state/MO"), Triple("city/wi", "state", "us_state/KS"),
         Triple("city/ls", "country", "country/US"), Triple("city/wi", "country", "country/US"),
         Triple("us_state/MO", "country", "country/US"), Triple("us_state/KS", "country", "country/US"),
         Triple("city/ott", "country", "country/CA"), Triple("city/dc", "country", "country/US"),
         Triple("country/US", "capital", "city/dc"), Triple("country/CA", "capital", "city/ott"),
         Triple("country/US", "currency", "currency/USD"), Triple("country/US", "shares_border_with", "country/CA"),
         Triple("airport/KLXT", "serves_city", "city/ls"), Triple("airport/KLXT", "country", "country/US")]
    return Graph(E, T)


def test_trivial_hops_are_named_and_not_counted():
    g = us_graph()
    assert ("us_state", "country") in sampling.type_determined(g)
    assert sampling.trivial_hop(g, ["city/ls", "us_state/MO"], "country", "country/US") == "type-determined"
    # the city served by the airport, then that city's country: the airport states its country itself
    assert sampling.trivial_hop(g, ["airport/KLXT", "city/ls"], "country", "country/US") == "shortcut"
    assert sampling.trivial_hop(g, ["city/ls"], "country", "country/US") is None
    state_chain = S.draft_from_chain([g.triple("city/ls", "state", "us_state/MO"),
                                      g.triple("us_state/MO", "country", "country/US"),
                                      g.triple("country/US", "capital", "city/dc")])
    assert S.path_length(state_chain) == 3 and S.real_hops(g, state_chain) == 2
    via_city = S.draft_from_chain([g.triple("airport/KLXT", "serves_city", "city/ls"),
                                   g.triple("city/ls", "country", "country/US"),
                                   g.triple("country/US", "capital", "city/dc")])
    assert S.real_hops(g, via_city) == 2


def test_sampling_skips_trivial_hops_unless_switched_off():
    g = us_graph()
    pools = S.seed_pools(g)
    pool = [e for v in pools.values() for e in v]

    def sampled(skip):
        rng = random.Random(0)
        chains = [sampling.sample_chain(g, rng, 2, pool, max_tries=5, skip_trivial=skip) for _ in range(200)]
        return [c for c in chains if c]

    on, off = sampled(True), sampled(False)
    def trivial(c):
        nodes = [c[0].subject]
        for t in c:
            if sampling.trivial_hop(g, nodes, t.relation, t.object):
                return True
            nodes.append(t.object)
        return False
    assert on and not any(trivial(c) for c in on)
    assert any(trivial(c) for c in off)  # e.g. Lee's Summit -> Missouri -> United States
    assert all(S.real_hops(g, S.draft_from_chain(c)) == len(c) for c in on)


# ---------------------------------------------------------------- hub cap

def hub_graph(n=12) -> Graph:
    """n cities in one country (a hub) and one city in each of three other countries."""
    E = [Entity("country/H", "country", "Hubland"), Entity("city/hcap", "city", "Hub City")]
    T = [Triple("country/H", "capital", "city/hcap"), Triple("city/hcap", "country", "country/H")]
    for i in range(n):
        E.append(Entity(f"city/h{i}", "city", f"Town {i}"))
        T.append(Triple(f"city/h{i}", "country", "country/H"))
    for k in "ABC":
        E += [Entity(f"country/{k}", "country", f"Land {k}"), Entity(f"city/{k}cap", "city", f"Capital {k}"),
              Entity(f"city/{k}1", "city", f"Village {k}")]
        T += [Triple(f"country/{k}", "capital", f"city/{k}cap"), Triple(f"city/{k}cap", "country", f"country/{k}"),
              Triple(f"city/{k}1", "country", f"country/{k}")]
    return Graph(E, T)


def test_hub_cap_limits_chains_through_one_entity_and_counts_drops():
    g = hub_graph()
    opts = browse_opts(seeds=10, min_hops=2, max_hops=2, max_per_pattern=50, max_per_answer=50, max_per_tail=50,
                       attribute_answer_share=0.0, seed_types=["city"])
    items, drops = stages.plan_items(g, opts)
    conc = stages.hub_concentration([S.chain_entities(S.draft_from_chain([g.triple(*t) for t in it["chain"]]))
                                     for it in items])
    # at most 20% of the planned chains (one chain at least, however few were planned)
    assert items and conc["chains"] <= max(1, int(0.2 * len(items))) and conc["chains"] <= stages.hub_cap(opts)
    assert any(d["kind"] == stages.DropKind.HUB.value and d["reason"].startswith("hub cap") for d in drops)
    # switched off (share 1.0): the hub is on most chains
    off, off_drops = stages.plan_items(g, opts.replace(max_share_per_entity=1.0))
    conc_off = stages.hub_concentration([S.chain_entities(S.draft_from_chain([g.triple(*t) for t in it["chain"]]))
                                         for it in off])
    assert conc_off["entity"] in ("country/H", "city/hcap") and conc_off["share"] > 0.5
    assert not any(d["kind"] == stages.DropKind.HUB.value for d in off_drops)


def test_same_tail_chains_are_one_question_and_the_later_ones_drop():
    """'the capital of the country where Town 1 / Town 2 is located' differ only in the start: one question."""
    from crucible.pipelines.browse.planning import chain_tail

    g = hub_graph()
    opts = browse_opts(seeds=10, min_hops=2, max_hops=2, max_per_pattern=50, max_per_answer=50, max_per_tail=1,
                       max_share_per_entity=1.0, attribute_answer_share=0.0, seed_types=["city"])
    items, drops = stages.plan_items(g, opts)
    tails = [chain_tail(it) for it in items]
    assert items and len(tails) == len(set(tails))
    assert any(d["kind"] == stages.DropKind.TAIL.value and d["reason"].startswith("same tail") for d in drops)
    # switched off: the hub's towns each make "the capital of the country where Town i is located"
    off, off_drops = stages.plan_items(g, opts.replace(max_per_tail=50))
    off_tails = [chain_tail(it) for it in off]
    assert len(off_tails) > len(set(off_tails)) and not any(d["kind"] == stages.DropKind.TAIL.value for d in off_drops)


def _two_starts_graph() -> Graph:
    """Five countries with a capital, a town and an element discovered there: 'the capital of the country
    where <town> is' and '... where <element> was discovered' are two relation patterns, one tail pattern."""
    E, T = [], []
    for k in "ABCDE":
        E += [Entity(f"country/{k}", "country", f"Land {k}"), Entity(f"city/{k}cap", "city", f"Capital {k}"),
              Entity(f"city/{k}1", "city", f"Town {k}"), Entity(f"element/{k}", "element", f"Elementium {k}")]
        T += [Triple(f"country/{k}", "capital", f"city/{k}cap"), Triple(f"city/{k}1", "country", f"country/{k}"),
              Triple(f"element/{k}", "discovered_in", f"country/{k}")]
    return Graph(E, T)


def test_the_relations_after_the_first_hop_are_capped_as_a_template(monkeypatch):
    from crucible.pipelines.browse import planning

    g = _two_starts_graph()
    opts = browse_opts(seeds=8, min_hops=2, max_hops=2, max_per_pattern=2, max_share_per_tail_pattern=0.25,
                       max_per_answer=50, max_per_tail=50,
                       max_share_per_entity=1.0, attribute_answer_share=0.0, seed_types=["city", "element"])
    items, drops = stages.plan_items(g, opts)
    assert len(items) == 2 and len({planning.tail_pattern(it) for it in items}) == 1
    assert any(d["reason"].startswith("structural duplicate (the relations of the last two hops") for d in drops)
    # switched off (every chain its own tail pattern): the whole-pattern cap alone keeps 2 per start type
    monkeypatch.setattr(planning, "tail_pattern", lambda item: json.dumps(item["chain"]))
    off, _ = stages.plan_items(g, opts)
    assert len(off) == 4


def test_hub_cap_default_is_20_percent_of_seeds():
    assert stages.hub_cap(browse_opts(seeds=10)) == 2 and stages.hub_cap(browse_opts(seeds=2)) == 1


# ---------------------------------------------------------------- attribute answers

def test_attribute_answers_ask_exact_values_stated_on_the_page():
    g = png_graph()
    chain = [g.triple("airport/AYMI", "country", "country/PG"), g.triple("country/PG", "shares_border_with", "country/ID")]
    for attr, gold, atype in [("iso3", "IDN", "code"), ("tld", ".id", "code"), ("count:shares_border_with", "3", "count")]:
        d = S.draft_from_chain(chain, attr)
        answer, aliases, kind = S.answer_spec(g, d)
        assert (answer, kind) == (gold, atype) and Q.answer_kind(g, d) == atype
        q = S.render_question(g, d)
        assert Q.asked_type(q) == atype and S.leaks_answer(q, answer, aliases) is None
        ev = S.evidence(g, d)[-1]
        assert ev["relation"] == attr and ev["object"] == gold and ev["url"] == g.entities["country/ID"].page_url
        assert ev["fact"] in render_entity(g, g.entities["country/ID"]).text  # the page states the value
        assert S.pattern_hash(d) != S.pattern_hash(S.draft_from_chain(chain))
    assert S.answer_spec(g, S.draft_from_chain(chain, "tld"))[1] == ["id"]
    # Papua New Guinea has one neighbour: a count of 1 is not asked
    assert "count:shares_border_with" not in dict(S.answer_attr_options(g, "country/PG"))


def test_plan_asks_attribute_answers_for_the_configured_share():
    g = toy_graph()
    base = browse_opts(seeds=12, min_hops=1, max_hops=2, max_per_pattern=50, max_per_answer=50, max_per_tail=50,
                       max_share_per_entity=1.0)
    none, _ = stages.plan_items(g, base.replace(attribute_answer_share=0.0))
    some, _ = stages.plan_items(g, base.replace(attribute_answer_share=1.0))
    assert none and all(it["answer_attr"] is None for it in none)
    # every item whose final entity has an exact attribute asks for it (cities have none here)
    assert sum(it["answer_attr"] is not None for it in some) >= 3
    assert all(it["answer_attr"] is not None for it in some if S.answer_attr_options(g, it["chain"][-1][2]))
    for it in some:
        d = S.draft_from_chain([g.triple(*t) for t in it["chain"]], it["answer_attr"])
        answer, _aliases, kind = S.answer_spec(g, d)
        assert answer and S.is_unique(g, d)
        assert kind == (Q.answer_kind(g, d) if it["answer_attr"] else "entity")


def test_inverse_hops_render_and_execute():
    g = png_graph()
    # Goroka Airport -> Goroka (city) ... Indonesia's capital Jakarta; inverse: the airport serving Goroka
    chain = [g.triple("airport/AYGA", "serves_city", "city/goroka")]
    d = S.draft_from_chain(chain, None, "city/goroka")
    assert d.formalization["triples"] == [["?x1", "serves_city", "city/goroka"]] and d.answer_id == "airport/AYGA"
    assert S.path_steps(d) == [("city/goroka", "serves_city", "?x1", True)] and S.path_length(d) == 1
    assert S.render_question(g, d) == "What is the airport serving Goroka?"
    assert S.is_unique(g, d) and S.check_supported(g, d)[0]
    d = S.draft_from_chain(chain, "iata", "city/goroka")
    assert S.render_question(g, d) == "What is the IATA code of the airport serving Goroka?"
    assert S.answer_spec(g, d) == ("GKA", [], "code")
    # a sampled chain that starts with an inverse hop keeps its seed
    two = [g.triple("airport/AYGA", "serves_city", "city/goroka"), g.triple("airport/AYGA", "country", "country/PG")]
    assert S.chain_start(two) == "city/goroka"


def test_back_check_reads_a_bare_locative_with_the_phrase_behind_it():
    g = Graph([Entity("country/EC", "country", "Ecuador"), Entity("language/es", "language", "Spanish")],
              [Triple("country/EC", "language", "language/es")])
    d = S.draft_from_chain([g.triple("country/EC", "language", "language/es")])
    assert Q.relation_backcheck(g, d, "What is a language spoken in Ecuador?") is None
    assert Q.relation_backcheck(g, d, "Which language do people speak in Ecuador?") is None
    assert Q.relation_backcheck(g, d, "What language is spoken in the capital of Ecuador?") is not None


def test_row_type_mismatch_reads_a_stored_question_row():
    g = png_graph()
    d = mindik_draft(g)
    row = {"question": S.render_question(g, d), "seed_entity": d.seed,
           "formalization": {**d.formalization, "binding": d.binding}}
    assert Q.row_type_mismatch(g, row) is None
    assert Q.row_type_mismatch(g, {**row, "question": WRONG_TYPE}) == "asks for a country, the answer is a city"


def test_read_back_keeps_a_rewrite_only_when_the_model_reads_back_the_same_relations():
    """The deterministic checks pass all three rewrites; the constrained read-back decides."""
    g = png_graph()
    prompts = {"write": load_prompt("browse_write_question"), "read_back": load_prompt("browse_read_back")}
    same, dropped_hop = ["country", "shares_border_with", "capital"], ["country", "capital"]

    def writer(read_back_on=True, read_backs=()):
        client = ScriptedWriter([GOOD[0]], read_backs=list(read_backs))
        ctx = stages.Context(graph=g, client=client, env=None, opts=browse_opts(read_back=read_back_on), run_id="t",
                             model="m", prompts=prompts, policy=PolicyKind.NATIVE, reward=None)
        return stages.make_writer(ctx), client

    write, client = writer(read_backs=[same, dropped_hop, None])
    d = mindik_draft(g)
    assert write(d) == (GOOD[0], "llm") and d.rewrite_check["read_back"] == same
    # the read-back is constrained to the graph's relation names, and the prompt lists them
    enum = client.read_back_calls[0]["schema"]["properties"]["relations"]["items"]["enum"]
    assert set(enum) == set(Q.read_back_vocabulary()) and "summary_mentions" in enum
    assert "shares_border_with: a country bordering X" in client.read_back_calls[0]["messages"][0]["content"]
    d = mindik_draft(g)
    assert write(d) == (S.render_question(g, d), "template")
    assert d.rewrite_check["reason"].startswith("read-back:") and "missing shares_border_with" in d.rewrite_check["reason"]
    d = mindik_draft(g)  # no valid read-back: cannot decide, so the template
    assert write(d)[1] == "template" and d.rewrite_check["reason"] == "read-back: no read-back"
    # switched off, the rewrite the model read as another question is kept
    write_off, client_off = writer(read_back_on=False, read_backs=[dropped_hop])
    d = mindik_draft(g)
    assert write_off(d) == (GOOD[0], "llm") and client_off.read_back_calls == []


def test_read_back_mismatch_names_missing_and_extra_relations():
    g = png_graph()
    d = mindik_draft(g)
    assert Q.read_back_mismatch(d, ["capital", "shares_border_with", "country"]) is None
    assert Q.read_back_mismatch(d, ["capital", "country", "currency"]) == (
        "read back as capital/country/currency; missing shares_border_with; extra currency")
    assert Q.read_back_mismatch(d, []) == "no read-back"
