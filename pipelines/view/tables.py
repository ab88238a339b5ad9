"""What the viewer shows of each table: list columns, filterable columns, default sort, title column.

Filter and sort columns are declared here and checked against the table's record type (a column that
is not in ``schemas/`` fails at import), so no request can name a column the viewer did not choose.
"""

from __future__ import annotations

from dataclasses import dataclass

from crucible.pipelines.store.catalog import column_types
from crucible.pipelines.store.records import TABLES

SCALAR_TYPES = ("VARCHAR", "BIGINT", "DOUBLE", "BOOLEAN")  # sortable; lists and structs are not


@dataclass(frozen=True)
class TableView:
    """What a list of one table shows: columns, filterable columns (equality), default sort."""

    table: str
    columns: tuple[str, ...]
    filters: tuple[str, ...]
    sort: str
    title_col: str


VIEWS: dict[str, TableView] = {
    "questions": TableView("questions", ("question_id", "question", "answer", "answer_type", "hops", "difficulty",
                                         "pass_rate", "split"),
                           ("split", "difficulty", "hops", "answer_type", "pattern_hash"), "question_id", "question"),
    "browse_trajectories": TableView(
        "browse_trajectories", ("traj_id", "question_id", "extracted_answer", "verdict", "verdict_source", "split",
                                "termination", "n_tool_calls", "reward_total"),
        ("verdict", "verdict_source", "split", "termination", "question_id", "n_tool_calls"), "traj_id", "prediction"),
    "swe_instances": TableView("swe_instances", ("instance_id", "repo", "source", "bug_operator", "statement_origin"),
                               ("repo", "source", "bug_operator", "statement_origin"), "instance_id",
                               "problem_statement"),
    "swe_validations": TableView("swe_validations", ("instance_id", "status", "reason", "labels_match", "labels_hold",
                                                     "n_runs", "duration_s"),
                                 ("status", "labels_match", "labels_hold"), "instance_id", "reason"),
    "swe_trajectories": TableView("swe_trajectories", ("traj_id", "instance_id", "policy", "resolved", "grade_reason",
                                                       "exit_status", "reward", "split"),
                                  ("resolved", "split", "policy", "instance_id", "exit_status"), "traj_id",
                                  "grade_reason"),
    "sandbox_surveys": TableView("sandbox_surveys", ("survey_id", "source", "stage", "python", "as_of",
                                                     "tests_collected", "passed", "failed", "stop_rung", "seconds"),
                                 ("stage", "python", "stop_rung"), "source", "stop_line"),
    "swe_grades": TableView("swe_grades", ("grade_id", "instance_id", "model_name_or_path", "resolved", "grade",
                                           "f2p_passed", "f2p_failed", "p2p_failed"),
                            ("resolved", "grade", "model_name_or_path", "instance_id"), "instance_id", "reason"),
    "failures": TableView("failures", ("failure_id", "pipeline", "stage", "kind", "item_key", "reason"),
                          ("pipeline", "stage", "kind"), "created_at", "reason"),
}
assert set(VIEWS) == set(TABLES), "every table has a view"


def types(table: str) -> dict[str, str]:
    """column -> DuckDB type of ``table`` (from its record type)."""
    return dict(column_types(table))


def sortable(table: str) -> tuple[str, ...]:
    """The scalar columns of ``table``, in schema order (sorting by a list of structs is refused)."""
    return tuple(c for c, t in column_types(table) if t in SCALAR_TYPES)


def has_reasons(table: str) -> bool:
    """Tables with a ``drop_reasons`` list: the ``reason=`` prefix filter applies to them."""
    return "drop_reasons" in types(table)


def _check() -> None:
    for name, v in VIEWS.items():
        cols = types(name)
        for c in (*v.columns, *v.filters, v.sort):
            if c not in cols:
                raise AssertionError(f"view of {name}: {c} is not a column of its record type")
        for f in v.filters:
            if cols[f] not in SCALAR_TYPES:
                raise AssertionError(f"view of {name}: filter {f} is not a scalar column ({cols[f]})")


_check()
