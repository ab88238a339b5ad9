"""Headline numbers per table, computed with SQL over the catalog views."""

from __future__ import annotations

from typing import Any

import duckdb

from pipelines.store.records import TABLES


def _one(con, sql: str) -> Any:
    row = con.execute(sql).fetchone()
    return row[0] if row else None


def _pairs(con, sql: str) -> list[list]:
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
            "fail_to_pass": _dist(con, "swe_instances", "len(FAIL_TO_PASS)"),
        }
    if s["counts"]["swe_validations"]:
        s["swe_validations"] = {
            "status": _pairs(con, "SELECT status, count(*) FROM swe_validations GROUP BY 1 ORDER BY 2 DESC"),
            "reasons": _pairs(con, "SELECT coalesce(reason,'-'), count(*) FROM swe_validations "
                                   "WHERE status <> 'valid' GROUP BY 1 ORDER BY 2 DESC LIMIT 20"),
            "labels_match_rate": _one(con, "SELECT avg(labels_match::int) FROM swe_validations"),
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
            "drop_reasons": _pairs(con, f"SELECT r, count(*) FROM (SELECT unnest(drop_reasons) AS r FROM {t}) "
                                        "GROUP BY 1 ORDER BY 2 DESC"),
        }
    if s["counts"]["failures"]:
        s["failures"] = {
            "by_kind": _pairs(con, "SELECT kind, count(*) FROM failures GROUP BY 1 ORDER BY 2 DESC"),
            "by_reason": _pairs(con, "SELECT pipeline, stage, reason, count(*) FROM failures "
                                     "GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 25"),
        }
    return s


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
