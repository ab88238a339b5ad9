"""The verl reward of ``crucible/browse`` (:func:`crucible.pipelines.integrations.verl.reward.compute_score` routes here):
the final answer read from the decoded response, verified as the pipeline verifies a rollout, scored with the
pipeline's reward formula."""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from crucible.pipelines.agent import parse as P
from crucible.pipelines.browse import reward as R
from crucible.pipelines.browse import verify as V
from crucible.pipelines.browse.api import graph_dir as default_dir
from crucible.pipelines.browse.kg.model import read_graph
from crucible.pipelines.browse.resolve import name_index
from crucible.pipelines.browse.search.env import TOOL_SCHEMAS
from crucible.pipelines.browse.verify import judge_prompt
from crucible.pipelines.integrations.verl.reward_common import CONFIG
from crucible.pipelines.integrations.verl.reward_common import config as _config
from crucible.pipelines.llm import LLMClient

log = logging.getLogger(__name__)

_TAIL = re.compile(r"</(?:tool_response|tool_call|think|answer)>", re.I)
_ROLE_WORD = re.compile(r"^\s*(?:assistant|<\|assistant\|>)\s*\n", re.I)
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


@functools.lru_cache(maxsize=4)
def _resolver(graph_dir: str):
    return name_index(read_graph(graph_dir))


def _graph_dir(cfg, graph_dir: str | None) -> str | None:
    """The built graph to ground answers in: ``graph_dir`` or the config's cached build. Never built here (a
    reward worker must not spend minutes building one): without a build the graph check is skipped."""
    if graph_dir:
        if not (Path(graph_dir) / "manifest.json").exists():
            raise FileNotFoundError(f"reward_kwargs.graph_dir {graph_dir!r}: no built graph there (manifest.json); "
                                    "build it with `crucible kg build` or drop graph_dir")
        return str(graph_dir)
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
    client = LLMClient.from_config(cfg["llm"])
    prompt = judge_prompt()

    def fn(messages, schema):
        return client.structured(messages, schema, prompt=prompt, temperature=0).parsed

    return fn


# ------------------------------------------------------------------ browse

def browse_gold(ground_truth: Any, extra_info: Mapping, resolver=None):
    """The :class:`~crucible.pipelines.browse.verify.Gold` of an exported row, built as the pipeline builds it."""
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
