"""The SWE wing's rows come from one builder each, match their schemas as built, and carry stages, failure
kinds and statuses as enums that are the schemas' own values."""

import pytest

from pipelines.store.records import record_type
from pipelines.swe.envs import TaskEnv
from pipelines.swe.records import (
    FailureKind,
    Stage,
    Status,
    Step,
    SWEInstance,
    failure,
    not_valid,
    validation_failure,
    validation_row,
)
from tests.support import samples


def enum_of(table: str, col: str) -> set:
    return {v for v in record_type(table).schema["properties"][col]["enum"] if v is not None}


def test_instance_record_has_exactly_the_schema_fields():
    props = set(record_type("swe_instances").schema["properties"])
    assert set(SWEInstance.fields()) | {"run_id"} == props


def test_enums_are_the_schema_values():
    assert {k.value for k in FailureKind} == enum_of("failures", "kind")
    assert {s.value for s in Status} == enum_of("swe_validations", "status")
    assert {s.value for s in Step} == enum_of("swe_validations", "failed_at")
    assert {k.value for k in FailureKind} - {"schema"} == enum_of("swe_validations", "failure_kind")


def test_instance_from_swebench_row_to_stored_row_matches_schema():
    env = TaskEnv("crucible/env-x:py3.11-abc", {"test_cmd": "python -m pytest", "python": "3.11"}, "internal")
    inst = SWEInstance.from_row(samples.swe_instance(3)).replace(**env.columns(), source="pr")
    row = inst.row("r1")
    assert record_type("swe_instances").errors(row) == []
    assert TaskEnv.of(row) == env  # the env travels with the row into rollouts and grading
    assert inst["repo"] == inst.repo and dict(inst)["instance_id"] == inst.instance_id  # a read-only mapping


def test_instance_rejects_unknown_fields_and_unlabelled_rows():
    with pytest.raises(ValueError, match="unknown fields \\['FAIL_TO_FAIL'\\]"):
        SWEInstance.from_row({**samples.swe_instance(1), "FAIL_TO_PASS": [], "FAIL_TO_FAIL": []})
    unlabelled = SWEInstance.from_row(samples.swe_instance(1), FAIL_TO_PASS=None)
    with pytest.raises(ValueError, match="no labels"):
        unlabelled.row("r")


def test_validation_rows_match_schema_in_every_outcome():
    rt = record_type("swe_validations")
    ok = validation_row("i-1", "r", status="valid", fail_to_pass=["t::a"], pass_to_pass=["t::b"], n_runs=2)
    assert rt.errors(ok) == []
    for status, kind, step in [(Status.ERROR, FailureKind.INFRA, Step.SETUP),
                               (Status.INVALID, FailureKind.FILTERED, Step.PATCH_APPLY),
                               (Status.ERROR, FailureKind.ERROR, Step.RUN),
                               (Status.INVALID, FailureKind.FILTERED, Step.LABELS)]:
        row = not_valid(validation_row("i-2", "r"), status, kind, step, "why " * 1000)
        assert rt.errors(row) == [] and len(row["reason"]) == 2000
        f = validation_failure(row, "swe-validate", "r")
        assert record_type("failures").errors(f) == []
        assert (f["stage"], f["kind"], f["item_key"]) == ("validate", kind.value, "i-2")
    with pytest.raises(ValueError, match="no column"):
        validation_row("i", "r", status_text="x")


def test_failure_rows_of_every_stage_match_schema():
    for stage in Stage:
        f = failure("swe-curate", stage, FailureKind.FILTERED, "x", "r", "k")
        assert record_type("failures").errors(f) == [] and f["stage"] == stage.value


def test_validate_flags_are_config_overrides_read_like_swe_curate():
    from types import SimpleNamespace

    from pipelines.commands.swe_cmd import flag_overrides
    from pipelines.config import load_config

    args = SimpleNamespace(repo_url_template="file:///m/{owner}/{name}.git", reruns=3, id_style="junit",
                           label_network="internal", recipes="inferred", network="none", no_reference=True)
    cfg = load_config("swe", flag_overrides(args))
    assert (cfg.sandbox.repo_url_template, cfg.swe.reruns, cfg.swe.id_style, cfg.sandbox.label_network,
            cfg.swe.recipes, cfg.swe.network, cfg.swe.reference_run) == (
        "file:///m/{owner}/{name}.git", 3, "junit", "internal", "inferred", "none", False)
    none = SimpleNamespace(repo_url_template=None, reruns=None, id_style=None, label_network=None, recipes=None,
                           network=None, no_reference=False)
    assert flag_overrides(none) == [] and load_config("swe", []).swe.network == "internal"
