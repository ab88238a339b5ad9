"""RL rows from every run: every verified question is an RL row whatever its pass rate (difficulty is a
column), an unverified one never is; a pass-rate band is an export option (``--pass-band``)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from crucible.pipelines.browse import selection as SEL
from crucible.pipelines.browse import synth as S
from crucible.pipelines.browse.selection import RLDropReason
from crucible.pipelines.cli import main
from crucible.pipelines.config import load_config
from crucible.pipelines.integrations.export_select import PassBand, parse_pass_band
from crucible.pipelines.store import catalog
from crucible.pipelines.store.commit import ItemResult, commit_items, ensure_layout
from tests.support import samples
from tests.support.browse_rows import trajectory
from tests.unit.test_browse_faithful import GOOD, WRONG_TYPE, mindik_draft, png_graph

VERIFIED = {"unique": True, "supported": True, "faithful": True, "findable": None, "closed_book_solved": False}


@pytest.fixture(scope="module")
def opts():
    return dict(load_config("browse", []).browse)


def run_cli(capsys, *argv):
    rc = main(list(argv))
    o = capsys.readouterr()
    assert "Traceback" not in o.err
    return rc, o.out, o.err


# ---------------------------------------------------------------- the RL split

@pytest.mark.parametrize("fact,value,reason", [
    ("unique", False, RLDropReason.NOT_UNIQUE), ("supported", False, RLDropReason.NOT_SUPPORTED),
    ("faithful", False, RLDropReason.UNFAITHFUL), ("findable", False, RLDropReason.NOT_FINDABLE),
    ("closed_book_solved", True, RLDropReason.CLOSED_BOOK), ("unique", None, RLDropReason.NOT_UNIQUE)])
def test_an_unverified_question_is_never_an_rl_row(opts, fact, value, reason):
    assert SEL.rl_drop_reasons({**VERIFIED, fact: value}) == [str(reason)]
    trajs = [trajectory(verdict="incorrect"), trajectory(traj_id="q-1", verdict="incorrect")]
    assert SEL.assign_splits(trajs, opts, SEL.rl_drop_reasons({**VERIFIED, fact: value}), 0.0) == "none"
    assert all(t["split"] == "none" and str(reason) in t["drop_reasons"] for t in trajs)


def test_a_verified_question_is_an_rl_row_at_every_pass_rate(opts):
    assert SEL.rl_drop_reasons(VERIFIED) == []
    for rate, verdicts in ((0.0, ("incorrect", "incorrect")), (0.5, ("correct", "incorrect")),
                           (1.0, ("correct", "correct"))):
        trajs = [trajectory(traj_id=f"q-{i}", verdict=v) for i, v in enumerate(verdicts)]
        assert SEL.assign_splits(trajs, opts, [], rate) == "rl"
        assert all("rl" in t["split"] and not any(r.startswith("rl") for r in t["drop_reasons"]) for t in trajs)
    # SFT stays strict: a wrong trajectory of an RL question is RL only
    assert trajs[0]["split"] == "sft+rl" and SEL.assign_splits([trajectory(verdict="incorrect")], opts, [], 0.0) == "rl"


def test_with_the_gate_switched_off_a_closed_book_solvable_question_gets_through(opts, monkeypatch):
    facts = {**VERIFIED, "closed_book_solved": True}
    monkeypatch.setattr(SEL, "rl_drop_reasons", lambda verified: [])
    assert SEL.assign_splits([trajectory(verdict="incorrect")], opts, SEL.rl_drop_reasons(facts), 0.0) == "rl"


def test_verification_reads_faithfulness_from_the_question_text():
    g = png_graph()
    d = mindik_draft(g)
    state = {"unique": True, "supported": True, "closed_book_solved": False}
    good = SEL.verification(g, d, GOOD[0], state)
    assert good["faithful"] and SEL.rl_drop_reasons(good) == []
    assert SEL.verification(g, d, S.render_question(g, d), state)["faithful"]  # the template passes
    bad = SEL.verification(g, d, WRONG_TYPE, state)  # asks for a country, the answer is a city
    assert not bad["faithful"] and "asks for a country" in bad["unfaithful_reason"]
    assert SEL.rl_drop_reasons(bad) == [str(RLDropReason.UNFAITHFUL)]
    solved = SEL.verification(g, d, GOOD[0], {**state, "closed_book_solved": True})
    assert SEL.rl_drop_reasons(solved) == [str(RLDropReason.CLOSED_BOOK)]


# ---------------------------------------------------------------- --pass-band

@pytest.mark.parametrize("text,band", [
    ("0,1", PassBand(0.0, 1.0)), ("(0,1)", PassBand(0.0, 1.0)), ("[0,1)", PassBand(0.0, 1.0, True, False)),
    ("[0.25, 0.75]", PassBand(0.25, 0.75, True, True)), (" 0 , 0.5] ", PassBand(0.0, 0.5, False, True))])
def test_pass_band_parses_open_and_closed_ends(text, band):
    assert parse_pass_band(text) == band


def test_pass_band_membership():
    dapo = parse_pass_band("0,1")
    assert [dapo.contains(r) for r in (0.0, 0.5, 1.0, None)] == [False, True, False, False]
    closed = parse_pass_band("[0,1]")
    assert [closed.contains(r) for r in (0.0, 0.5, 1.0, None)] == [True, True, True, False]


@pytest.mark.parametrize("text", ["1,0", "0", "a,b", "0,2", "-0.1,1", "0,0.5,1", ""])
def test_a_bad_pass_band_is_refused(text):
    with pytest.raises(ValueError, match="--pass-band"):
        parse_pass_band(text)


def band_store(tmp_path) -> str:
    """Four verified questions (pass rate 0, 0.5, 1 and none measured) and one unverified (split none)."""
    out = str(tmp_path / "data")
    ensure_layout(out)
    item = ItemResult("band")
    for i, (rate, split) in enumerate([(0.0, "rl"), (0.5, "rl"), (1.0, "rl"), (None, "rl"), (0.5, "none")]):
        item.add("questions", dict(samples.question(i), pass_rate=rate, split=split,
                                   difficulty_score=None if rate is None else 1 - rate, solver_model="m", solver_k=2))
    commit_items(out, "browse", samples.RUN, [item])
    catalog.refresh_catalog(out)
    return out


def ids(dest) -> list[str]:
    return [e["id"] for e in pq.read_table(dest).column("extra_info").to_pylist()]


def test_no_band_exports_every_verified_question_with_its_difficulty(tmp_path, capsys):
    import json

    out = band_store(tmp_path)
    dest = tmp_path / "v.parquet"
    rc, o, _ = run_cli(capsys, "export", "--format", "verl", "--out", out, "--dest", str(dest))
    assert rc == 0 and ids(dest) == ["q0000", "q0001", "q0002", "q0003"]  # pass rate 0 kept; the unverified not
    meta = [json.loads(e["meta"]) for e in pq.read_table(dest).column("extra_info").to_pylist()]
    assert [m["difficulty_score"] for m in meta] == [1.0, 0.5, 0.0, None]
    assert {(m["solver_model"], m["solver_k"]) for m in meta} == {("m", 2)}


@pytest.mark.parametrize("band,expected", [("0,1", ["q0001"]), ("[0,1)", ["q0000", "q0001"]),
                                           ("[0,1]", ["q0000", "q0001", "q0002"])])
def test_pass_band_drops_the_questions_out_of_band(tmp_path, capsys, band, expected):
    out = band_store(tmp_path)
    dest = tmp_path / "v.parquet"
    rc, o, _ = run_cli(capsys, "export", "--format", "verl", "--out", out, "--dest", str(dest), "--pass-band", band)
    assert rc == 0 and ids(dest) == expected  # never the unverified question (split none), whatever its rate


@pytest.mark.parametrize("args,needle", [
    (["--format", "verl", "--pass-band", "1,0"], "0 <= LO <= HI <= 1"),
    (["--format", "verl", "--source", "swe", "--pass-band", "0,1"], "no pass rate"),
    (["--format", "trl", "--pass-band", "0,1"], "--format verl --source browse"),
    (["--format", "verl", "--pass-band", "[0.9,0.95]"], "with a pass rate in [0.9, 0.95]")])
def test_pass_band_misuse_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, args, needle):
    out = band_store(tmp_path)
    dest = tmp_path / "v.parquet"
    rc, _, err = run_cli(capsys, "export", "--out", out, "--dest", str(dest), *args)
    assert rc == 2 and needle in err
    assert len(err.strip().splitlines()) == 1 and not dest.exists()
