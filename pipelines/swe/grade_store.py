"""``crucible swe grade --store``: the store side of grading outside predictions -- instances read from a store's
``swe_instances``, and each prediction's ``swe_grades`` row committed as it finishes (resumable)."""

from __future__ import annotations

from crucible.pipelines.store import catalog
from crucible.pipelines.store.batch import BatchSummary, run_items
from crucible.pipelines.store.commit import ItemResult
from crucible.pipelines.store.manifests import require_store
from crucible.pipelines.store.records import record_type
from crucible.pipelines.swe import grade  # grade.grade_patch looked up per call: one place to swap the grader
from crucible.pipelines.swe.predictions import grade_id, grade_one, grade_row, line_of_row
from crucible.pipelines.swe.sources import InputFileError

GRADE_PIPELINE = "swe-grade"


def store_instances(out_dir: str) -> list[dict]:
    """The store's ``swe_instances`` rows (with the env each was validated in), decoded."""
    try:
        require_store(out_dir)
    except Exception as exc:
        raise InputFileError(str(exc)) from None
    cols, rows = catalog.query(out_dir, "SELECT * FROM swe_instances ORDER BY instance_id")
    if not rows:
        raise InputFileError(f"{out_dir}: the store has no swe_instances; run crucible swe validate or make "
                             "swe-curate into it, or pass --instances FILE")
    rt = record_type("swe_instances")
    return [rt.decode(dict(zip(cols, r))) for r in rows]


def grade_into_store(out_dir: str, ctx, insts: dict, preds: list[dict], run_id: str,
                     cfg) -> tuple[list[dict], BatchSummary]:
    """Grade each prediction not yet in ``out_dir``'s ``swe_grades`` and commit its row as it finishes
    (one builder: :func:`crucible.pipelines.swe.predictions.grade_row`); returns the lines of every prediction,
    the ones graded before included, and the batch summary."""
    by_key = {grade_id(p): p for p in preds}

    def work(key: str) -> ItemResult:
        pred = by_key[key]
        line = grade_one(ctx, insts, pred, grade.ALL_DEFENSES, grade.grade_patch)
        return ItemResult(key).add("swe_grades", grade_row(pred, line, run_id))

    summary = run_items(out_dir, GRADE_PIPELINE, run_id, list(by_key), work, workers=1, stage="grade",
                        compression=cfg.store.compression, progress_every_s=cfg.run.progress_every_s)
    cols, rows = catalog.query(out_dir, "SELECT * FROM swe_grades")
    stored = {r["grade_id"]: r for r in (dict(zip(cols, x)) for x in rows)}
    return [line_of_row(stored[k]) for k in by_key if k in stored], summary
