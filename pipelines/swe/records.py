"""The SWE wing's rows, each built in one place from its schema (``schemas/swe_*.json``): the typed instance
record (:class:`SWEInstance`), the swe_validations row (:func:`validation_row`) and the failure rows of each
stage; stages, failure kinds and validation statuses are enums."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from crucible.pipelines.store.commit import failure_row, utc_now


class Stage(str, Enum):
    """Where in the SWE pipelines a failure row was written (``failures.stage``)."""

    READ_INPUT = "read_input"
    CRAWL = "crawl"
    MINE = "mine"
    INJECT = "inject"  # an sdist that could not be set up for bug injection
    VALIDATE = "validate"  # an instance (given, crawled, mined or injected) that did not validate
    STATEMENT = "statement"
    GOLD_CHECK = "gold_check"
    FILTER_TRAJECTORY = "filter_trajectory"


class FailureKind(str, Enum):
    """``failures.kind`` (schemas/failure.json)."""

    SCHEMA = "schema"
    ERROR = "error"
    FILTERED = "filtered"
    INFRA = "infra"


class Status(str, Enum):
    """``swe_validations.status``."""

    VALID = "valid"
    INVALID = "invalid"
    ERROR = "error"


class Step(str, Enum):
    """``swe_validations.failed_at``: the validation step that decided a row that is not valid."""

    SETUP = "setup"  # checkout or env build
    REFERENCE = "reference"  # the env's clean reference run
    PATCH_APPLY = "patch_apply"
    RUN = "run"  # a before/after (or bug) run
    LABELS = "labels"  # ran, but no usable F2P
    GOLD_CHECK = "gold_check"  # the reference patch does not resolve through the rollout harness
    STATEMENT = "statement"  # no problem statement reproduces the failure (crucible.pipelines.swe.statement_repro)


@dataclass(frozen=True)
class SWEInstance(Mapping):
    """One swe_instances record (fields = schemas/swe_instance.json, ``run_id`` added when written). A
    read-only mapping too, so functions over rows (``inst["repo"]``) take it as is."""

    instance_id: str
    repo: str
    base_commit: str
    patch: str
    test_patch: str
    problem_statement: str = ""
    hints_text: str | None = None
    created_at: str | None = None
    version: str | None = None
    environment_setup_commit: str | None = None
    FAIL_TO_PASS: list[str] | None = None  # None: not given (to be computed by validation)
    PASS_TO_PASS: list[str] | None = None
    source: str = "swebench"
    source_ref: str | None = None
    env_image: str | None = None
    recipe: dict | None = None
    env_network: str | None = None
    id_style: str | None = None
    statement_origin: str | None = None
    statement_prompt_version: str | None = None
    bug_operator: str | None = None
    meta: dict | None = None
    quality_labels: list[dict] | None = None  # crucible.pipelines.swe.quality.finished sets both before row()
    difficulty: dict | None = None
    statement_repro: dict | None = None  # crucible.pipelines.swe.statement_repro: the statement's reproduction, before/after

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_row(cls, row: Mapping, **changes) -> SWEInstance:
        """From a SWE-bench-format row or a stored swe_instances row; keys outside the schema are an error."""
        data = {**row, **changes}
        data.pop("run_id", None)
        extra = sorted(set(data) - set(cls.fields()))
        if extra:
            raise ValueError(f"swe instance {data.get('instance_id')!r}: unknown fields {extra} "
                             f"(schemas/swe_instance.json has {', '.join(cls.fields())})")
        for k in ("FAIL_TO_PASS", "PASS_TO_PASS"):
            if data.get(k) is not None:
                data[k] = list(data[k])
        return cls(**data)

    def replace(self, **changes) -> SWEInstance:
        return SWEInstance.from_row(self.to_dict(), **changes)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.fields()}

    def row(self, run_id: str) -> dict:
        """The swe_instances row (labels must be known by now)."""
        if self.FAIL_TO_PASS is None or self.PASS_TO_PASS is None:
            raise ValueError(f"swe instance {self.instance_id}: no labels to store (validate it first)")
        return {**self.to_dict(), "FAIL_TO_PASS": list(self.FAIL_TO_PASS), "PASS_TO_PASS": list(self.PASS_TO_PASS),
                "problem_statement": self.problem_statement or "", "run_id": run_id}

    # Mapping
    def __getitem__(self, key: str) -> Any:
        if key not in self.fields():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.fields())

    def __len__(self) -> int:
        return len(self.fields())


def validation_row(instance_id: str, run_id: str, **fields) -> dict:
    """A swe_validations row: every schema column, unset ones empty (a row that is not valid yet)."""
    row = {"instance_id": instance_id, "status": Status.ERROR.value, "reason": None, "failure_kind": None,
           "failed_at": None, "fail_to_pass": [], "pass_to_pass": [], "flaky_tests": [], "network_tests": [],
           "labels_match": None, "labels_hold": None,
           "labels_not_held": [], "env_image": None, "tests_before": None, "tests_after": None, "n_runs": 0,
           "duration_s": None, "test_duration_s": None, "meta": {}, "run_id": run_id, "created_at": utc_now()}
    unknown = set(fields) - set(row)
    if unknown:
        raise ValueError(f"swe_validations has no column {sorted(unknown)}")
    row.update(fields)
    return row


def not_valid(row: dict, status: Status, kind: FailureKind, step: Step, reason: str) -> dict:
    """Mark a validation row as not valid, with why (kind, step, reason) as data."""
    row.update(status=status.value, failure_kind=kind.value, failed_at=step.value, reason=reason[:2000])
    return row


def failure(pipeline: str, stage: Stage, kind: FailureKind, reason: str, run_id: str, item_key: str, *,
            table: str = "swe_instances", **kw) -> dict:
    return failure_row(pipeline=pipeline, stage=stage.value, kind=kind.value, reason=reason, run_id=run_id,
                       table=table, item_key=item_key, **kw)


def validation_failure(row: Mapping, pipeline: str, run_id: str) -> dict:
    """The failures row of a validation row that is not valid (its kind is the row's, never parsed back)."""
    return failure(pipeline, Stage.VALIDATE, FailureKind(row["failure_kind"]), row["reason"] or row["status"],
                   run_id, row["instance_id"])


def problem_failure(prob, run_id: str, pipeline: str) -> dict:
    """The failures row of a bad input row (:class:`crucible.pipelines.swe.sources.InputProblem`)."""
    return failure(pipeline, Stage.READ_INPUT, FailureKind.SCHEMA, prob.message(), run_id,
                   prob.instance_id or f"{prob.file}:{prob.line}", path=prob.field, payload=prob.payload,
                   discriminator=(prob.file, prob.line))
