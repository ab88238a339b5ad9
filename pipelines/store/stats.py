"""Headline numbers per table, computed with SQL over the catalog views."""

from __future__ import annotations

import json
import re
from typing import Any

import duckdb

from crucible.pipelines.store import fsio
from crucible.pipelines.store.records import TABLES


def _one(con, sql: str) -> Any:
    row = con.execute(sql).fetchone()
    return row[0] if row else None


def _pairs(con, sql: str) -> list[list]:
    """Rows of ``sql``; a count ordered ``ORDER BY 2 DESC`` breaks ties by the key (``, 1``), so the same
    store prints the same lines (and the same top entry) on every run."""

    sql = re.sub(r"ORDER BY 2 DESC(?!,)", "ORDER BY 2 DESC, 1", sql)
    return [list(r) for r in con.execute(sql).fetchall()]


def _dist(con, table: str, expr: str, where: str = "true") -> dict | None:
    r = con.execute(
        f"SELECT count({expr}), avg({expr}), min({expr}), quantile_cont({expr}, 0.5), "
        f"quantile_cont({expr}, 0.9), max({expr}) FROM {table} WHERE {where}"
    ).fetchone()
    if not r or not r[0]:
        return None
    keys = ("n", "mean", "min", "p50", "p90", "max")
    out = {k: (round(float(v), 4) if v is not None else None) for k, v in zip(keys, r)}
    out["n"] = int(r[0])
    return out


# swe-curate stages that drop candidates before any test runs (failures rows)
SWE_PRE_STAGES = ("input", "crawl", "mine", "inject")


def _reasons(con, sql: str) -> dict[str, int]:
    """``{reason key: n}`` for a query yielding one reason per row (key = text before the first colon)."""
    rows = con.execute(f"SELECT split_part(coalesce(r, '-'), ':', 1) AS k, count(*) FROM ({sql}) t(r) "
                       "GROUP BY 1 ORDER BY 2 DESC, 1").fetchall()
    return {k: int(n) for k, n in rows}


