"""verl RL parquet: ``data_source``, ``prompt`` (chat list), ``ability``, ``reward_model`` {``style``,
``ground_truth``}, ``extra_info`` and ``agent_name`` (verl's tool-agent loop reads ``extra_info.tools_kwargs``).
Browse: the questions of an RL split (``--split``, ``--all-splits``), optionally only those whose pass rate lies
in a band (``--pass-band``); swe: the validated instances (an instance filter may keep fewer)."""

from __future__ import annotations

import json

import pyarrow as pa

from crucible.pipelines.integrations.export_select import RL_SPLITS, PassBand, stored_rows
from crucible.pipelines.llm.prompts import load_prompt
from crucible.pipelines.store import catalog
from crucible.pipelines.swe.rollout import task_messages

BROWSE_TOOLS = ("search", "visit")
SWE_TOOLS = ("bash", "view", "str_replace", "create", "submit")
BROWSE_AGENT_PROMPT = "browse_agent"
# what grading an SWE patch needs of its instance (never the gold ``patch``: tools and rewards must not see it)
SWE_GRADE_FIELDS = ("instance_id", "repo", "base_commit", "environment_setup_commit", "version", "test_patch",
                    "FAIL_TO_PASS", "PASS_TO_PASS", "env_image", "recipe", "env_network", "id_style")

_PROMPT = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
_REWARD = pa.struct([("style", pa.string()), ("ground_truth", pa.string())])


def _verl_schema(create_kwargs: list[str], tools: tuple[str, ...], extra: list[tuple[str, pa.DataType]]) -> pa.Schema:
    ck = pa.struct([(k, pa.string()) for k in create_kwargs])
    return pa.schema([
        ("data_source", pa.string()),
        ("prompt", _PROMPT),
        ("ability", pa.string()),
        ("reward_model", _REWARD),
        ("extra_info", pa.struct([
            ("index", pa.int64()),
            ("split", pa.string()),
            ("id", pa.string()),
            ("question", pa.string()),
            *extra,
            ("need_tools_kwargs", pa.bool_()),
            ("tools_kwargs", pa.struct([(t, pa.struct([("create_kwargs", ck)])) for t in tools])),
            ("meta", pa.string()),
        ])),
        ("agent_name", pa.string()),
    ])


# extra_info carries what the kit's reward needs (crucible.pipelines.integrations.verl.reward): the gold's aliases, its
# graph entity, answer type and evidence hops (browse; evidence as a JSON string, for the clue term), the
# instance to grade (swe, a JSON string)
VERL_SCHEMAS = {
    "browse": _verl_schema(["question_id", "question"], BROWSE_TOOLS,
                           [("answer_aliases", pa.list_(pa.string())), ("answer_entity", pa.string()),
                            ("answer_type", pa.string()), ("evidence", pa.string())]),
    "swe": _verl_schema(["instance_id", "instance"], SWE_TOOLS, [("instance", pa.string())]),
}


def answer_entity(q: dict) -> str | None:
    """The graph entity a question's answer is (``formalization.binding[target]``), None for a value answer."""
    if q.get("answer_type") not in (None, "entity"):
        return None
    f = q.get("formalization") or {}
    binding, target = f.get("binding") or {}, f.get("target")
    return binding.get(target) if isinstance(binding, dict) and target else None


def browse_prompt(question: str) -> list[dict]:
    """The rollouts' own prompt (``configs/prompts/browse_agent.yaml``): system + user, as the SFT rows have it."""
    return [{"role": m["role"], "content": m["content"]} for m in load_prompt(BROWSE_AGENT_PROMPT).render(question=question)]


