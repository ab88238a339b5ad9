"""Fakes for the swe-curate graph without Docker (module-level: they pickle by reference, so they reach the
worker processes of FnApiRunner multi_processing and of an EXTERNAL worker pool), a SWE-bench rows file
writer, and a runner of the whole graph on a small config.

Fake rules: an instance whose number (the id's last ``-N``) is odd does not validate; an instance whose
``hints_text`` is ``sleep:S`` takes S seconds per validation step and per gold rollout (to fire the caps).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from crucible.pipelines.beam_options import pipeline_options
from crucible.pipelines.config import load_config
from crucible.pipelines.store.commit import ItemResult, ensure_layout, recover
from crucible.pipelines.swe.records import Status
from crucible.pipelines.swe.validate import Validation
from tests.support import samples

RUN = "portable-swe"
DIFF = "diff --git a/{f} b/{f}\n--- a/{f}\n+++ b/{f}\n@@ -1 +1 @@\n-x = {a}\n+x = {b}\n"


class FakeEnv:
    def columns(self) -> dict:
        return {"env_image": "crucible-env:fake", "recipe": {"install": ["pip install -e ."]},
                "env_network": "none", "id_style": "swebench"}


def swebench_row(i: int, repo: str = "demo/repo", sleep_s: float = 0, env_commit: str | None = None) -> dict:
    """A SWE-bench row; rows given one ``env_commit`` share an env group (validated together)."""
    return {"environment_setup_commit": env_commit,"repo": repo, "instance_id": f"{repo.replace('/', '__')}-{i}", "base_commit": f"{i + 1:040x}",
            "patch": DIFF.format(f="x.py", a=i, b=i + 1), "test_patch": DIFF.format(f="test_x.py", a=0, b=i),
            "problem_statement": f"x is wrong in case {i}", "hints_text": f"sleep:{sleep_s}" if sleep_s else "",
            "FAIL_TO_PASS": [f"test_x.py::test_{i}"], "PASS_TO_PASS": ["test_x.py::test_ok"]}


def write_rows(path: Path, rows: list[dict], bad_lines: tuple[str, ...] = ()) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "".join(b + "\n" for b in bad_lines))
    return str(path)


def _sleep_of(inst) -> float:
    hint = inst["hints_text"] or ""
    return float(hint.split(":", 1)[1]) if hint.startswith("sleep:") else 0.0


def fake_ctx(cfg, network):
    return SimpleNamespace(workdir=None, network=network)


def fake_validate_group(ctx, insts, run_id, *, reference):
    for inst in sorted(insts, key=lambda i: i["instance_id"]):
        time.sleep(_sleep_of(inst))
        n = int(inst["instance_id"].rsplit("-", 1)[1])
        row = dict(samples.swe_validation(n), instance_id=inst["instance_id"], run_id=run_id, meta=None,
                   fail_to_pass=list(inst["FAIL_TO_PASS"]), pass_to_pass=list(inst["PASS_TO_PASS"]))
        if n % 2:
            row.update(status=Status.INVALID.value, failure_kind="filtered", failed_at="labels",
                       reason="no FAIL_TO_PASS tests")
        else:
            row.update(status=Status.VALID.value, failure_kind=None, failed_at=None, reason=None)
        yield inst, Validation(row, FakeEnv() if n % 2 == 0 else None)


def fake_rollout(ctx, inst, policy, *, policy_name, sample_index=0, run_id="", **kw):
    time.sleep(_sleep_of(inst))
    return dict(samples.swe_trajectory(0), traj_id=f"{inst['instance_id']}-{policy_name}-{sample_index}",
                instance_id=inst["instance_id"], policy=policy_name, sample_index=sample_index, resolved=True,
                grade_reason=None, reward=1.0, run_id=run_id, meta={"dropped_files": []})


def fake_curate(ctx, inst, val, *, cfg, run_id, **kw):
    """The gold rollout through the real cap (:func:`crucible.pipelines.swe.curate.capped_rollout`), no statement."""
    from crucible.pipelines.swe.curate import capped_rollout

    res = ItemResult(inst["instance_id"])
    t = capped_rollout(res, ctx, inst, "gold", cap=float(cfg["swe"]["rollouts"]["rollout_timeout_s"]),
                       policy_name="gold", run_id=run_id, rollout_fn=fake_rollout)
    if t is None:
        return res
    res.add("swe_trajectories", dict(t, split="sft", drop_reasons=[]))
    return res.add("swe_validations", val).add("swe_instances", inst.row(run_id))


def hooks():
    from crucible.pipelines.swe.transforms import Hooks

    return Hooks(ctx=fake_ctx, validate_group=fake_validate_group, curate=fake_curate)


def small_config(out_dir: str, instances_file: str, *overrides: str):
    return load_config("swe", [f"run.out_dir={out_dir}", f"run.run_id={RUN}", f"swe.instances_file={instances_file}",
                               "swe.statements.use_llm=false", "swe.rollouts.policies=[gold]", *overrides])


def run_graph(cfg, beam_args: list[str] | None = None, runner: dict | None = None) -> None:
    """The whole swe-curate graph (:func:`crucible.pipelines.swe.graph.build`) with the fakes, then the catalog."""
    from crucible.pipelines.store.catalog import refresh_catalog
    from crucible.pipelines.swe.graph import PIPELINE, build

    cfgd = cfg.to_dict()
    opts = pipeline_options({**cfgd["run"], **(runner or {}), "beam_args": beam_args or []})
    FileSystems.set_options(opts)  # as swe run() does: the driver's store calls read the run's --s3_* flags
    ensure_layout(cfgd["run"]["out_dir"])
    recover(cfgd["run"]["out_dir"], PIPELINE)
    with beam.Pipeline(options=opts) as p:
        build(p, cfgd, RUN, "none", None, hooks())
    refresh_catalog(cfgd["run"]["out_dir"], cfgd["store"]["catalog"])


def raise_once(item, marker: str, at_key: str):
    """Pass ``item`` through; the first time ``at_key`` comes (no ``marker`` file yet) write the marker and
    raise: a bundle that failed half way, as a runner's worker loss would leave it (the marker file makes
    "first time" hold across worker processes)."""
    if item.key == at_key and not Path(marker).exists():
        Path(marker).write_text("raised")
        raise RuntimeError(f"injected failure at {at_key}")
    return item
