"""The SWE wing's rows come from one builder each, match their schemas as built, and carry stages, failure
kinds and statuses as enums that are the schemas' own values."""

import pytest

from crucible.pipelines.store.records import record_type
from crucible.pipelines.swe.envs import TaskEnv
from crucible.pipelines.swe.records import (
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

    from crucible.pipelines.commands.swe_cmd import flag_overrides
    from crucible.pipelines.config import load_config

    args = SimpleNamespace(repo_url_template="file:///m/{owner}/{name}.git", reruns=3, id_style="junit",
                           label_network="internal", recipes="inferred", network="none", no_reference=True)
    cfg = load_config("swe", flag_overrides(args))
    assert (cfg.sandbox.repo_url_template, cfg.swe.reruns, cfg.swe.id_style, cfg.sandbox.label_network,
            cfg.swe.recipes, cfg.swe.network, cfg.swe.reference_run) == (
        "file:///m/{owner}/{name}.git", 3, "junit", "internal", "inferred", "none", False)
    none = SimpleNamespace(repo_url_template=None, reruns=None, id_style=None, label_network=None, recipes=None,
                           network=None, no_reference=False)
    assert flag_overrides(none) == [] and load_config("swe", []).swe.network == "internal"


def test_grading_uses_the_env_carried_from_validation_and_its_network(tmp_path, monkeypatch):
    import shutil

    from crucible.pipelines.swe import envs
    from crucible.pipelines.swe.envs import ValidateContext
    from crucible.pipelines.swe.grade import grade_patch
    from crucible.sandbox.api import Settings
    from crucible.sandbox.testrun import TestRun

    tree = tmp_path / "tree"
    (tree / "pkg").mkdir(parents=True)
    (tree / "tests").mkdir()
    (tree / "pkg" / "x.py").write_text("a\n")
    (tree / "tests" / "test_x.py").write_text("def test_a():\n    pass\n")
    monkeypatch.setattr("crucible.pipelines.swe.grade.checkout_tree", lambda ctx, repo, commit, dest: shutil.copytree(tree, dest))

    def rederived(*a, **kw):
        raise AssertionError("the env was planned again")

    monkeypatch.setattr(envs, "decide_env", rederived)
    seen = {}

    def fake_run(client, image, repo_dir, recipe, *, network, **kw):
        seen.update(image=image, network=network, test_cmd=recipe["test_cmd"])
        return TestRun(status="infra", kind="daemon", reason="stop here")

    monkeypatch.setattr("crucible.pipelines.swe.grade.run_tests", fake_run)
    env = TaskEnv("crucible/env-x:py3.11-carried", {"test_cmd": "python -m pytest -x", "test_paths": ["tests"]},
                  "internal")
    inst = SWEInstance(instance_id="o__r-1", repo="o/r", base_commit="b", patch="", test_patch="",
                       FAIL_TO_PASS=["tests/test_x.py::test_a"], PASS_TO_PASS=[], **env.columns())
    ctx = ValidateContext(client=None, settings=Settings(), workdir=tmp_path, network="crucible-internal-run1")
    patch = "diff --git a/pkg/x.py b/pkg/x.py\n--- a/pkg/x.py\n+++ b/pkg/x.py\n@@ -1 +1 @@\n-a\n+b\n"
    g = grade_patch(ctx, inst, patch)
    assert g["grade"] == "infra"
    assert seen == {"image": env.image, "network": "crucible-internal-run1", "test_cmd": "python -m pytest -x"}
    # an instance labelled under none is graded under none, whatever the run's network
    seen.clear()
    grade_patch(ctx, inst.replace(env_network="none"), patch)
    assert seen["network"] == "none"
    # a row never validated here (no carried env) is the only case that plans one
    with pytest.raises(AssertionError, match="planned again"):
        envs.task_env(ctx, inst.replace(env_image=None), tree, tmp_path / "env")
