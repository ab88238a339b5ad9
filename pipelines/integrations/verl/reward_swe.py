"""The verl reward of ``crucible/swe`` (:func:`crucible.pipelines.integrations.verl.reward.compute_score` routes here): the
submitted patch graded in the instance's env container, scored as the pipeline scores a rollout."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from crucible.pipelines.integrations.verl.reward_common import PATCH_KEY
from crucible.pipelines.integrations.verl.reward_common import config as _config
from crucible.pipelines.swe.filters import reward_of
from crucible.pipelines.swe.grade import grade_patch
from crucible.pipelines.swe.transforms import build_ctx

_SUBMIT_RESULT = re.compile(r"<tool_response>\s*(diff --git.*?)</tool_response>", re.S)


def submitted_patch(solution_str: str, extra_info: Mapping) -> str:
    """The patch of a rollout: what the kit's submit tool recorded, else the last ``submit`` result in the text
    (verl may have cut a long one: a cut diff does not apply and earns nothing)."""
    patch = extra_info.get(PATCH_KEY)
    if isinstance(patch, str):
        return patch
    found = _SUBMIT_RESULT.findall(solution_str or "")
    return found[-1] if found else ""


@functools.lru_cache(maxsize=2)
def _swe_grader(config: str, overrides: tuple[str, ...]):
    ctx = build_ctx(_config(config, overrides))
    return lambda inst, patch: grade_patch(ctx, inst, patch)


def score_swe(solution_str: str, ground_truth: Any, extra_info: Mapping | None = None, *, config: str = "swe",
              overrides: tuple[str, ...] | list[str] = (), grader: Callable | None = None) -> dict:
    extra = dict(extra_info or {})
    inst = extra.get("instance")
    inst = json.loads(inst) if isinstance(inst, str) else dict(inst or {})
    if not inst.get("instance_id"):
        raise ValueError("crucible/swe row without extra_info.instance (re-export with `crucible export --format "
                         "verl --source swe`)")
    gt = json.loads(ground_truth) if isinstance(ground_truth, str) else dict(ground_truth or {})
    inst["FAIL_TO_PASS"], inst["PASS_TO_PASS"] = list(gt["FAIL_TO_PASS"]), list(gt["PASS_TO_PASS"])
    patch = submitted_patch(solution_str, extra)
    g = (grader or _swe_grader(config, tuple(overrides)))(inst, patch)
    return {"score": reward_of(g), "resolved": float(bool(g["resolved"])),
            "f2p_passed": float(g["f2p_passed"]), "p2p_passed": float(g["p2p_passed"]), "_grade": g}
