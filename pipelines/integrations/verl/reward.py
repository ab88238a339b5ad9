"""verl reward: ``compute_score(data_source, solution_str, ground_truth, extra_info)`` for Crucible's sources.

verl's reward manager calls it with the decoded response (``solution_str``: every assistant turn, tool call
and tool response of the rollout, special tokens removed), ``reward_model.ground_truth`` and ``extra_info`` of
the exported row (``crucible export --format verl``), plus any ``custom_reward_function.reward_kwargs``.

- ``crucible/browse``: the final answer is read from the response (``<answer>`` tags, a JSON step
  ``{"tool": "answer", "arguments": {"answer": ...}}``, or the text after the last tool response; the tagged
  forms through :mod:`crucible.pipelines.agent.parse`), then verified exactly as the pipeline verifies a rollout
  (:func:`crucible.pipelines.browse.verify.judge_verdict`: detectors, the graph when the gold is a graph entity, the
  rules; the LLM judge only with ``judge=True``). What the rules cannot decide scores 0 without a judge.
  The score is the pipeline's reward formula (``browse.reward_formula``) over outcome, format
  (:func:`crucible.pipelines.browse.reward.format_reward` on the parsed turns) and clue recall.
- ``crucible/swe``: the patch (``extra_info["crucible_patch"]``, put there by the kit's ``submit`` tool, else
  the diff in the response's last ``submit`` result) is graded by :func:`crucible.pipelines.swe.grade.grade_patch` in
  the instance's env container; the score is :func:`crucible.pipelines.swe.filters.reward_of`.

Pure Python; importing this module imports neither verl nor Docker: each source's scorer
(:mod:`~crucible.pipelines.integrations.verl.reward_browse`, :mod:`~crucible.pipelines.integrations.verl.reward_swe`) is
imported on its first row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crucible.pipelines.integrations.verl.reward_common import BROWSE, CONFIG, DATA_SOURCES, PATCH_KEY, SWE  # noqa: F401


class UnknownSource(ValueError):
    pass


# ------------------------------------------------------------------ verl entry point

def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: Mapping | None = None,
                  **kwargs) -> dict:
    """verl's ``custom_reward_function`` (``path: <this file>``, ``name: compute_score``). Returns
    ``{"score": float, ...}`` with numeric terms only (verl averages every key into its metrics).

    ``reward_kwargs`` (all optional): ``config`` / ``overrides`` (the Crucible config and ``--set`` items;
    browse: ``browse``, swe: ``swe``), ``graph_dir`` (a built graph; default the config's cached build),
    ``judge`` (``true``: the config's LLM judges what the rules cannot decide; default off: those score 0),
    ``formula`` (browse: the reward formula over outcome, format, clue; default ``browse.reward_formula``, whose
    clue term gives a wrong answer with good evidence 0.1 x clue; ``"outcome * format"`` gives it 0)."""
    # Each source's scorer is imported on its first row, on purpose: a browse run must not load Docker and
    # Beam (measured: the swe side 1.4 s and both, the browse side 1.1 s), nor a swe run the browse graph code.
    if data_source == BROWSE:
        from crucible.pipelines.integrations.verl.reward_browse import score_browse

        out = score_browse(solution_str, ground_truth, extra_info, **kwargs)
    elif data_source == SWE:
        from crucible.pipelines.integrations.verl.reward_swe import score_swe

        out = score_swe(solution_str, ground_truth, extra_info, **kwargs)
    else:
        raise UnknownSource(f"data_source {data_source!r}: the Crucible kit scores {', '.join(DATA_SOURCES)}; route "
                            "other sources to verl.utils.reward_score.default_compute_score")
    return {k: v for k, v in out.items() if not k.startswith("_")}
