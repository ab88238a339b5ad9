"""`crucible browse audit`: the precision proxies are recomputed from rows and can fail."""

from __future__ import annotations

import json

from crucible.pipelines.browse import audit as A


def _q(qid, question, chain, answer="Dublin", pass_rate=0.5, lineage=None, answer_type="entity"):
    binding = {"?x0": chain[0], "?x1": chain[-1]}
    return {"question_id": qid, "question": question, "answer": answer, "answer_aliases": [],
            "answer_type": answer_type, "pass_rate": pass_rate,
            "formalization": {"target": "?x1", "triples": [[chain[0], "r", "?x1"]], "binding": binding},
            "lineage": lineage if lineage is not None else [{"operator": "write", "accepted": True}]}


def _call(name, args):
    return {"id": "c", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


def _t(tid, qid, answer, *, split="sft+rl", verdict="correct", source="rule", calls=(("search", {"query": "a"}),),
       observation="Dublin is the capital of Ireland.", termination="answered", drops=()):
    msgs = [{"role": "user", "content": "q"}]
    for name, args in calls:
        msgs.append({"role": "assistant", "content": None, "tool_calls": [_call(name, args)]})
        msgs.append({"role": "tool", "content": observation, "tool_call_id": "c", "name": name})
    msgs.append({"role": "assistant", "content": answer})
    return {"traj_id": tid, "question_id": qid, "extracted_answer": answer, "verdict": verdict,
            "verdict_source": source, "split": split, "messages": msgs, "termination": termination,
            "drop_reasons": list(drops), "answer": "Dublin"}


NAMES = {"dublin": ["E:dublin"], "ireland": ["E:ireland"], "united kingdom": ["E:uk"]}
TYPES = {"E:dublin": "city", "E:ireland": "country", "E:uk": "country", "E:cork": "city"}


def resolve(text):
    return NAMES.get(text.lower(), [])


def asked(question):
    q = question.lower()
    return "country" if "which country" in q else "city" if "which city" in q else None


def type_check(row):
    want = TYPES[row["formalization"]["binding"][row["formalization"]["target"]]]
    got = asked(row["question"])
    return None if got == want else f"asks for a {got}, answer is a {want}"


def test_contradicted_row_is_found_and_switching_the_graph_off_hides_it():
    qs = [_q("q1", "Which city is the capital of the island state?", ["E:ireland", "E:dublin"])]
    ts = [_t("t1", "q1", "United Kingdom", source="judge"), _t("t2", "q1", "Dublin")]
    a = A.audit_rows(qs, ts, resolve=resolve, type_check=type_check)
    assert a["contradicted"] == 1
    assert a["contradicted_rows"][0]["traj_id"] == "t1" and a["contradicted_rows"][0]["resolves_to"] == ["E:uk"]
    assert any("resolve to another entity" in p for p in A.problems(a))
    off = A.audit_rows(qs, ts)
    assert off["contradicted"] is None  # not checked is not "0 contradicted"
    assert "graph check not run (no graph)" in A.problems(off)


def test_incorrect_rl_rows_and_unresolvable_answers_are_not_contradictions():
    qs = [_q("q1", "Which city ...?", ["E:ireland", "E:dublin"])]
    ts = [_t("t1", "q1", "United Kingdom", split="rl", verdict="incorrect"), _t("t2", "q1", "Baile Atha Cliath")]
    a = A.audit_rows(qs, ts, resolve=resolve, type_check=type_check)
    assert a["contradicted"] == 0


def test_type_mismatch_counts_a_country_question_with_a_city_answer():
    qs = [_q("q1", "Which country has the port of Freeport?", ["E:ireland", "E:dublin"]),
          _q("q2", "Which city is on the Liffey?", ["E:ireland", "E:dublin"])]
    a = A.audit_rows(qs, [], resolve=resolve, type_check=type_check)
    assert a["type_mismatch"] == 1 and a["type_mismatch_rows"][0]["question_id"] == "q1"
    assert a["type_mismatch_rows"][0]["why"] == "asks for a country, answer is a city"


def test_strict_sft_checks_reject_repeats_forced_answers_and_unseen_evidence():
    qs = [_q("q1", "Which city?", ["E:ireland", "E:dublin"])]
    good = _t("ok", "q1", "Dublin")
    repeat = _t("rep", "q1", "Dublin", calls=(("search", {"query": "Freeport"}), ("search", {"query": " freeport"})))
    forced = _t("forced", "q1", "Dublin", termination="forced_answer")
    unseen = _t("unseen", "q1", "Dublin", observation="Freeport is a town in the Bahamas.")
    dropped = _t("dropped", "q1", "Dublin", drops=["sft: over token cap"])
    flagged = dict(_t("flagged", "q1", "Dublin"), evidence_seen=False)  # the pipeline's own stricter flag
    a = A.audit_rows(qs, [good, repeat, forced, unseen, dropped, flagged])
    bad = {r["traj_id"]: r["problems"] for r in a["sft_strict_violation_rows"]}
    assert set(bad) == {"rep", "forced", "unseen", "dropped", "flagged"}
    assert bad["flagged"] == ["evidence not seen"]
    assert bad["rep"] == ["repeated identical tool call"]
    assert bad["forced"] == ["forced final answer"]
    assert bad["unseen"] == ["answer never in an observation"]
    # RL-only rows are not SFT rows: the strict checks do not apply to them
    assert A.audit_rows(qs, [dict(forced, split="rl")])["sft_strict_violations"] == 0
    # an SFT row may carry the RL split's reason (pass rate 1.0 is not an RL question): not an SFT problem
    assert A.audit_rows(qs, [dict(good, split="sft", drop_reasons=["rl: pass rate 1.00 not in (0, 1)"])])[
        "sft_strict_violations"] == 0


def test_hub_share_hardening_share_and_pass_rate_histogram():
    hardened = [{"operator": "write", "accepted": True}, {"operator": "obfuscate", "accepted": True}]
    rejected = [{"operator": "write", "accepted": True}, {"operator": "add_hop", "accepted": False},
                {"operator": "rollout", "accepted": True}]  # a rollout step is not an edit
    qs = [_q("q1", "?", ["E:us", "E:a"], pass_rate=0.0, lineage=hardened),
          _q("q2", "?", ["E:us", "E:b"], pass_rate=1.0, lineage=rejected),
          _q("q3", "?", ["E:us", "E:c"], pass_rate=0.5, lineage=hardened),
          _q("q4", "?", ["E:fr", "E:d"], pass_rate=None, lineage=rejected)]
    a = A.audit_rows(qs, [])
    assert a["hub"] == {"entity": "E:us", "questions": 3, "share": 0.75, "tied": 0}
    assert a["hardened_share"] == 0.5 and a["accepted_edits_per_question"] == {0: 2, 1: 2}
    assert a["pass_rate_histogram"] == {"0": 1, "(0, 0.5)": 0, "[0.5, 1)": 1, "1": 1, "none": 1}
    probs = A.problems(a)
    assert any("E:us is on 75% of chains" in p for p in probs)
    assert not any("hardening" in p for p in probs)
    text = A.format_audit(a)
    assert "hub: E:us on 3 chains (75%)" in text and "not checked" in text


def test_a_row_the_type_check_cannot_read_counts_as_a_mismatch():
    def broken(row):
        raise KeyError("binding")

    a = A.audit_rows([_q("q1", "Which city?", ["E:ireland", "E:dublin"])], [], type_check=broken)
    assert a["type_mismatch"] == 1 and "cannot check" in a["type_mismatch_rows"][0]["why"]
