"""`crucible view` in a real headless Chromium: filter, open a trajectory, follow links, read a diff.

The store is made by a real small run, `crucible browse rollout` over three questions (the toy graph, its
corpus and index, the agent loop, the rules and the judge; the LLM is the scripted fake server), plus the
sample pipeline's rows (questions with lineage, SWE instances, validations and trajectories).
Screenshots land in test-artifacts/view/ (CRUCIBLE_TEST_ARTIFACTS moves them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crucible.pipelines.view.server import ViewServer
from tests.support import browser
from tests.support.fake_browse import responder, write_toy_graph

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("CRUCIBLE_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))


@pytest.fixture(scope="module")
def chrome():
    why = browser.missing()
    if why:
        pytest.fail(f"browser tests need Chromium: {why}")  # never a silent skip
    drv = browser.driver()
    yield drv
    drv.quit()


@pytest.fixture(scope="module")
def run_store(tmp_path_factory):
    """A store written by `crucible browse rollout` (k=2 over gold, judge and no-gold questions), then by the
    sample pipeline (which adds the question, SWE and failure rows the rollout cannot make)."""
    from crucible.pipelines.store import lock
    from tests.support.fake_llm_server import FakeOpenAIServer
    from tests.support.sample_pipeline import run

    tmp = tmp_path_factory.mktemp("view-run")
    out = tmp / "store"
    files = write_toy_graph(tmp)
    questions = tmp / "questions.jsonl"
    questions.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "peru", "question": "Which currency is used in Peru?", "gold": "Peruvian sol"},
        {"id": "bolivia", "question": "Which currency is used in Bolivia?", "gold": "Boliviano"},
        {"id": "open", "question": "What is the currency of the country whose capital is Lima?"}]))
    sets = ["llm.engine=openai", "llm.model=fake-model", "search.kg.embedded=false",
            f"search.kg.extra={json.dumps(files)}", "browse.policy=json_step"]
    with FakeOpenAIServer(responder=responder) as srv:
        cmd = [sys.executable, "-m", "crucible.pipelines.cli", "browse", "rollout", "--input", str(questions), "--out", str(out),
               "--k", "2", "--set", f"llm.base_urls=[{srv.base_url}]", *[x for s in sets for x in ("--set", s)]]
        res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                             env={**os.environ, "CRUCIBLE_CACHE_DIR": str(tmp / "cache")})
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads(res.stdout.splitlines()[-1])["committed"] == 6
    run(str(out), 12, bad_every=5, commit_every=4)
    lock.release(str(out))
    return out


def test_filter_open_follow_links_and_read_a_diff(run_store, chrome):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    shots = ARTIFACTS / "view"
    with ViewServer(str(run_store), port=0) as srv:
        chrome.get(srv.url)
        browser.navigate(chrome, chrome.find_element(By.LINK_TEXT, "browse_trajectories").click)
        Select(chrome.find_element(By.NAME, "verdict")).select_by_value("correct")
        browser.navigate(chrome, chrome.find_element(By.CSS_SELECTOR, "form.f button").click)
        assert "verdict=correct" in chrome.current_url
        rows = chrome.find_elements(By.CSS_SELECTOR, "table tr td:first-child a")
        assert [r.text for r in rows] == ["peru-0", "peru-1", "t0000", "t0002", "t0004", "t0006", "t0008", "t0010"]
        browser.screenshot(chrome, shots, "1-trajectories-filtered")
        filtered = chrome.current_url
        browser.navigate(chrome, rows[0].click)  # a trajectory of the real run: its tool call, observation and verdict reasoning
        body = chrome.find_element(By.TAG_NAME, "body").text
        assert "search" in body and '"query": "Peru currency"' in body and "Peruvian sol" in body
        assert "correct by rule" in body and "matches a gold answer after normalization" in body
        assert "peru (outside question)" in body and 'Search results for "Peru currency"' in body  # the observation
        browser.screenshot(chrome, shots, "0-rollout-trajectory")
        chrome.get(srv.url + "browse_trajectories/bolivia-1")
        body = chrome.find_element(By.TAG_NAME, "body").text
        # the gold has no graph id: the graph resolves both ("Peruvian sol" is another currency) before any judge
        assert "incorrect by graph" in body and "graph: prediction resolves to currency/PEN (Peruvian sol)" in body
        chrome.get(srv.url + "browse_trajectories/open-0")
        body = chrome.find_element(By.TAG_NAME, "body").text
        assert "not judged" in body and "not_judged: the question came without a gold answer" in body
        chrome.get(srv.url + "questions/peru/compare")  # the k rollouts of an outside question side by side
        assert len(chrome.find_elements(By.CSS_SELECTOR, "h3 a")) == 2
        chrome.get(filtered)
        browser.navigate(chrome, chrome.find_element(By.LINK_TEXT, "t0002").click)
        body = chrome.find_element(By.TAG_NAME, "body").text
        assert "search" in body and '"query": "city 2"' in body  # the tool call, arguments formatted
        assert "correct by rule" in body
        browser.screenshot(chrome, shots, "2-trajectory")
        body_el = chrome.find_element(By.TAG_NAME, "body")
        browser.navigate(chrome, lambda: body_el.send_keys("j"))  # keyboard: next row
        assert chrome.current_url.endswith("/browse_trajectories/t0003")
        browser.navigate(chrome, chrome.back)
        browser.navigate(chrome, chrome.find_element(By.LINK_TEXT, "q0002").click)
        body = chrome.find_element(By.TAG_NAME, "body").text
        assert "hardening lineage" in body and "obfuscate" in body
        browser.screenshot(chrome, shots, "3-question-lineage")
        chrome.get(srv.url + "swe_instances/demo__repo-1")
        diffs = chrome.find_elements(By.CSS_SELECTOR, "pre.diff")
        assert len(diffs) == 2 and "diff --git a/x.py b/x.py" in diffs[0].text
        assert "test_x.py::test_1" in chrome.find_element(By.TAG_NAME, "body").text
        browser.screenshot(chrome, shots, "4-swe-instance")
        link = chrome.find_element(By.LINK_TEXT, "st0001")
        browser.navigate(chrome, lambda: link.send_keys(Keys.ENTER))
        assert "resolved True" in chrome.find_element(By.TAG_NAME, "body").text
