"""A retried bundle writes nothing twice (#27 item 3). FnApiRunner never retries a bundle, so these tests
retry on purpose: the commit DoFn run twice on the same elements (same and different batching), and a
pipeline whose bundle fails half way (after some commits) run again."""

from __future__ import annotations

import apache_beam as beam
import pytest

from crucible.pipelines.beam_options import pipeline_options
from crucible.pipelines.store import catalog
from crucible.pipelines.store.catalog import refresh_catalog
from crucible.pipelines.store.commit import ItemResult, ensure_layout, failure_row
from crucible.pipelines.store.sinks import CommitResults, _CommitDoFn
from tests.support import portable_swe as ps
from tests.support import samples


def _items(n: int) -> list[ItemResult]:
    out = []
    for i in range(n):
        it = ItemResult(f"demo__repo-{i}").add("swe_validations", dict(samples.swe_validation(i),
                                                                      instance_id=f"demo__repo-{i}"))
        out.append(it.add("failures", failure_row(pipeline="swe-curate", stage="validate", kind="filtered",
                                                  reason="x", run_id="r", item_key=it.key)))
    return out


def _bundle(out: str, items: list[ItemResult], every_items: int) -> None:
    fn = _CommitDoFn(out, "swe-curate", "r", every_items, 3600, "zstd", None, 0)
    fn.setup()
    fn.start_bundle()
    for it in items:
        fn.process(it)
    fn.finish_bundle()


def _counts(out: str) -> tuple:
    refresh_catalog(out)
    return (catalog.query(out, "select count(*), count(distinct instance_id) from swe_validations")[1][0],
            catalog.query(out, "select count(*), count(distinct failure_id) from failures")[1][0])


@pytest.mark.parametrize("first, again", [(2, 2), (2, 3), (8, 1)])
def test_a_retried_commit_bundle_writes_each_row_once(tmp_path, first, again):
    out = str(tmp_path / "store")
    ensure_layout(out)
    items = _items(5)
    _bundle(out, items[:3], first)  # the first attempt committed part of the bundle, then its worker was lost
    _bundle(out, items, again)  # the runner retries the whole bundle, batched the same or differently
    assert _counts(out) == ((5, 5), (5, 5))


def test_keys_not_derived_from_content_duplicate_on_retry(tmp_path):
    """Switched off: an item key that names the attempt (not the content) makes the retry new work."""
    out = str(tmp_path / "store")
    ensure_layout(out)

    def attempt(n: int) -> list[ItemResult]:
        items = _items(5)
        for it in items:
            it.key = f"{it.key}@attempt{n}"
        return items

    _bundle(out, attempt(1)[:3], 2)
    _bundle(out, attempt(2), 3)
    assert _counts(out)[0] == (8, 5)


def test_a_bundle_that_fails_half_way_then_reruns_commits_each_key_once(tmp_path):
    out = str(tmp_path / "store")
    ensure_layout(out)
    marker = str(tmp_path / "raised")
    opts = pipeline_options({"runner": "FnApiRunner"})

    def run():
        with beam.Pipeline(options=opts) as p:
            (p | beam.Create(_items(6)) | beam.Map(ps.raise_once, marker, "demo__repo-4")
             | CommitResults(out, "swe-curate", "r", every_items=1, every_s=3600, progress_every_s=0))

    with pytest.raises(Exception, match="injected failure"):
        run()
    refresh_catalog(out)
    partial = catalog.query(out, "select count(*) from swe_validations")[1][0][0]
    assert 0 < partial < 6  # commits before the failure stand
    run()  # the retry: the same elements again
    assert _counts(out) == ((6, 6), (6, 6))
