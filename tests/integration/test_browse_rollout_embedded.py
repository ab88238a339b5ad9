"""`crucible browse rollout` with the real embedded model over 20 outside questions: all 20 land in the
store; a run SIGKILLed half-way and rerun loses no row and writes none twice."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.model, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
# about 5 s a rollout on 2 idle cores (the whole test ~3 min); a machine shared with other model servers is
# many times slower, so the bound is generous
DEADLINE_S = 1800

# simple factual questions the embedded corpus can answer; the last four come without a gold (not judged)
CAPITALS = [("France", "Paris"), ("Japan", "Tokyo"), ("Peru", "Lima"), ("Kenya", "Nairobi"), ("Norway", "Oslo"),
            ("Egypt", "Cairo"), ("Canada", "Ottawa"), ("Chile", "Santiago"), ("Spain", "Madrid"),
            ("Poland", "Warsaw"), ("Greece", "Athens"), ("Cuba", "Havana"), ("Austria", "Vienna"),
            ("Portugal", "Lisbon"), ("Ireland", "Dublin"), ("Thailand", "Bangkok"), ("Sweden", "Stockholm"),
            ("Hungary", "Budapest"), ("Vietnam", "Hanoi"), ("Argentina", "Buenos Aires")]


@pytest.fixture(scope="module")
def llm_url():
    pytest.importorskip("xllamacpp", reason="the [embedded] extra is not installed")
    from crucible.pipelines.config import load_config
    from crucible.pipelines.llm import llm_endpoint

    with llm_endpoint(load_config("browse").llm) as urls:
        yield urls[0]


def _rows():
    rows = []
    for i, (country, capital) in enumerate(CAPITALS):
        row = {"id": f"cap-{i:02d}", "question": f"What is the capital city of {country}?"}
        if i < 16:
            row["gold"] = capital
        rows.append(row)
    return rows


@pytest.mark.timeout(2 * DEADLINE_S + 120)
def test_twenty_questions_killed_half_way_and_rerun_no_duplicate_no_loss(llm_url, tmp_path):
    from crucible.pipelines.store import catalog
    from crucible.pipelines.store.batch import ERROR_SEP
    from crucible.pipelines.store.commit import done_keys

    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    out = tmp_path / "store"
    # short episodes: one search, then the answer (max_turns 2), short observations and steps
    cmd = [sys.executable, "-m", "crucible.pipelines.cli", "browse", "rollout", "--input", str(questions), "--out", str(out),
           "--k", "1", "--set", f"llm.base_urls=[{llm_url}]", "--set", "browse.max_turns=2",
           "--set", "browse.max_tokens=80", "--set", "browse.max_thought_chars=60",
           "--set", "browse.max_observation_chars=500", "--set", "search.top_k=2", "--set", "run.progress_every_s=0"]
    log = (tmp_path / "run1.log").open("w")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)

    def committed():
        try:
            return {k for k in done_keys(str(out), "browse-rollout") if ERROR_SEP not in k}
        except Exception:  # the store is not laid out yet
            return set()

    killed_at = None
    try:
        while proc.poll() is None and time.monotonic() - t0 < DEADLINE_S:
            n = len(committed())
            if n >= 10:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                killed_at = n
                break
            time.sleep(0.3)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    assert killed_at is not None, (tmp_path / "run1.log").read_text()[-3000:]
    assert 10 <= killed_at < 20, f"the kill came too late ({killed_at} committed)"
    first_s = time.monotonic() - t0

    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=DEADLINE_S)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["skipped"] == len(committed() & {f"cap-{i:02d}-0" for i in range(20)}) - summary["committed"]
    assert summary["skipped"] >= killed_at and summary["skipped"] + summary["committed"] == 20

    _, rows = catalog.query(str(out), "select traj_id, verdict, verdict_source, termination, n_tool_calls "
                                      "from browse_trajectories")
    ids = [r[0] for r in rows]
    assert len(ids) == 20 and set(ids) == {f"cap-{i:02d}-0" for i in range(20)}  # no duplicate, no loss
    by = {r[0]: r for r in rows}
    for i in range(20):
        _, verdict, source, termination, calls = by[f"cap-{i:02d}-0"]
        if i < 16:
            assert verdict in ("correct", "incorrect", "not_attempted") and source in ("rule", "judge")
        else:
            assert verdict is None and source is None
        assert termination in ("answered", "forced_answer", "turn_cap", "token_cap", "error")
    correct = sum(by[f"cap-{i:02d}-0"][1] == "correct" for i in range(16))
    print(f"browse rollout: killed after {killed_at} committed ({first_s:.0f}s), rerun {summary['committed']} in "
          f"{summary['seconds']}s ({summary['items_per_min']} rows/min); {correct}/16 judged correct; "
          f"verdicts {summary['verdicts']}")
