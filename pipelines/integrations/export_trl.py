"""TRL conversational SFT rows: ``messages`` + ``tools``. Messages and tool schemas are arbitrary JSON, so they
use the ``datasets`` ``Json`` feature (arrow.json extension, ``List(Json())``): ``load_dataset("parquet")`` gives
each message back with only its own keys and tool-call arguments as dicts, which chat templates expect. The
SFT-split trajectories by default (``--all-trajectories``: every split); reference rows only with
``--include-reference``, semi_resolved rows only with ``--include-semi``."""

from __future__ import annotations

import json

from datasets import Features, Json, List, Value

from crucible.pipelines.integrations.export_select import REFERENCE_SPLIT, SEMI_SPLIT, stored_rows
from crucible.pipelines.store import catalog
from crucible.pipelines.swe.filters import REFERENCE_POLICIES


def _trl_message(m: dict) -> dict:
    """One message as chat templates read it: only the keys it has (no ``None`` values: a template that tests
    ``'tool_calls' in message`` must not find an empty one), ``content`` always a string, tool-call arguments
    as dicts, ``reasoning_content`` kept where the model gave it."""
    out = {"role": m["role"], "content": m.get("content") or ""}
    if m.get("reasoning_content"):
        out["reasoning_content"] = m["reasoning_content"]
    if m.get("tool_calls"):
        calls = []
        for c in m["tool_calls"]:
            try:
                args = json.loads(c["function"]["arguments"])
            except (json.JSONDecodeError, TypeError):
                args = {"_raw": c["function"]["arguments"]}
            calls.append({"id": c["id"], "type": "function", "function": {"name": c["function"]["name"], "arguments": args}})
        out["tool_calls"] = calls
    for k in ("tool_call_id", "name"):
        if m.get(k):
            out[k] = m[k]
    return out


def _trl_where(table: str, only_sft: bool, include_reference: bool, include_semi: bool = False) -> str:
    """Which trajectories a TRL export takes: the SFT splits (and the semi_resolved split ``semi`` when
    ``include_semi``), or every split; never a reference row (split ``reference``, or an swe row of a
    reference policy from a store written before that split) unless ``include_reference``."""
    splits = ["sft", "sft+rl", *([REFERENCE_SPLIT] if include_reference else []), *([SEMI_SPLIT] if include_semi else [])]
    conds = ["split IN (" + ", ".join(f"'{x}'" for x in splits) + ")"] if only_sft else []
    if not include_reference:
        conds.append(f"coalesce(split, '') <> '{REFERENCE_SPLIT}'")
        if table == "swe_trajectories":
            conds.append("policy NOT IN (" + ", ".join(f"'{p}'" for p in REFERENCE_POLICIES) + ")")
    return ("WHERE " + " AND ".join(conds)) if conds else ""


def trl_rows(out_dir: str, source: str = "all", only_sft: bool = True, include_reference: bool = False,
             include_semi: bool = False, instance_filter=None) -> list[dict]:
    """TRL conversational rows (:func:`_trl_where` says which); ``semi_resolved`` marks a row of split ``semi``
    (unresolved: train on it turn-masked, or not at all); ``instance_filter``: only swe trajectories of the
    instances it keeps."""
    con = catalog.connect(out_dir)
    out: list[dict] = []
    try:
        for table, src in (("browse_trajectories", "browse"), ("swe_trajectories", "swe")):
            if source not in (src, "all"):
                continue
            where = _trl_where(table, only_sft, include_reference, include_semi)
            kept = _kept_instances(con, instance_filter) if src == "swe" else None
            for t in stored_rows(con, f"SELECT * FROM {table} {where} ORDER BY traj_id", table):
                if kept is not None and t["instance_id"] not in kept:
                    continue
                msgs = [_trl_message(m) for m in t["messages"]]
                # tool results carry the tool name too (TRL's tool message shape)
                names = {c["id"]: c["function"]["name"] for m in msgs for c in m.get("tool_calls", [])}
                for m in msgs:
                    if m["role"] == "tool" and "name" not in m and names.get(m.get("tool_call_id")):
                        m["name"] = names[m["tool_call_id"]]
                out.append({"messages": msgs, "tools": t["tools"] or [], "source": src, "id": t["traj_id"],
                            "semi_resolved": t.get("split") == SEMI_SPLIT})
    finally:
        con.close()
    return out


def _kept_instances(con, instance_filter) -> set[str] | None:
    """Ids of the swe instances ``instance_filter`` keeps (None: no filter, every trajectory goes)."""
    if instance_filter is None:
        return None
    return {it["instance_id"] for it in stored_rows(con, "SELECT instance_id, quality_labels, difficulty FROM swe_instances",
                                              "swe_instances") if instance_filter.keeps(it)}


def trl_features():
    """Messages and tools as ``List(Json())``: each message keeps exactly its own keys through parquet."""
    return Features({"messages": List(Json()), "tools": List(Json()), "source": Value("string"), "id": Value("string"),
                     "semi_resolved": Value("bool")})
