"""Strict SFT selection: every filter rejects its case, and switched off lets it through."""

import pytest

from crucible.pipelines.browse import selection as SEL
from crucible.pipelines.browse.selection import DropReason
from crucible.pipelines.config import load_config
from tests.support.browse_rows import call, messages, trajectory

BAHAMAS_PAGE = "The Bahamas\nThe currency of The Bahamas is the Bahamian dollar. Its capital is Nassau."


@pytest.fixture(scope="module")
def opts():
    return dict(load_config("browse", []).browse)


def test_a_clean_trajectory_passes_every_filter(opts):
    assert SEL.trajectory_filters(trajectory(), opts, SEL.shortest_correct([trajectory()])) == []


# ---------------------------------------------------------------- repeated identical calls

def test_repeated_call_is_detected_after_normalization():
    steps = [(call("search", query="Freeport  Bahamas"), "r1"), (call("search", query="freeport bahamas"), "r2"),
             (call("visit", url="https://kb.local/city/1"), BAHAMAS_PAGE)]
    assert SEL.repeated_calls(messages(steps, "x")) == 1
    assert SEL.call_signature("search", '{"query": "A  b"}') == SEL.call_signature("search", '{"query":"a b"}')
    different = [(call("search", query="Freeport Bahamas"), "r1"), (call("search", query="Freeport Grand Bahama"), "r2"),
                 (call("visit", url="https://kb.local/freeport"), "r3")]
    assert SEL.repeated_calls(messages(different, "x")) == 0
    # same arguments, another tool: not a repeat
    assert SEL.repeated_calls(messages([(call("search", query="x"), "a"), (call("visit", url="x"), "b")], "y")) == 0


def test_repeated_call_filter_rejects_and_can_be_switched_off(opts):
    steps = [(call("search", query="currency Bahamas"), BAHAMAS_PAGE), (call("search", query="currency Bahamas"), "r")]
    row = trajectory(steps=steps)
    assert DropReason.REPEATED_CALL in SEL.trajectory_filters(row, opts)
    assert SEL.trajectory_filters(row, dict(opts, sft_drop_repeated_calls=False)) == []


# ---------------------------------------------------------------- evidence seen

def test_evidence_seen_needs_answer_and_answer_hop_subject_in_one_observation():
    ans, subj = ["Bahamian dollar", "BSD"], ["The Bahamas", "Bahamas"]
    assert SEL.evidence_seen([BAHAMAS_PAGE], ans, subj)
    assert SEL.evidence_seen(["Bahamas: the BSD is pegged to the US dollar"], ans, subj)  # alias, whole word
    # the page about a different Freeport: neither the Bahamas nor its currency
    assert not SEL.evidence_seen(["Freeport is a city in Illinois, United States."], ans, subj)
    # answer and subject in two different observations: the hop itself was never shown
    assert not SEL.evidence_seen(["The Bahamas is an island country.", "The Bahamian dollar is a currency."], ans, subj)
    assert not SEL.evidence_seen(["BSDx Bahamas"], ["BSD"], subj)  # substring of a word is not a mention


def test_an_echoed_query_is_not_evidence():
    # the agent typed the answer into its query; the results are about something else
    c = call("search", query="Bahamas Bahamian dollar")
    obs = 'Search results for "Bahamas Bahamian dollar":\n1. Freeport, Illinois\n   URL: https://kb.local/city/9\n'
    seen = SEL.observations_seen(messages([(c, obs)], "Bahamian dollar"))
    assert "Bahamian dollar" not in seen[0] and "Freeport" in seen[0]
    assert not SEL.evidence_seen(seen, ["Bahamian dollar"], ["Bahamas"])
    assert SEL.evidence_seen([obs], ["Bahamian dollar"], ["Bahamas"])  # what the echo alone would give


def test_evidence_filter_rejects_and_can_be_switched_off(opts):
    row = trajectory(evidence_seen=False)
    assert DropReason.EVIDENCE_NOT_SEEN in SEL.trajectory_filters(row, opts)
    assert SEL.trajectory_filters(row, dict(opts, sft_require_evidence=False)) == []
    # undecided (no flag) counts as not seen
    assert DropReason.EVIDENCE_NOT_SEEN in SEL.trajectory_filters(trajectory(evidence_seen=None), opts)


def test_answer_hop_names_come_from_the_triple_that_gives_the_answer():
    import random

    from crucible.pipelines.browse import harden as H
    from crucible.pipelines.browse import synth as S
    from tests.unit.test_synth_harden import airport_draft, toy_graph

    g = toy_graph()
    ans, subj = SEL.answer_hop_names(g, airport_draft(g))  # airport -> city -> country -> currency
    assert ans[0] == "Peruvian sol" and "sol" in ans
    assert subj == ["Peru", "Republic of Peru"]
    # after add_hop the subject is a variable: still named by its binding
    hopped = H.add_hop(g, S.draft_from_chain([g.triple("country/PE", "currency", "currency/PEN")]), random.Random(0))
    assert hopped is not None and not hopped.formalization["triples"][1][0].startswith("country/")
    assert SEL.answer_hop_names(g, hopped)[1][0] == "Peru"


# ---------------------------------------------------------------- forced answers

def test_forced_answer_filter_rejects_and_can_be_switched_off(opts):
    row = trajectory(termination="forced_answer")
    assert DropReason.FORCED_ANSWER in SEL.trajectory_filters(row, opts)
    assert SEL.trajectory_filters(row, dict(opts, sft_drop_forced_answer=False)) == []


# ---------------------------------------------------------------- longer than the shortest correct one

def test_length_filter_compares_with_the_shortest_correct_trajectory(opts):
    short = trajectory()
    detour = [(call("search", query=f"q{i}"), "nothing") for i in range(2)]
    long = trajectory(steps=[*detour, (call("search", query="currency of the Bahamas"), BAHAMAS_PAGE)])
    verbose = trajectory(completion_tokens=200)
    wrong_short = trajectory(steps=[], verdict="incorrect", completion_tokens=5)
    shortest = SEL.shortest_correct([short, long, verbose, wrong_short])
    assert shortest == {"tool_calls": 1, "completion_tokens": 60}  # incorrect rows are no yardstick
    assert opts["sft_max_length_factor"] == 2.0
    assert DropReason.TOO_LONG in SEL.trajectory_filters(long, opts, shortest)  # 3 calls > 2 x 1
    assert DropReason.TOO_LONG in SEL.trajectory_filters(verbose, opts, shortest)  # 200 tokens > 2 x 60
    assert SEL.trajectory_filters(short, opts, shortest) == []
    off = dict(opts, sft_max_length_factor=None)
    assert SEL.trajectory_filters(long, off, shortest) == [] and SEL.trajectory_filters(verbose, off, shortest) == []
    assert SEL.trajectory_filters(long, dict(opts, sft_max_length_factor=3.0), shortest) == []


def test_drop_reasons_are_the_enum_strings(opts):
    reasons = SEL.trajectory_filters(trajectory(verdict="incorrect", termination="forced_answer"), opts)
    assert reasons == ["sft: not correct", "sft: forced final answer"]
    assert all(isinstance(r, str) and type(r) is str for r in reasons)
