"""verl reward: ``compute_score(data_source, solution_str, ground_truth, extra_info)`` for Crucible's sources.

verl's reward manager calls it with the decoded response (``solution_str``: every assistant turn, tool call
and tool response of the rollout, special tokens removed), ``reward_model.ground_truth`` and ``extra_info`` of
the exported row (``crucible export --format verl``), plus any ``custom_reward_function.reward_kwargs``.

- ``crucible/browse``: the final answer is read from the response (``<answer>`` tags, a JSON step
  ``{"tool": "answer", "arguments": {"answer": ...}}``, or the text after the last tool response; the tagged
  forms through :mod:`pipelines.agent.parse`), then verified exactly as the pipeline verifies a rollout
  (:func:`pipelines.browse.verify.judge_verdict`: detectors, the graph when the gold is a graph entity, the
  rules; the LLM judge only with ``judge=True``). What the rules cannot decide scores 0 without a judge.
  The score is the pipeline's reward formula (``browse.reward_formula``) over outcome, format
  (:func:`pipelines.browse.reward.format_reward` on the parsed turns) and clue recall.
- ``crucible/swe``: the patch (``extra_info["crucible_patch"]``, put there by the kit's ``submit`` tool, else
  the diff in the response's last ``submit`` result) is graded by :func:`pipelines.swe.grade.grade_patch` in
  the instance's env container; the score is :func:`pipelines.swe.filters.reward_of`.

Pure Python; importing this module imports neither verl nor Docker.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

BROWSE = "crucible/browse"
SWE = "crucible/swe"
DATA_SOURCES = (BROWSE, SWE)
CONFIG = "browse"  # the shipped config the kit reads when reward_kwargs name none
PATCH_KEY = "crucible_patch"  # extra_info key the submit tool fills (verl: agent_data.extra_fields)

_TAIL = re.compile(r"</(?:tool_response|tool_call|think|answer)>", re.I)
_ROLE_WORD = re.compile(r"^\s*(?:assistant|<\|assistant\|>)\s*\n", re.I)
_SUBMIT_RESULT = re.compile(r"<tool_response>\s*(diff --git.*?)</tool_response>", re.S)


class UnknownSource(ValueError):
    pass


# ------------------------------------------------------------------ response -> answer, turns

def json_step_answer(text: str) -> str | None:
    """The answer of a JSON-step final action (``{"tool": "answer", "arguments": {"answer": "..."}}``, or
    ``{"answer": "..."}``), else None."""
    s = (text or "").strip()
    if not s.startswith("{"):
        return None
    try:
        obj = json.loads(s)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    if obj.get("tool") == "answer" and isinstance(obj.get("arguments"), dict):
        obj = obj["arguments"]
    ans = obj.get("answer")
    return str(ans).strip() if isinstance(ans, (str, int, float)) and str(ans).strip() else None


def read_response(solution_str: str) -> tuple[str, list[dict], list[str]]:
    """(final answer text, OpenAI messages of the turns, parse problems) of a decoded verl response.

    The final text is the parser's final answer (``<answer>``, untagged text), else what follows the last
    closing tag (verl's decoded multi-turn response puts the final turn after the last ``</tool_response>``,
    behind a bare role word); a JSON step is unwrapped to its answer. An empty string: no final answer."""
    from pipelines.agent import parse as P

    text = solution_str or ""
    problems: list[str] = []
    try:
        parsed = P.parse(text)
    except P.ParseError as exc:
        problems.append(f"unparsable tool call: {exc}")
        parsed = P.Parsed(form="text")
    final = parsed.final_answer
    if final is None:
        tails = list(_TAIL.finditer(text))
        tail = text[tails[-1].end():] if tails else ""
        final = _ROLE_WORD.sub("", tail).strip() or None
    if final is not None:
        final = json_step_answer(final) or final
    parsed.final_answer = final
    return final or "", P.to_messages(parsed), problems


# ------------------------------------------------------------------ config, graph, judge (cached per process)

@functools.lru_cache(maxsize=8)
def _config(name: str, overrides: tuple[str, ...]):
    from pipelines.config import load_config

    return load_config(name, list(overrides))


@functools.lru_cache(maxsize=4)
def _resolver(graph_dir: str):
    from pipelines.browse.kg.model import read_graph
    from pipelines.browse.resolve import name_index

    return name_index(read_graph(graph_dir))


def _graph_dir(cfg, graph_dir: str | None) -> str | None:
    """The built graph to ground answers in: ``graph_dir`` or the config's cached build. Never built here (a
    reward worker must not spend minutes building one): without a build the graph check is skipped."""
    if graph_dir:
        if not (Path(graph_dir) / "manifest.json").exists():
            raise FileNotFoundError(f"reward_kwargs.graph_dir {graph_dir!r}: no built graph there (manifest.json); "
                                    "build it with `crucible kg build` or drop graph_dir")
        return str(graph_dir)
    from pipelines.browse.api import graph_dir as default_dir

    d = default_dir(cfg)
    if (d / "manifest.json").exists():
        return str(d)
    _warn_once(f"no built graph at {d}: answers are checked by the rules only (`crucible kg build` builds it)")
    return None


@functools.lru_cache(maxsize=32)
def _warn_once(msg: str) -> None:
    log.warning(msg)


def _judge_fn(cfg, judge: bool | Callable | None):
    if callable(judge):
        return judge
    if not judge:
        return lambda messages, schema: None
    from pipelines.browse.verify import judge_prompt
    from pipelines.llm import LLMClient

    client = LLMClient.from_config(cfg["llm"])
    prompt = judge_prompt()

    def fn(messages, schema):
        return client.structured(messages, schema, prompt=prompt, temperature=0).parsed

    return fn


# ------------------------------------------------------------------ browse

def browse_gold(ground_truth: Any, extra_info: Mapping, resolver=None):
    """The :class:`~pipelines.browse.verify.Gold` of an exported row, built as the pipeline builds it."""
    from pipelines.browse import verify as V

    if isinstance(ground_truth, Mapping):  # Search-R1 style {"target": [...]}
        names = [str(x) for x in (ground_truth.get("target") or [])]
    else:
        names = [str(ground_truth)]
    names += [str(a) for a in (extra_info.get("answer_aliases") or []) if a]
    names = list(dict.fromkeys(n for n in names if n))
    if not names:
        raise ValueError("crucible/browse row without a gold answer (reward_model.ground_truth is empty)")
    atype, eid = extra_info.get("answer_type"), extra_info.get("answer_entity")
    if eid and atype in (None, "entity"):
        etype = resolver.type_of(eid) if resolver is not None and eid in resolver.graph.entities else None
        return V.Gold(tuple(names), eid, etype, V.AnswerKind.ENTITY)
    return V.Gold(tuple(names), None, atype, V.kind_for(atype))


def score_browse(solution_str: str, ground_truth: Any, extra_info: Mapping | None = None, *, config: str = CONFIG,
                 overrides: tuple[str, ...] | list[str] = (), graph_dir: str | None = None,
                 judge: bool | Callable | None = False, formula: str | None = None, resolver=None) -> dict:
    from pipelines.browse import reward as R
    from pipelines.browse import verify as V
    from pipelines.browse.search.env import TOOL_SCHEMAS

    extra = dict(extra_info or {})
    cfg = _config(config, tuple(overrides))
    opts = cfg["browse"]
    if resolver is None and extra.get("answer_entity"):
        gdir = _graph_dir(cfg, graph_dir)
        resolver = _resolver(gdir) if gdir else None
    gold = browse_gold(ground_truth, extra, resolver)
    final, messages, problems = read_response(solution_str)
    v = V.judge_verdict(str(extra.get("question") or ""), gold, final, _judge_fn(cfg, judge),
                        rel_tol=float(opts["rel_tol"]), resolver=resolver)
    fmt, fmt_problems = R.format_reward(messages, [s["function"]["name"] for s in TOOL_SCHEMAS])
    if problems:
        fmt = 0.0
    evidence = _json_list(extra.get("evidence"))
    urls = [str(json.loads(c["function"]["arguments"]).get("url") or "") for m in messages
            for c in m.get("tool_calls") or [] if c["function"]["name"] == "visit"]
    observations = [m.get("content") or "" for m in messages if m.get("role") == "tool"]
    clue = R.clue_recall(evidence, urls, observations)
    terms = {"outcome": R.outcome_reward(v.verdict), "format": fmt, "clue": clue}
    return {"score": R.combine(terms, formula or str(opts["reward_formula"])), **terms,
            "correct": float(v.verdict == "correct"), "not_attempted": float(v.verdict == "not_attempted"),
            "graph_decided": float(v.source == V.Source.GRAPH.value),
            "_verdict": v, "_format_problems": problems + fmt_problems}


def _json_list(value) -> list:
    if not value:
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return list(value) if isinstance(value, (list, tuple)) else []


# ------------------------------------------------------------------ swe

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
    from pipelines.swe.grade import grade_patch
    from pipelines.swe.transforms import build_ctx

    ctx = build_ctx(_config(config, overrides))
    return lambda inst, patch: grade_patch(ctx, inst, patch)


def score_swe(solution_str: str, ground_truth: Any, extra_info: Mapping | None = None, *, config: str = "swe",
              overrides: tuple[str, ...] | list[str] = (), grader: Callable | None = None) -> dict:
    from pipelines.swe.filters import reward_of

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
    if data_source == BROWSE:
        out = score_browse(solution_str, ground_truth, extra_info, **kwargs)
    elif data_source == SWE:
        out = score_swe(solution_str, ground_truth, extra_info, **kwargs)
    else:
        raise UnknownSource(f"data_source {data_source!r}: the Crucible kit scores {', '.join(DATA_SOURCES)}; route "
                            "other sources to verl.utils.reward_score.default_compute_score")
    return {k: v for k, v in out.items() if not k.startswith("_")}
