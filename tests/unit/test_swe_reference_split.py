"""The gold policy's trajectories are a plumbing check in a split of their own (``reference``): never in an
SFT or RL export unless ``--include-reference`` asks for them; the gold check itself is unchanged."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from crucible.pipelines.cli import main
from crucible.pipelines.config import load_config
from crucible.pipelines.integrations.export_trl import trl_rows
from crucible.pipelines.store import catalog
from crucible.pipelines.store.commit import ItemResult, commit_items, ensure_layout
from crucible.pipelines.swe import curate as swe_curate
from crucible.pipelines.swe import filters
from tests.support import samples, swe_trajs

FILTERS = load_config("swe", []).to_dict()["swe"]["filters"]


def traj(policy: str, resolved: bool = True, **extra) -> dict:
    row = dict(samples.swe_trajectory(0), policy=policy, resolved=resolved, exit_status="submitted",
               meta={"dropped_files": []})
    row.update(extra)
    return row


def run_cli(capsys, *argv):
    rc = main(list(argv))
    o = capsys.readouterr()
    assert "Traceback" not in o.err
    return rc, o.out, o.err


def test_a_resolved_gold_row_is_reference_and_an_unresolved_one_is_none():
    assert filters.classify(traj("gold"), FILTERS) == ("reference", [])
    split, _ = filters.classify(traj("gold", resolved=False), FILTERS)
    assert split == "none"
    # a model policy's resolved row that shows the work trains (tests/unit/test_swe_sft_strict.py)
    assert filters.classify(swe_trajs.row(), FILTERS) == ("sft+rl", [])


def test_without_the_reference_rule_the_gold_replay_lands_in_sft(monkeypatch):
    monkeypatch.setattr(filters, "REFERENCE_POLICIES", ())
    # the oracle replay (here with a script that shows the work) taught as SFT
    assert filters.classify(swe_trajs.row(policy="gold"), FILTERS) == ("sft+rl", [])


@pytest.fixture
def fake_rollouts(monkeypatch):
    """run_rollout replaced (no Docker): gold resolves, llm does not."""
    def fake(ctx, inst, policy, *, policy_name, sample_index=0, run_id="", **kw):
        ok = policy_name == "gold"
        return traj(policy_name, resolved=ok, traj_id=f"{inst['instance_id']}-{policy_name}-{sample_index}",
                    instance_id=inst["instance_id"], sample_index=sample_index, run_id=run_id,
                    reward=1.0 if ok else 0.25, grade_reason=None if ok else "f2p failed: 0/1")

    monkeypatch.setattr("crucible.pipelines.swe.rollout.run_rollout", fake)
    from tests.support.local_repro import patch_grounding

    patch_grounding(monkeypatch)  # the statement's reproduction (containers) stands recorded


def curated_store(tmp_path, old_gold: bool = False) -> str:
    """Two curated instances (gold + one llm rollout each); ``old_gold`` adds a gold row as a store written
    before the reference split has it (split sft+rl)."""
    cfg = load_config("swe", ["swe.statements.use_llm=false", "swe.rollouts.k=1",
                              "swe.rollouts.policies=[gold,llm]"]).to_dict()
    out = str(tmp_path / "data")
    ensure_layout(out)
    items = []
    for i in (1, 2):
        inst = dict(samples.swe_instance(i), problem_statement="", meta={"function": "f", "path": "pkg/x.py"})
        items.append(swe_curate.curate_instance(None, inst, samples.swe_validation(i), cfg=cfg, run_id="r1",
                                                client=object(), prompt=None))
    if old_gold:
        items.append(ItemResult("old").add("swe_trajectories", traj("gold", traj_id="old-gold", split="sft+rl")))
    commit_items(out, "swe-curate", "r1", items)
    catalog.refresh_catalog(out)
    return out


def test_gold_rows_stay_out_of_the_trl_export_unless_asked_for(fake_rollouts, tmp_path, capsys):
    out = curated_store(tmp_path)
    _, rows = catalog.query(out, "select policy, split from swe_trajectories order by policy")
    assert sorted(map(tuple, rows)) == [("gold", "reference")] * 2 + [("llm", "rl")] * 2  # gold check held
    dest = tmp_path / "trl.parquet"
    # SFT export: no SFT row at all once gold is out (the llm rollouts did not resolve): nothing written
    rc, _, err = run_cli(capsys, "export", "--format", "trl", "--source", "swe", "--out", out, "--dest", str(dest))
    assert rc == 2 and "--include-reference" in err and not dest.exists()
    # every split: the RL rows, still no gold
    rc, o, _ = run_cli(capsys, "export", "--format", "trl", "--source", "swe", "--out", out, "--dest", str(dest),
                       "--all-trajectories")
    assert rc == 0 and "wrote 2 rows" in o
    assert all("-llm-" in i for i in pq.read_table(dest).column("id").to_pylist())


def test_include_reference_lets_the_gold_rows_through(fake_rollouts, tmp_path, capsys):
    out = curated_store(tmp_path)
    dest = tmp_path / "trl.parquet"
    rc, o, _ = run_cli(capsys, "export", "--format", "trl", "--source", "swe", "--out", out, "--dest", str(dest),
                       "--include-reference")
    assert rc == 0 and "wrote 2 rows" in o
    assert all("-gold-" in i for i in pq.read_table(dest).column("id").to_pylist())
    rc, o, _ = run_cli(capsys, "export", "--format", "trl", "--source", "swe", "--out", out,
                       "--dest", str(tmp_path / "trl-all.parquet"), "--include-reference", "--all-trajectories")
    assert rc == 0 and "wrote 4 rows" in o


def test_a_gold_row_of_an_older_store_is_left_out_too(fake_rollouts, tmp_path):
    out = curated_store(tmp_path, old_gold=True)
    assert "old-gold" not in {r["id"] for r in trl_rows(out, "swe", only_sft=True)}
    assert "old-gold" in {r["id"] for r in trl_rows(out, "swe", only_sft=True, include_reference=True)}


def test_include_reference_with_verl_is_a_clear_error(fake_rollouts, tmp_path, capsys):
    out = curated_store(tmp_path)
    dest = tmp_path / "v.parquet"
    rc, _, err = run_cli(capsys, "export", "--format", "verl", "--source", "swe", "--out", out, "--dest", str(dest),
                         "--include-reference")
    assert rc == 2 and "--include-reference" in err and "--format trl" in err and not dest.exists()
    assert len(err.strip().splitlines()) == 1
    # the verl swe export is of instances (no trajectory, so no gold replay): both instances, gold checked
    rc, o, _ = run_cli(capsys, "export", "--format", "verl", "--source", "swe", "--out", out, "--dest", str(dest))
    assert rc == 0 and "wrote 2 rows" in o
