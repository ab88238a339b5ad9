"""``crucible swe validate``: SWE-bench-format rows -> swe_validations (+ swe_instances for valid ones,
failures for bad input rows), committed through the store so DuckDB shows them."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

from pipelines.store.commit import ItemResult, failure_row

log = logging.getLogger(__name__)
PIPELINE = "swe-validate"


def instance_row(inst: Mapping, val: Mapping, *, source: str, run_id: str, source_ref: str | None = None,
                 recipe: dict | None = None, extra: Mapping | None = None) -> dict:
    """A swe_instances row from an input instance and its validation (computed labels win)."""
    row = {
        "instance_id": inst["instance_id"], "repo": inst["repo"], "base_commit": inst["base_commit"],
        "patch": inst["patch"], "test_patch": inst["test_patch"],
        "problem_statement": inst.get("problem_statement") or "", "hints_text": inst.get("hints_text"),
        "created_at": inst.get("created_at"), "version": inst.get("version"),
        "environment_setup_commit": inst.get("environment_setup_commit"),
        "FAIL_TO_PASS": list(val["fail_to_pass"]), "PASS_TO_PASS": list(val["pass_to_pass"]),
        "source": source, "source_ref": source_ref, "env_image": val.get("env_image"), "recipe": recipe,
        "statement_origin": "issue" if inst.get("problem_statement") else None,
        "statement_prompt_version": None, "bug_operator": None, "meta": None, "run_id": run_id,
    }
    row.update(extra or {})
    return row


def problem_failure(prob, run_id: str, pipeline: str = PIPELINE) -> dict:
    return failure_row(pipeline=pipeline, stage="read_input", kind="schema", reason=prob.message(), run_id=run_id,
                       table="swe_instances", item_key=prob.instance_id or f"{prob.file}:{prob.line}",
                       path=prob.field, payload=prob.payload, discriminator=(prob.file, prob.line))


def validate_file(path: str, *, out_dir: str, client, settings, workdir: Path, run_id: str, reruns: int = 1,
                  id_style: str = "swebench", label_network: str | None = None, limit: int | None = None,
                  commit_every: int = 4, catalog: str | None = None, reference: bool = True,
                  recipes: str = "auto") -> dict:
    """Validate every good row of ``path``, grouped by env (repo, env commit): one env image and one clean
    reference run per group. Rows committed by an earlier run into ``out_dir`` are skipped."""
    from pipelines.store.catalog import refresh_catalog
    from pipelines.store.commit import Progress, commit_items, ensure_layout, recover
    from pipelines.swe.sources import read_instances
    from pipelines.swe.validate import ValidateContext, env_reference, group_by_env, validate_instance

    t0 = time.monotonic()
    good, problems = read_instances(path)
    if limit:
        good = good[:limit]
    ensure_layout(out_dir)
    done = recover(out_dir, PIPELINE).done_keys
    n_done = sum(i["instance_id"] in done for i in good)
    good = [i for i in good if i["instance_id"] not in done]
    problems = [p for p in problems if f"input:{p.file}:{p.line}" not in done]
    for p in problems:
        log.warning("bad input row: %s", p.message())
    if problems:
        commit_items(out_dir, PIPELINE, run_id, [ItemResult(f"input:{p.file}:{p.line}").add(
            "failures", problem_failure(p, run_id)) for p in problems])
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = ValidateContext(client=client, settings=settings, workdir=workdir, reruns=reruns, id_style=id_style,
                          label_network=label_network, recipes=recipes)
    counts: dict[str, int] = {}
    pending: list[ItemResult] = []
    progress = Progress("swe-validate", total=len(good))
    for (repo, env_commit), insts in group_by_env(good).items():
        ref = env_reference(ctx, repo, env_commit, insts) if reference else None
        for inst in insts:
            val = validate_instance(ctx, inst, run_id, reference=ref)
            res = ItemResult(inst["instance_id"]).add("swe_validations", val)
            if val["status"] == "valid":
                res.add("swe_instances", instance_row(inst, val, source="swebench", run_id=run_id,
                                                      source_ref=inst["repo"]))
            else:
                res.add("failures", failure_row(pipeline=PIPELINE, stage="validate",
                                                kind="infra" if (val["reason"] or "").startswith(("infra", "setup"))
                                                else ("error" if val["status"] == "error" else "filtered"),
                                                reason=val["reason"] or val["status"], run_id=run_id,
                                                table="swe_instances", item_key=inst["instance_id"]))
            key = (val["status"] if val["labels_match"] is None
                   else f"{val['status']}/labels_match={val['labels_match']}")
            counts[key] = counts.get(key, 0) + 1
            log.info("%s: %s %s (F2P %d, P2P %d, %.1fs)", inst["instance_id"], val["status"], val["reason"] or "",
                     len(val["fail_to_pass"]), len(val["pass_to_pass"]), val["duration_s"])
            progress.update(1)
            pending.append(res)
            if len(pending) >= commit_every:
                commit_items(out_dir, PIPELINE, run_id, pending)
                pending = []
    if pending:
        commit_items(out_dir, PIPELINE, run_id, pending)
    cat = refresh_catalog(out_dir, catalog) if catalog else refresh_catalog(out_dir)
    return {"instances": len(good), "skipped_done": n_done, "bad_rows": len(problems), "outcomes": counts,
            "env": ctx.stats,
            "catalog": cat, "seconds": round(time.monotonic() - t0, 1)}