def verl_rows(out_dir: str, source: str = "browse", split: str | None = None, all_splits: bool = False,
              pass_band: PassBand | None = None, instance_filter=None) -> list[dict]:
    """verl rows. Browse: questions of an RL split (``rl``, ``sft+rl``) unless ``split`` names one or
    ``all_splits`` (questions the pipeline rejected for RL, split ``none``, are left out by default); with
    ``pass_band`` only those whose pass rate lies in it. Swe: the instances ``instance_filter``
    (:class:`crucible.pipelines.swe.quality_select.InstanceFilter`) keeps, every one without it."""
    if source == "swe" and split:
        raise ValueError("--split: swe instances have no split (every stored instance is validated); drop --split")
    if source == "swe" and pass_band is not None:
        raise ValueError("--pass-band: swe instances carry no pass rate (only browse questions do); drop --pass-band")
    con = catalog.connect(out_dir)
    try:
        rows: list[dict] = []
        if source == "browse":
            rows = [browse_verl_row(q) for q in _browse_questions(con, split, all_splits)
                    if pass_band is None or pass_band.contains(q.get("pass_rate"))]
        elif source == "swe":
            rows = [swe_verl_row(it) for it in stored_rows(con, "SELECT * FROM swe_instances ORDER BY instance_id",
                                                           "swe_instances")
                    if instance_filter is None or instance_filter.keeps(it)]
    finally:
        con.close()
    for i, r in enumerate(rows):
        r["extra_info"]["index"] = i
    return rows


def _browse_questions(con, split: str | None, all_splits: bool) -> list[dict]:
    if split:
        where, params = "WHERE split = ?", [split]
    elif all_splits:
        where, params = "", []
    else:
        where, params = "WHERE split IN (?, ?)", list(RL_SPLITS)
    return stored_rows(con, f"SELECT * FROM questions {where} ORDER BY question_id", "questions", params)


def browse_verl_row(q: dict) -> dict:
    """One stored question as a verl row (``extra_info.index`` is set by :func:`verl_rows`)."""
    ctx = {"question_id": q["question_id"], "question": q["question"]}
    return {
        "data_source": "crucible/browse",
        "prompt": browse_prompt(q["question"]),
        "ability": "research",
        "reward_model": {"style": "rule", "ground_truth": q["answer"]},
        "extra_info": {
            "split": q.get("split") or "train", "id": q["question_id"], "question": q["question"],
            "answer_aliases": q.get("answer_aliases") or [], "answer_entity": answer_entity(q),
            "answer_type": q.get("answer_type"), "evidence": json.dumps(q.get("evidence") or []),
            "need_tools_kwargs": True,
            "tools_kwargs": {t: {"create_kwargs": ctx} for t in BROWSE_TOOLS},
            "meta": json.dumps({"hops": q["hops"], "source": q["source"], "difficulty": q.get("difficulty"),
                                "pass_rate": q.get("pass_rate"),
                                "difficulty_score": q.get("difficulty_score"),
                                "solver_model": q.get("solver_model"), "solver_k": q.get("solver_k")}),
        },
        "agent_name": "tool_agent",
    }


def swe_verl_row(it: dict) -> dict:
    """One stored swe instance as a verl row: the rollouts' own task messages, the grading fields (never the
    gold patch) as the tools' and the reward's ``instance``."""
    gt = json.dumps({"FAIL_TO_PASS": it["FAIL_TO_PASS"], "PASS_TO_PASS": it["PASS_TO_PASS"]})
    inst = json.dumps({k: it.get(k) for k in SWE_GRADE_FIELDS})
    return {
        "data_source": "crucible/swe",
        "prompt": task_messages(it),
        "ability": "swe",
        "reward_model": {"style": "rule", "ground_truth": gt},
        "extra_info": {
            "split": "train", "id": it["instance_id"], "question": it["problem_statement"],
            "instance": inst, "need_tools_kwargs": True,
            "tools_kwargs": {t: {"create_kwargs": {"instance_id": it["instance_id"], "instance": inst}}
                             for t in SWE_TOOLS},
            "meta": json.dumps({"source": it["source"], "source_ref": it.get("source_ref")}),
        },
        "agent_name": "tool_agent",
    }
