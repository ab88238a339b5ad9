"""`crucible view`: the real server on loopback over a store written by the sample Beam pipeline."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest

from crucible.pipelines.view.server import ViewServer


@pytest.fixture(scope="module")
def viewer(sample_store):
    with ViewServer(str(sample_store), port=0) as srv:
        yield srv


def get(srv, path):
    try:
        with urllib.request.urlopen(srv.url.rstrip("/") + path, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_index_counts_every_table(viewer):
    status, body = get(viewer, "/")
    assert status == 200
    assert "browse_trajectories</a>: 12" in body and "failures</a>:" in body


def test_list_filters_by_verdict_and_pages(viewer):
    status, body = get(viewer, "/browse_trajectories?verdict=incorrect")
    assert status == 200
    ids = re.findall(r'href="/browse_trajectories/(t\d+)"', body)
    assert ids == ["t0001", "t0003", "t0005", "t0007", "t0009", "t0011"]
    assert "rows 1–6 of 6" in body
    status, body = get(viewer, "/browse_trajectories?sort=n_prompt_tokens&desc=1")
    assert re.findall(r'href="/browse_trajectories/(t\d+)"', body)[0] == "t0011"


def test_bad_sort_column_is_a_400_not_sql(viewer):
    status, body = get(viewer, "/browse_trajectories?sort=traj_id;drop")
    assert status == 400 and "sort must be one of" in body
    assert get(viewer, "/nope")[0] == 404
    assert get(viewer, "/browse_trajectories/t9999")[0] == 404


def test_trajectory_page_shows_tool_calls_verdict_and_links_to_question(viewer):
    status, body = get(viewer, "/browse_trajectories/t0002")
    assert status == 200
    assert "<b>search</b>" in body and "&quot;query&quot;: &quot;city 2&quot;" in body  # formatted arguments
    assert 'id="step-2"' in body  # deep link to one step
    assert 'class=\'ok\'>correct</span> by rule' in body
    assert 'href="/questions/q0002"' in body
    assert 'data-key="next"' in body and 'href="/browse_trajectories/t0003"' in body


def test_question_page_has_lineage_and_its_trajectories(viewer):
    status, body = get(viewer, "/questions/q0002")
    assert status == 200
    assert "hardening lineage" in body and "obfuscate" in body
    assert 'href="/browse_trajectories/t0002"' in body
    status, body = get(viewer, "/questions/q0002/compare")
    assert status == 200 and "Currency 2" in body


def test_swe_instance_page_shows_diffs_tests_and_links(viewer):
    status, body = get(viewer, "/swe_instances/demo__repo-1")
    assert status == 200
    assert "diff --git a/x.py b/x.py" in body
    assert "test_x.py::test_1" in body and "failed" in body and "passed" in body  # before / after outcome
    assert 'href="/swe_validations/demo__repo-1"' in body and 'href="/swe_trajectories/st0001"' in body


def test_search_finds_questions_and_answers(viewer):
    status, body = get(viewer, "/search?q=Currency%2011")
    assert status == 200
    assert 'href="/browse_trajectories/t0011"' in body
    assert "questions (1)" in body  # q0011's answer, not q0001's
