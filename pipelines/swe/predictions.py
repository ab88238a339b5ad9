"""``crucible swe grade``: predictions in SWE-bench's format (JSONL ``{instance_id, model_name_or_path,
model_patch}``, several per instance allowed) graded against SWE-bench-format instances, each in a fresh
container of its instance's env, behind every grading defense (:mod:`crucible.pipelines.swe.grade`). Pure parts:
:func:`read_predictions`, :func:`grade_line`, :func:`summarize` (SWE-bench's report: resolved ids, counts)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path

from crucible.pipelines.rowcheck import format_problem, row_problem
from crucible.pipelines.store.commit import stable_hash, utc_now
from crucible.pipelines.swe.grade import ALL_DEFENSES, grade_patch
from crucible.pipelines.textio import InputError, JSONSyntaxError, loads, read_text, split_lines

PRED_FIELDS = ("instance_id", "model_name_or_path", "model_patch")  # schemas/swe_prediction.json


class PredictionsError(ValueError):
    pass


def read_predictions(path: str | Path) -> tuple[list[dict], list[str]]:
    """(good predictions in file order, problems as 'file:line: field F: what; fix' strings). Rows are
    checked against ``schemas/swe_prediction.json``; the same (instance_id, model_name_or_path) twice is
    a problem naming both lines. A file that cannot be read at all raises :class:`PredictionsError`."""
    p = Path(path)
    if not p.exists():
        raise PredictionsError(f"{p}: no such file; --predictions takes a JSONL file of "
                               "{instance_id, model_name_or_path, model_patch} rows")
    try:
        text = read_text(p, "predictions file")
    except InputError as exc:
        raise PredictionsError(str(exc)) from None
    if not text.strip():
        raise PredictionsError(f"{p}: the predictions file is empty; expected one JSON object per line "
                               "{instance_id, model_name_or_path, model_patch}")
    good, problems, seen = [], [], {}
    for n, line in enumerate(split_lines(text), 1):  # on "\n" only: U+2028 in a patch is text
        if not line.strip():
            continue
        try:  # textio's limits: nesting, size, NaN, a repeated key
            row = loads(line, f"{p}:{n}")
        except JSONSyntaxError as err:
            exc = err.decode_error
            problems.append(f"{p}:{n}: not JSON ({exc.msg} at column {exc.colno}); one JSON object per line")
            continue
        except InputError as err:
            problems.append(str(err))
            continue
        prob = row_problem("swe_prediction", row)
        if prob:
            problems.append(format_problem(f"{p}:{n}", *prob))
            continue
        key = (row["instance_id"], row["model_name_or_path"])
        if key in seen:
            problems.append(f"{p}:{n}: duplicate prediction of model {key[1]!r} for {key[0]!r}, already at line "
                            f"{seen[key]}; one prediction per instance and model")
            continue
        seen[key] = n
        good.append({"instance_id": row["instance_id"], "model_name_or_path": row["model_name_or_path"],
                     "model_patch": row["model_patch"] or "", "line": n})
    return good, problems


def grade_line(pred: Mapping, g: Mapping) -> dict:
    """The ``--json`` line of one graded prediction."""
    return {"instance_id": pred["instance_id"], "model_name_or_path": pred["model_name_or_path"],
            "resolved": bool(g["resolved"]), "grade": g["grade"], "reason": g["grade_reason"],
            "fail_to_pass": {"passed": g["f2p_passed"], "failed": g["f2p_total"] - g["f2p_passed"]},
            "pass_to_pass": {"passed": g["p2p_passed"], "failed": g["p2p_total"] - g["p2p_passed"]},
            "dropped_files": list(g["dropped_files"])}


def grade_id(pred: Mapping) -> str:
    """The ``swe_grades`` key (and store item key) of one prediction."""
    return stable_hash(pred["instance_id"], pred["model_name_or_path"], pred["model_patch"], n=16)


def grade_row(pred: Mapping, line: Mapping, run_id: str) -> dict:
    """The ``swe_grades`` row of one graded prediction (``line`` from :func:`grade_line`)."""
    return {"grade_id": grade_id(pred), "instance_id": line["instance_id"],
            "model_name_or_path": line["model_name_or_path"],
            "patch_sha256": hashlib.sha256(pred["model_patch"].encode("utf-8")).hexdigest(),
            "resolved": line["resolved"], "grade": line["grade"], "reason": line["reason"],
            "f2p_passed": line["fail_to_pass"]["passed"], "f2p_failed": line["fail_to_pass"]["failed"],
            "p2p_passed": line["pass_to_pass"]["passed"], "p2p_failed": line["pass_to_pass"]["failed"],
            "dropped_files": list(line["dropped_files"]), "run_id": run_id, "created_at": utc_now()}


def line_of_row(row: Mapping) -> dict:
    """A stored ``swe_grades`` row back as its ``--json`` line (a rerun reports graded ones too)."""
    return {"instance_id": row["instance_id"], "model_name_or_path": row["model_name_or_path"],
            "resolved": bool(row["resolved"]), "grade": row["grade"], "reason": row["reason"],
            "fail_to_pass": {"passed": row["f2p_passed"], "failed": row["f2p_failed"]},
            "pass_to_pass": {"passed": row["p2p_passed"], "failed": row["p2p_failed"]},
            "dropped_files": list(row["dropped_files"])}


def summarize(lines: Iterable[Mapping], n_instances: int) -> dict:
    """SWE-bench's report per model: counts and sorted id lists (resolved, unresolved, empty, error)."""
    out: dict[str, dict] = {}
    for ln in lines:
        m = out.setdefault(ln["model_name_or_path"], {"total_instances": n_instances, "submitted": 0,
                                                      "resolved_ids": set(), "unresolved_ids": set(),
                                                      "empty_patch_ids": set(), "error_ids": set(), "grades": {}})
        m["submitted"] += 1
        m["grades"][ln["grade"]] = m["grades"].get(ln["grade"], 0) + 1
        key = ("resolved_ids" if ln["resolved"] else "empty_patch_ids" if ln["grade"] == "empty_patch"
               else "error_ids" if ln["grade"] in ("infra", "run_error", "patch_apply", "no_instance")
               else "unresolved_ids")
        m[key].add(ln["instance_id"])
    for m in out.values():
        for k in ("resolved_ids", "unresolved_ids", "empty_patch_ids", "error_ids"):
            m[k] = sorted(m[k])
        m["resolved"] = len(m["resolved_ids"])
    return out


def grade_predictions(ctx, insts: Mapping[str, Mapping], preds: list[dict], defenses=None) -> list[dict]:
    """One ``--json`` line per prediction; a prediction for an unknown instance is graded ``no_instance``."""
    out = []
    for pred in preds:
        out.append(grade_one(ctx, insts, pred, defenses or ALL_DEFENSES, grade_patch))
    return out


def grade_one(ctx, insts: Mapping[str, Mapping], pred: Mapping, defenses, grader) -> dict:
    """The ``--json`` line of one prediction (``no_instance`` when its instance is not given)."""
    inst = insts.get(pred["instance_id"])
    if inst is None:
        return grade_line(pred, {"resolved": False, "grade": "no_instance", "f2p_passed": 0, "f2p_total": 0,
                                 "p2p_passed": 0, "p2p_total": 0, "dropped_files": [],
                                 "grade_reason": "no_instance: not among the instances"})
    return grade_line(pred, grader(ctx, inst, pred["model_patch"], defenses=defenses))
