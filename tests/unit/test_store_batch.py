"""crucible.pipelines.store.batch.run_items: commit as items finish, skip committed keys, never mark a failed item done."""

import threading

import pytest

from crucible.pipelines.store import catalog
from crucible.pipelines.store.batch import run_items
from crucible.pipelines.store.commit import ItemResult, done_keys
from tests.support.samples import question

KEYS = ["q0000", "q0001", "q0002", "q0003"]


def item(key: str) -> ItemResult:
    return ItemResult(key).add("questions", question(int(key[1:])))


def test_failed_items_are_recorded_not_done_and_a_rerun_does_only_those(tmp_path):
    out = str(tmp_path)
    calls = []
    lock = threading.Lock()

    def flaky(key):
        with lock:
            calls.append(key)
        if key == "q0002":
            raise ConnectionError("endpoint went away")
        return item(key)

    s = run_items(out, "demo", "r1", KEYS, flaky, workers=2, stage="work", progress_every_s=0)
    assert (s.committed, s.errors, s.skipped) == (3, 1, 0)
    assert s.error_reasons == ["ConnectionError: endpoint went away"]
    assert "q0002" not in done_keys(out, "demo") and {"q0000", "q0001", "q0003"} <= done_keys(out, "demo")
    _, fails = catalog.query(out, "select item_key, stage, kind from failures")
    assert fails == [("q0002", "work", "error")]

    calls.clear()
    s2 = run_items(out, "demo", "r2", KEYS, item, workers=2, progress_every_s=0)
    assert calls == [] and (s2.committed, s2.skipped, s2.errors) == (1, 3, 0)
    _, rows = catalog.query(out, "select question_id from questions order by 1")
    assert [r[0] for r in rows] == KEYS  # each once


def test_an_item_is_committed_while_the_next_one_still_runs(tmp_path):
    import time

    out, seen = str(tmp_path), []

    def work(key):
        i = KEYS.index(key)
        deadline = time.monotonic() + 10
        while i and KEYS[i - 1] not in done_keys(out, "demo") and time.monotonic() < deadline:
            time.sleep(0.01)  # the previous item must reach the store before this one finishes
        seen.append(i == 0 or KEYS[i - 1] in done_keys(out, "demo"))
        return item(key)

    s = run_items(out, "demo", "r", KEYS, work, workers=1, progress_every_s=0)
    assert seen == [True] * 4 and s.commits == 4 and s.rows == {"questions": 4}


def test_a_work_result_under_another_key_is_an_error_not_a_done_item(tmp_path):
    s = run_items(str(tmp_path), "demo", "r", ["q0000"], lambda k: item("q0001"), workers=1, progress_every_s=0)
    assert s.committed == 0 and s.errors == 1 and "q0001" in s.error_reasons[0]
    assert not ({"q0000", "q0001"} & done_keys(str(tmp_path), "demo"))


def test_repeated_keys_are_refused(tmp_path):
    with pytest.raises(ValueError, match="repeat"):
        run_items(str(tmp_path), "demo", "r", ["q0000", "q0000"], item, workers=1)