def swe_funnel(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """The swe-curate funnel, one dict per stage: rows in, rows kept, and the drop reasons (reason keys with
    counts). Candidates rejected before validation (bad input rows, PRs, mined commits, sdists that could not
    be set up) come from ``failures``; validation and the gold check from ``swe_validations`` (a gold-unresolved
    instance is a validation row with reason ``gold_unresolved``); trajectories and their splits from
    ``swe_trajectories``: the hard filters' reasons (split none), then the strict SFT checks' reasons of the
    rows kept but not SFT (``rl`` and ``semi``: a row lists every check it fails), then the ``semi`` rows
    among those (:func:`crucible.pipelines.swe.filters.semi_resolved`)."""
    pre_stages = ", ".join(f"'{x}'" for x in SWE_PRE_STAGES)
    pre = _reasons(con, f"SELECT stage || '/' || reason FROM failures WHERE pipeline = 'swe-curate' "
                        f"AND stage IN ({pre_stages})")
    n_val = _one(con, "SELECT count(*) FROM swe_validations") or 0
    gold_bad = _one(con, "SELECT count(*) FROM swe_validations WHERE reason LIKE 'gold_unresolved%'") or 0
    val_drops = _reasons(con, "SELECT reason FROM swe_validations WHERE status <> 'valid' "
                              "AND coalesce(reason, '') NOT LIKE 'gold_unresolved%'")
    n_valid_labels = n_val - sum(val_drops.values())
    n_inst = _one(con, "SELECT count(*) FROM swe_instances") or 0
    t = "swe_trajectories"
    # reference rows (the gold policy's replays: a plumbing check, in no export by default) are no funnel row
    n_traj = _one(con, f"SELECT count(*) FROM {t} WHERE coalesce(split, '') <> 'reference'") or 0
    kept = f"{t} WHERE split IS NOT NULL AND split NOT IN ('none', 'reference')"
    # a hard filter's reasons (split none) and the strict SFT checks' reasons (rows kept for RL, semi or not)
    traj_drops = _reasons(con, f"SELECT unnest(drop_reasons) FROM {t} WHERE coalesce(split, 'none') = 'none'")
    sft_drops = _reasons(con, f"SELECT unnest(drop_reasons) FROM {kept} AND split NOT LIKE '%sft%'")
    n_kept = _one(con, f"SELECT count(*) FROM {kept}") or 0
    n_sft = _one(con, f"SELECT count(*) FROM {t} WHERE split LIKE '%sft%'") or 0
    n_semi = _one(con, f"SELECT count(*) FROM {t} WHERE split = 'semi'") or 0
    return [
        {"stage": "candidates reach the tests", "in": sum(pre.values()) + n_val, "kept": n_val, "drops": pre},
        {"stage": "validated (F2P/P2P)", "in": n_val, "kept": n_valid_labels, "drops": val_drops},
        {"stage": "gold patch resolves", "in": n_valid_labels, "kept": n_valid_labels - gold_bad,
         "drops": {"gold_unresolved": gold_bad} if gold_bad else {}},
        {"stage": "instances written", "in": n_valid_labels - gold_bad, "kept": n_inst,
         "drops": {"not_written (see failures)": n_valid_labels - gold_bad - n_inst}
         if n_inst < n_valid_labels - gold_bad else {}},
        {"stage": "trajectories pass filters", "in": n_traj, "kept": n_kept, "drops": traj_drops},
        {"stage": "SFT (strict checks)", "in": n_kept, "kept": n_sft, "drops": sft_drops},
        {"stage": "not SFT: semi_resolved (RL / turn-masked SFT)", "in": n_kept - n_sft, "kept": n_semi,
         "drops": {"rl (not close)": n_kept - n_sft - n_semi} if n_kept - n_sft - n_semi else {}},
    ]


def swe_reference(con: duckdb.DuckDBPyConnection) -> dict:
    """The reference split of ``swe_trajectories`` (the gold policy's replays: they check rollouts and grading
    and train nothing unless exported with ``--include-reference``): rows and the policies they come from."""
    t = "swe_trajectories"
    return {"rows": _one(con, f"SELECT count(*) FROM {t} WHERE split = 'reference'") or 0,
            "policies": ",".join(r[0] for r in _pairs(
                con, f"SELECT DISTINCT policy FROM {t} WHERE split = 'reference' ORDER BY 1")) or "-"}


def swe_quality(con: duckdb.DuckDBPyConnection) -> dict:
    """The instances' quality labels (instances per code; ``none`` for those with no label, ``not assessed`` for
    rows written before the columns) and difficulty (bands, score distribution): pipelines/swe/quality.py."""
    t = "swe_instances"
    labels = _pairs(con, f"SELECT l.code, count(DISTINCT instance_id) FROM (SELECT instance_id, unnest(quality_labels) "
                         f"AS l FROM {t}) GROUP BY 1 ORDER BY 1")
    clean = _one(con, f"SELECT count(*) FROM {t} WHERE quality_labels IS NOT NULL AND len(quality_labels) = 0") or 0
    unassessed = _one(con, f"SELECT count(*) FROM {t} WHERE quality_labels IS NULL OR difficulty IS NULL") or 0
    return {"quality_labels": labels + [["none", clean]] + ([["not assessed", unassessed]] if unassessed else []),
            "difficulty_bands": _pairs(con, f"SELECT coalesce(difficulty.band, 'not assessed'), count(*) FROM {t} "
                                            "GROUP BY 1 ORDER BY min(coalesce(difficulty.score, 2))"),
            "difficulty_score": _dist(con, t, "difficulty.score")}


def compute_stats(con: duckdb.DuckDBPyConnection) -> dict:
    s: dict[str, Any] = {"counts": {t: _one(con, f"SELECT count(*) FROM {t}") for t in TABLES}}
    if s["counts"]["questions"]:
        s["questions"] = {
            "by_hops": _pairs(con, "SELECT hops, count(*) FROM questions GROUP BY 1 ORDER BY 1"),
            "by_source": _pairs(con, "SELECT source, count(*) FROM questions GROUP BY 1 ORDER BY 2 DESC"),
            "hardening_ops": _dist(con, "questions", "len(lineage)"),
            "closed_book_solved_rate": _one(con, "SELECT avg(closed_book_solved::int) FROM questions"),
            "by_difficulty": _pairs(con, "SELECT coalesce(difficulty,'?'), count(*) FROM questions GROUP BY 1 ORDER BY 2 DESC"),
        }
    if s["counts"]["browse_trajectories"]:
        t = "browse_trajectories"
        s[t] = {
            "questions": _one(con, f"SELECT count(DISTINCT question_id) FROM {t}"),
            "verdicts": _pairs(con, f"SELECT coalesce(verdict,'none'), count(*) FROM {t} GROUP BY 1 ORDER BY 2 DESC"),
            "pass_rate": _one(con, f"SELECT avg((verdict = 'correct')::int) FROM {t}"),
            "reward_total": _dist(con, t, "reward_total"),
            "n_turns": _dist(con, t, "n_turns"),
            "n_tool_calls": _dist(con, t, "n_tool_calls"),
            "tokens": _dist(con, t, "n_prompt_tokens + n_completion_tokens"),
            "termination": _pairs(con, f"SELECT termination, count(*) FROM {t} GROUP BY 1 ORDER BY 2 DESC"),
            "split": _pairs(con, f"SELECT coalesce(split,'none'), count(*) FROM {t} GROUP BY 1 ORDER BY 2 DESC"),
            "drop_reasons": _pairs(con, f"SELECT r, count(*) FROM (SELECT unnest(drop_reasons) AS r FROM {t}) "
                                        "GROUP BY 1 ORDER BY 2 DESC"),
        }
    if s["counts"]["swe_instances"]:
        s["swe_instances"] = {
            "by_source": _pairs(con, "SELECT source, count(*) FROM swe_instances GROUP BY 1 ORDER BY 2 DESC"),
            "repos": _one(con, "SELECT count(DISTINCT repo) FROM swe_instances"),
            "fail_to_pass": _dist(con, "swe_instances", "len(FAIL_TO_PASS)"), **swe_quality(con),
        }
    if s["counts"]["swe_validations"]:
        s["swe_validations"] = {
            "status": _pairs(con, "SELECT status, count(*) FROM swe_validations GROUP BY 1 ORDER BY 2 DESC"),
            "reasons": _pairs(con, "SELECT coalesce(reason,'-'), count(*) FROM swe_validations "
                                   "WHERE status <> 'valid' GROUP BY 1 ORDER BY 2 DESC LIMIT 20"),
            "labels_match_rate": _one(con, "SELECT avg(labels_match::int) FROM swe_validations"),
            # of rows with given labels: those whose given labels grade as given in the env Crucible built
            "labels_hold_rate": _one(con, "SELECT avg(labels_hold::int) FROM swe_validations"),
            "labels_not_held": _one(con, "SELECT sum(len(labels_not_held)) FROM swe_validations"),
            # label-guided rungs tried (crucible.sandbox.ladder.label_rung): kept (more given labels hold) or not
            "label_rungs": _pairs(con, "SELECT json_extract_string(meta, '$.label_rung.kind') || ' kept=' || "
                                       "json_extract_string(meta, '$.label_rung.kept'), count(*) FROM swe_validations "
                                       "WHERE json_extract(meta, '$.label_rung') IS NOT NULL GROUP BY 1 ORDER BY 1"),
            "flaky_tests": _one(con, "SELECT sum(len(flaky_tests)) FROM swe_validations"),
        }
    if s["counts"]["swe_trajectories"]:
        t = "swe_trajectories"
        s[t] = {
            "resolved_by_policy": _pairs(con, f"SELECT policy, count(*), avg(resolved::int) FROM {t} GROUP BY 1 ORDER BY 1"),
            "exit_status": _pairs(con, f"SELECT exit_status, count(*) FROM {t} GROUP BY 1 ORDER BY 2 DESC"),
            "reward": _dist(con, t, "reward"),
            "n_turns": _dist(con, t, "n_turns"),
            "split": _pairs(con, f"SELECT coalesce(split,'none'), count(*) FROM {t} GROUP BY 1 ORDER BY 2 DESC"),
            "reference": swe_reference(con),
            "drop_reasons": _pairs(con, f"SELECT r, count(*) FROM (SELECT unnest(drop_reasons) AS r FROM {t}) "
                                        "GROUP BY 1 ORDER BY 2 DESC"),
        }
    if s["counts"]["swe_validations"] or s["counts"]["swe_trajectories"]:
        s["swe_funnel"] = swe_funnel(con)
    if s["counts"].get("sandbox_surveys"):
        t = "sandbox_surveys"
        stages = dict(_pairs(con, f"SELECT stage, count(*) FROM {t} GROUP BY 1"))
        order = ("attempted", "installed", "tests_collected", "mostly_passing")
        s[t] = {
            "funnel": [[st, sum(stages.get(o, 0) for o in order[i:])] for i, st in enumerate(order)],
            "rungs": _pairs(con, f"SELECT r.kind, count(*) FROM (SELECT unnest(from_json(rungs, '[\"json\"]')) "
                                 f"->> 'kind' AS kind FROM {t}) AS r GROUP BY 1 ORDER BY 2 DESC"),
            "stops": _pairs(con, f"SELECT stage || ': ' || coalesce(stop_rung, 'no rung'), count(*) FROM {t} "
                                 "WHERE stage <> 'mostly_passing' GROUP BY 1 ORDER BY 2 DESC"),
            "seconds": _dist(con, t, "seconds"),
        }
    if s["counts"]["failures"]:
        s["failures"] = {
            "by_kind": _pairs(con, "SELECT kind, count(*) FROM failures GROUP BY 1 ORDER BY 2 DESC"),
            "by_reason": _pairs(con, "SELECT pipeline, stage, reason, count(*) FROM failures "
                                     "GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 25"),
        }
    return s


def llm_pool_stats(out_dir: str) -> dict:
    """``{"llm_endpoints": {url: ...}}`` summed over the stats files LLM clients wrote when they closed
    (``<out_dir>/stats/llm_pool/*.json``, pipelines/llm/metrics.py): requests, done, failed, times taken out,
    the mean and max queue wait and the mean busy share over the clients; ``{}`` when there is none."""

    eps: dict[str, dict] = {}
    for path in fsio.glob(fsio.join(out_dir, "stats", "llm_pool", "*.json")):
        try:
            rec = json.loads(fsio.read_bytes(path))
        except (OSError, ValueError):
            continue  # a file being replaced or torn: the next stats call reads it
        for url, e in rec.get("endpoints", {}).items():
            a = eps.setdefault(url, {"clients": 0, "requests": 0, "done": 0, "failed": 0, "taken_out": 0,
                                     "queue_wait_s_sum": 0.0, "queue_wait_s_max": 0.0, "busy_share_sum": 0.0})
            a["clients"] += 1
            for k in ("requests", "done", "failed", "taken_out"):
                a[k] += int(e[k])
            a["queue_wait_s_sum"] += float(e["queue_wait_s_mean"]) * int(e["requests"])
            a["queue_wait_s_max"] = max(a["queue_wait_s_max"], float(e["queue_wait_s_max"]))
            a["busy_share_sum"] += float(e["busy_share"])
    for a in eps.values():
        a["queue_wait_s_mean"] = round(a.pop("queue_wait_s_sum") / a["requests"], 4) if a["requests"] else 0.0
        a["busy_share_mean"] = round(a.pop("busy_share_sum") / a["clients"], 4)
    return {"llm_endpoints": eps} if eps else {}


def engine_pool_stats(out_dir: str) -> dict:
    """``{"engines": {name: ...}}`` summed over the stats files engine pools wrote (``<out_dir>/stats/
    engine_pool/*.json``, sandbox/engines.py; one per pool, rewritten as it goes): done, failed, queued,
    the mean and max queue wait, the mean busy share over the pools and how many drained it; ``{}`` when none."""

    out: dict[str, dict] = {}
    for path in fsio.glob(fsio.join(out_dir, "stats", "engine_pool", "*.json")):
        try:
            rec = json.loads(fsio.read_bytes(path))
        except (OSError, ValueError):
            continue  # a file being replaced or torn: the next stats call reads it
        for name, e in rec.get("engines", {}).items():
            a = out.setdefault(name, {"pools": 0, "capacity": int(e["capacity"]), "done": 0, "failed": 0,
                                      "queued": 0, "queue_wait_s_sum": 0.0, "queue_wait_s_max": 0.0,
                                      "busy_share_sum": 0.0, "drained": 0})
            a["pools"] += 1
            for k in ("done", "failed", "queued"):
                a[k] += int(e[k])
            a["queue_wait_s_sum"] += float(e["queue_wait_s_mean"]) * int(e["queued"])
            a["queue_wait_s_max"] = max(a["queue_wait_s_max"], float(e["queue_wait_s_max"]))
            a["busy_share_sum"] += float(e["busy_share"])
            a["drained"] += e["drained"] is not None
    for a in out.values():
        a["queue_wait_s_mean"] = round(a.pop("queue_wait_s_sum") / a["queued"], 4) if a["queued"] else 0.0
        a["busy_share_mean"] = round(a.pop("busy_share_sum") / a["pools"], 4)
    return {"engines": out} if out else {}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def format_stats(s: dict) -> str:
    lines = ["tables:"]
    for t, n in s["counts"].items():
        lines.append(f"  {t:<22} {n:>8}")
    for section, body in s.items():
        if section == "counts":
            continue
        if section == "swe_funnel":
            lines.append("swe_funnel:                       in     kept  drop reasons")
            for st in body:
                drops = ", ".join(f"{k}={v}" for k, v in st["drops"].items()) or "-"
                lines.append(f"  {st['stage']:<30} {st['in']:>6} {st['kept']:>8}  {drops}")
            continue
        if isinstance(body, list):  # unreadable_shards: file names
            lines.append(f"{section}: {', '.join(map(str, body))}")
            continue
        lines.append(f"{section}:")
        for key, val in body.items():
            if val is None:
                continue
            if isinstance(val, dict):
                lines.append(f"  {key:<22} " + "  ".join(f"{k}={_fmt(v)}" for k, v in val.items()))
            elif isinstance(val, list):
                if not val:
                    continue
                lines.append(f"  {key}:")
                for row in val:
                    lines.append("    " + "  ".join(_fmt(x) for x in row))
            else:
                lines.append(f"  {key:<22} {_fmt(val)}")
    return "\n".join(lines)
