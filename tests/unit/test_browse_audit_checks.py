"""The audit's per-row checks (pipelines/browse/audit_checks.py): a row a check cannot read is reported, never
passed as fine; with a check not given, audit_rows reports its line as None (not checked), never as 0."""

from crucible.pipelines.browse import audit as A
from crucible.pipelines.browse import audit_checks as C

Q = {"question_id": "q1", "question": "Which country ...?", "answer": "France",
     "formalization": {"target": "?x", "binding": {"?x": "E:fr"}}}


def _unreadable(q):
    raise KeyError("formalization")


def test_a_row_the_type_or_world_check_cannot_read_is_reported():
    assert C.type_mismatch_rows([Q], _unreadable) == [
        {"question_id": "q1", "question": "Which country ...?",
         "why": "cannot check the asked type: KeyError: 'formalization'"}]
    assert C.graph_only_rows([Q], _unreadable)[0]["why"] == [
        "cannot check against the relation cards: KeyError: 'formalization'"]
    assert C.type_mismatch_rows([Q], lambda q: None) == [] and C.graph_only_rows([Q], lambda q: []) == []


def test_contradicted_needs_a_gold_an_answer_and_a_resolution_without_the_gold():
    kept = [{"traj_id": "t1", "question_id": "q1", "verdict": "correct", "extracted_answer": "Spain"},
            {"traj_id": "t2", "question_id": "q1", "verdict": "correct", "extracted_answer": "France"},
            {"traj_id": "t3", "question_id": "q1", "verdict": "incorrect", "extracted_answer": "Spain"},
            {"traj_id": "t4", "question_id": "q1", "verdict": "correct", "extracted_answer": "Atlantis"}]
    names = {"Spain": ["E:es"], "France": ["E:fr", "E:fr2"], "Atlantis": []}
    got = C.contradicted_rows(kept, {"q1": Q}, lambda a: names[a])
    assert got == [{"traj_id": "t1", "answer": "Spain", "gold": "E:fr", "resolves_to": ["E:es"]}]


def test_without_the_checks_audit_rows_reports_none_not_zero():
    a = A.audit_rows([Q], [])
    assert a["contradicted"] is None and a["type_mismatch"] is None and a["unique_in_graph_only"] is None
    a = A.audit_rows([Q], [], type_check=_unreadable, world_check=_unreadable, resolve=lambda s: [])
    assert (a["contradicted"], a["type_mismatch"], a["unique_in_graph_only"]) == (0, 1, 1)
