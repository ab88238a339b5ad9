"""One validation path: ``crucible swe validate`` and ``make swe-curate`` write identical swe_validations rows
for the same input (both run :class:`crucible.pipelines.swe.transforms.ValidateEnvs`), every row they write matches its
schema as written, and an instance validated on the run's internal network carries that env (image, recipe,
network) into swe_instances."""

import json
import re

import pytest

from tests.integration.swe_helpers import *  # noqa: F403 - session fixtures

pytestmark = [pytest.mark.integration, pytest.mark.docker]
VOLATILE = {"created_at", "run_id", "duration_s", "test_duration_s"}  # clocks and run ids; the rest must match


def stored(out, table: str) -> list[dict]:
    from crucible.pipelines.store import catalog

    cols, rows = catalog.query(str(out), f"select * from {table} order by 1")
    return [dict(zip(cols, r)) for r in rows]


def comparable(row: dict) -> dict:
    meta = json.loads(row["meta"]) if isinstance(row["meta"], str) else dict(row["meta"] or {})
    meta.pop("pytest_s", None)  # pytest's own clock
    out = re.sub(r"\bin [0-9.]+s\b", "in <t>s", meta.get("failing_output") or "")  # pytest's clock
    out = re.sub(r"crucible-junit-[0-9a-f]+", "crucible-junit-<random>", out)  # per run
    meta["failing_output"] = re.sub(r"\b0x[0-9a-f]+\b", "0x<addr>", out)  # object addresses in assert output
    if meta.get("reference"):  # the second run finds the first one's reference run in the shared cache
        meta["reference"] = {k: v for k, v in meta["reference"].items() if k != "cached"}
    return {**{k: v for k, v in row.items() if k not in VOLATILE}, "meta": meta}


def test_cli_and_curate_write_identical_validation_rows(mirror_root, toolz_instance, tmp_path, capsys):
    from crucible.pipelines.cli import main
    from crucible.pipelines.config import load_config
    from crucible.pipelines.swe.mirror import mirror_template
    from crucible.pipelines.swe.pipeline import run

    noop_fix = toolz_instance["patch"].replace("+    return itertools.islice(seq, 0, None, n)\n",
                                               "+    return itertools.islice(seq, 1, None, n)  # noqa\n")
    noop = dict(toolz_instance, instance_id="pytoolz__toolz-noop", patch=noop_fix, FAIL_TO_PASS=None,
                PASS_TO_PASS=None)
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in (toolz_instance, noop)))
    common = [f"sandbox.repo_url_template={mirror_template(mirror_root)}", f"swe.workdir={tmp_path / 'work'}"]
    cli_out, curate_out = tmp_path / "cli", tmp_path / "curate"
    assert main(["swe", "validate", "--instances", str(inp), "--out", str(cli_out),
                 *[a for c in common for a in ("--set", c)]]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["network"] == "internal" and summary["instances"] == 2
    run(load_config("swe", [*common, f"swe.instances_file={inp}", "swe.rollouts.policies=[]",
                            "swe.statements.use_llm=false", f"run.out_dir={curate_out}"]))
    a, b = stored(cli_out, "swe_validations"), stored(curate_out, "swe_validations")
    assert [r["instance_id"] for r in a] == ["pytoolz__toolz-noop", "pytoolz__toolz-take_nth"]
    for x, y in zip(map(comparable, a), map(comparable, b), strict=True):
        diff = {k: (x[k], y[k]) for k in x if x[k] != y[k]}
        diff.update({f"meta.{k}": (x["meta"].get(k), y["meta"].get(k)) for k in set(x["meta"]) | set(y["meta"])
                     if x["meta"].get(k) != y["meta"].get(k)})
        diff.pop("meta", None)
        assert diff == {}
    by = {r["instance_id"]: r for r in a}
    assert by["pytoolz__toolz-take_nth"]["status"] == "valid" and by["pytoolz__toolz-take_nth"]["labels_match"]
    assert (by["pytoolz__toolz-noop"]["failure_kind"], by["pytoolz__toolz-noop"]["failed_at"]) == ("filtered", "labels")
    for out in (cli_out, curate_out):
        (inst,) = stored(out, "swe_instances")
        assert inst["env_network"] == "internal" and inst["env_image"].startswith("crucible/env-toolz")
        assert json.loads(inst["recipe"])["test_cmd"] and inst["id_style"] == "swebench"
    # the store checks every row against its schema and turns a misfit into a "schema" failure: none here
    fails = [(f["stage"], f["kind"], f["item_key"]) for f in stored(cli_out, "failures")]
    assert fails == [("validate", "filtered", "pytoolz__toolz-noop")]
    assert not [f for f in stored(curate_out, "failures") if f["kind"] == "schema"]


def test_connect_timeout_fixture_reproduces_its_labels_only_on_the_internal_network(swe_ctx, toolz_checkout,
                                                                                     mirror_root):
    from dataclasses import replace

    from crucible.pipelines.swe.envs import run_network
    from crucible.pipelines.swe.mirror import fixture_instances
    from crucible.pipelines.swe.validate import validate_instance
    from tests.integration.swe_helpers import DATA

    spec = json.loads((DATA / "toolz_connect_timeout.json").read_text())
    inst = fixture_instances(spec, toolz_checkout, mirror_root, "pytoolz__toolz-connect_timeout")
    with run_network(swe_ctx.client, "internal", "it-connect-timeout") as net:
        internal = validate_instance(replace(swe_ctx, network=net), inst, "it")
    offline = validate_instance(replace(swe_ctx, network="none"), inst, "it")
    assert internal["status"] == "valid" and internal["labels_match"] is True, internal["reason"]
    assert internal["meta"]["network"] == "internal"
    # under --network none the connect fails at once: the test fails after the fix too, labels differ
    assert offline["labels_match"] is False and offline["meta"]["network"] == "none"
    assert offline["fail_to_pass"] == ["toolz/tests/test_regress_net.py::test_take_nth_step_one"]
