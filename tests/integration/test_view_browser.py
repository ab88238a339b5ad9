"""`crucible view` in a real headless Chromium: filter, open a trajectory, follow links, read a diff.

Screenshots land in test-artifacts/view/ (CRUCIBLE_TEST_ARTIFACTS moves them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines.view.server import ViewServer
from tests.support import browser

pytestmark = pytest.mark.integration
ARTIFACTS = Path(os.environ.get("CRUCIBLE_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))


@pytest.fixture(scope="module")
def chrome():
    why = browser.missing()
    if why:
        pytest.fail(f"browser tests need Chromium: {why}")  # never a silent skip
    drv = browser.driver()
    yield drv
    drv.quit()


def test_filter_open_follow_links_and_read_a_diff(sample_store, chrome):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    shots = ARTIFACTS / "view"
    with ViewServer(str(sample_store), port=0) as srv:
        chrome.get(srv.url)
        chrome.find_element(By.LINK_TEXT, "browse_trajectories").click()
        Select(chrome.find_element(By.NAME, "verdict")).select_by_value("correct")
        chrome.find_element(By.CSS_SELECTOR, "form.f button").click()
        assert "verdict=correct" in chrome.current_url
        rows = chrome.find_elements(By.CSS_SELECTOR, "table tr td:first-child a")
        assert [r.text for r in rows] == ["t0000", "t0002", "t0004", "t0006", "t0008", "t0010"]
        browser.screenshot(chrome, shots, "1-trajectories-filtered")
        rows[1].click()
        body = chrome.find_element(By.TAG_NAME, "body").text
        assert "search" in body and '"query": "city 2"' in body  # the tool call, arguments formatted
        assert "correct by rule" in body
        browser.screenshot(chrome, shots, "2-trajectory")
        chrome.find_element(By.TAG_NAME, "body").send_keys("j")  # keyboard: next row
        assert chrome.current_url.endswith("/browse_trajectories/t0003")
        chrome.back()
        chrome.find_element(By.LINK_TEXT, "q0002").click()
        body = chrome.find_element(By.TAG_NAME, "body").text
        assert "hardening lineage" in body and "obfuscate" in body
        browser.screenshot(chrome, shots, "3-question-lineage")
        chrome.get(srv.url + "swe_instances/demo__repo-1")
        diffs = chrome.find_elements(By.CSS_SELECTOR, "pre.diff")
        assert len(diffs) == 2 and "diff --git a/x.py b/x.py" in diffs[0].text
        assert "test_x.py::test_1" in chrome.find_element(By.TAG_NAME, "body").text
        browser.screenshot(chrome, shots, "4-swe-instance")
        chrome.find_element(By.LINK_TEXT, "st0001").send_keys(Keys.ENTER)
        assert "resolved True" in chrome.find_element(By.TAG_NAME, "body").text
