"""``crucible swe grade``: predictions in SWE-bench's format (JSONL ``{instance_id, model_name_or_path,
model_patch}``, several per instance allowed) graded against SWE-bench-format instances, each in a fresh
container of its instance's env, behind every grading defense (:mod:`pipelines.swe.grade`). Pure parts:
:func:`read_predictions`, :func:`grade_line`, :func:`summarize` (SWE-bench's report: resolved ids, counts)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path


class PredictionsError(ValueError):
    pass


def read_predictions(path: str | Path) -> tuple[list[dict], list[str]]:
    """(good predictions in file order, problems as 'file:line: field: what, fix' strings)."""
    p = Path(path)
    if not p.is_file():
        raise PredictionsError(f"{p}: no such file; --predictions takes a JSONL file of "
                               "{instance_id, model_name_or_path, model_patch} rows")
    good, problems = [], []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{p}:{n}: not JSON ({exc.msg}); one JSON object per line")
            continue
        if not isinstance(row, dict):
            problems.append(f"{p}:{n}: a {type(row).__name__}, not an object")
            continue
        bad = [f for f in ("instance_id", "model_name_or_path") if not isinstance(row.get(f), str) or not row[f]]
        if "model_patch" not in row or not isinstance(row["model_patch"], (str, type(None))):
            bad.append("model_patch")
        if bad:
            problems.append(f"{p}:{n}: field(s) {', '.join(bad)} missing or not strings "
                            "(model_patch: a diff string, null or \"\" for no patch)")
            continue
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
    from pipelines.swe.grade import ALL_DEFENSES, grade_patch

    out = []
    for pred in preds:
        inst = insts.get(pred["instance_id"])
        if inst is None:
            out.append({**grade_line(pred, {"resolved": False, "grade": "no_instance", "f2p_passed": 0,
                                            "f2p_total": 0, "p2p_passed": 0, "p2p_total": 0, "dropped_files": [],
                                            "grade_reason": "no_instance: not in --instances"})})
            continue
        out.append(grade_line(pred, grade_patch(ctx, inst, pred["model_patch"], defenses=defenses or ALL_DEFENSES)))
    return out
