"""F2P/P2P validation of SWE candidates (labels from outcome maps: :mod:`crucible.pipelines.swe.labels`).

Runner (:func:`validate_instance`): for one instance, check the repo out at its base commit (through the
sandbox's URL template), build or reuse its env image (content-addressed, so instances of one repo share
it), then run the test files of the test patch in fresh containers before (test patch only) and after
(test patch + fix), ``reruns`` times each. Docker is reached only through the client passed in.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from crucible.pipelines.swe.bugs import bug_labels, inject, tests_for
from crucible.pipelines.swe.envs import (
    TaskEnv,
    ValidateContext,
    checkout_tree,
    clone_at,
    clone_lock,
    decide_env,
    env_commit_of,
    env_for,
    env_of,
    run_side,
)
from crucible.pipelines.swe.labels import (
    USABLE_BEFORE_ERRORS,
    compute_labels,
    flaky_from,
    labels_hold,
    labels_match,
    outcome_map,
    pytest_seconds,
    verdict,
)
from crucible.pipelines.swe.patches import PatchError, apply_patch, test_directives
from crucible.pipelines.swe.pooled import pooled_group
from crucible.pipelines.swe.records import FailureKind, Status, Step, SWEInstance, not_valid, validation_row
from crucible.pipelines.swe.reference import Reference, reference_run, tree_id
from crucible.pipelines.swe.startrung import climb, stop_note
from crucible.sandbox.ladder import Rung, label_rung
from crucible.sandbox.testrun import network_dependent

log = logging.getLogger(__name__)
def _side_map(runs, id_style, allow_errors=frozenset()):
    usable = [r for r in runs if r.ok or (r.status == "error" and r.kind in allow_errors)]
    if not usable:
        r = runs[0]
        return None, [], f"{r.status}/{r.kind}: {r.reason}"
    maps = [outcome_map(r, id_style) for r in usable]
    return maps[0], flaky_from(maps), None


def env_reference(ctx: ValidateContext, repo: str, env_commit: str, insts: Sequence[Mapping]):
    """The clean reference run of one env: the test files the group's test patches touch that exist at the env
    commit, unmodified, run once (cached on disk across pipeline runs). None when no such file exists or the
    env cannot be set up (each instance then reports its own setup error)."""

    tmp = Path(tempfile.mkdtemp(prefix="crucible-ref-", dir=ctx.workdir))
    try:
        try:
            tree = checkout_tree(ctx, repo, env_commit, tmp / "env")
            spec = env_for(ctx, repo, env_commit, tree, insts[0].get("version") if insts else None,
                           insts[0].get("created_at") if insts else None)
            env = env_of(ctx, repo, spec)
        except Exception as exc:  # noqa: BLE001 - reported per instance by validate_instance
            log.warning("swe: reference of %s@%s not run: %s", repo, env_commit[:10], exc)
            return None
        files = sorted({f for i in insts for f in test_directives(i["test_patch"]) if (tree / f).exists()})
        if not files:
            return None
        ref: Reference = reference_run(ctx, env, tree, env_commit, files)
        log.info("swe: reference %s@%s: %s, %d tests, %d flaky%s", repo, env_commit[:10],
                 "ok" if ref.ok else ref.reason, len(ref.outcomes), len(ref.flaky), " (cached)" if ref.cached else "")
        return ref
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def reference_meta(ref) -> dict:
    return {"key": ref.key, "ok": ref.ok, "cached": ref.cached, "n_tests": len(ref.outcomes), "pytest_s": ref.pytest_s,
            "flaky": ref.flaky[:200], "reason": ref.reason, "reconciled": ref.reconciled}


@dataclass
class Validation:
    row: dict  # the swe_validations row
    env: TaskEnv | None  # the env it was decided in (None: setup failed)


def validate_instance(ctx: ValidateContext, inst: Mapping, run_id: str, reference=None) -> dict:
    """One swe_validations row (see :func:`validate`)."""
    return validate(ctx, inst, run_id, reference).row


def validate(ctx: ValidateContext, inst: Mapping, run_id: str, reference=None) -> Validation:
    """Validate one instance: status valid/invalid/error, never raises for a bad instance. With the env's
    ``reference`` run (:func:`env_reference`): an env whose reference hit an infrastructure failure fails its
    instances at once, and tests that flipped between re-runs of the clean tree are flaky here too."""
    t0 = time.monotonic()
    row = validation_row(inst["instance_id"], run_id)
    env = None
    tmp = Path(tempfile.mkdtemp(prefix="crucible-swe-", dir=ctx.workdir))
    try:
        try:
            base = checkout_tree(ctx, inst["repo"], inst["base_commit"], tmp / "base")
            env = decide_env(ctx, inst, base, tmp / "env")
        except Exception as exc:  # noqa: BLE001 - any setup failure is this row's reason
            not_valid(row, Status.ERROR, FailureKind.INFRA, Step.SETUP, f"setup: {type(exc).__name__}: {exc}")
            return Validation(row, None)
        row["env_image"], row["meta"] = env.image, _env_meta(env)
        if reference is not None:
            row["meta"]["reference"] = reference_meta(reference)
            if not reference.ok and reference.reason.startswith("infra/"):
                not_valid(row, Status.ERROR, FailureKind.INFRA, Step.REFERENCE,
                          f"infra: env reference run failed: {reference.reason}")
                return Validation(row, env)
        _run_and_label(ctx, inst, env, base, tmp, row, reference)
        if row["meta"].get("stopped"):  # a run stopped before its tests: the ladder on pytest's line

            row, env = climb(ctx, inst, env, base, tmp, row, run_id, run_and_label=_run_and_label,
                             env_meta=_env_meta)
        if row["labels_hold"] is False:
            row, env = _label_rung(ctx, inst, env, base, tmp, row, run_id)
        return Validation(row, env)
    finally:
        row["duration_s"] = round(time.monotonic() - t0, 3)
        shutil.rmtree(tmp, ignore_errors=True)


def _env_meta(env: TaskEnv) -> dict:
    return {"recipe_python": env.recipe.get("python"), "id_style": env.id_style,
            "recipe_origin": env.recipe.get("origin", "inferred"), "network": env.network}


def _label_rung(ctx: ValidateContext, inst: Mapping, env: TaskEnv, base: Path, tmp: Path, row: dict,
                run_id: str) -> tuple[dict, TaskEnv]:
    """Given labels this env never collected (``crucible.sandbox.ladder.label_rung``): the env with the rung, validated
    again; the row (and env) where fewer given labels fail to hold wins (a valid row never loses to one that is
    not), and the rung, with the counts on both sides, is in ``meta.label_rung`` of the row kept."""

    rung = label_rung(env.recipe, {"not_collected": row["meta"].get("labels_not_collected") or []})
    if rung is None:
        return row, env
    note = {**rung.as_dict(), "kept": False, "not_held_before": len(row["labels_not_held"])}

    climbed = [] if row["meta"].get("start_stop") else row["meta"].get("start_rungs") or []  # the env kept has them
    started = tuple(Rung.from_dict(d) for d in climbed)
    try:
        alt_env = decide_env(ctx, inst, base, tmp / "rung-env", started + (rung,) if started else rung)
    except Exception as exc:  # noqa: BLE001 - the rung's env did not build: the first env stands, with why
        row["meta"]["label_rung"] = {**note, "error": f"{type(exc).__name__}: {exc}"[:1000]}
        return row, env
    alt = validation_row(inst["instance_id"], run_id, env_image=alt_env.image, meta=_env_meta(alt_env))
    (tmp / "rung").mkdir()
    _run_and_label(ctx, inst, alt_env, base, tmp / "rung", alt, None)
    note.update(image=alt_env.image, status_after=alt["status"], not_held_after=len(alt["labels_not_held"]))
    if alt["labels_hold"] is None or len(alt["labels_not_held"]) >= len(row["labels_not_held"]) or \
            (row["status"] == Status.VALID.value and alt["status"] != Status.VALID.value):
        row["meta"]["label_rung"] = note
        return row, env
    alt["meta"]["label_rung"] = {**note, "kept": True}
    alt["n_runs"] += row["n_runs"]
    alt["test_duration_s"] = round((alt["test_duration_s"] or 0) + (row["test_duration_s"] or 0), 3)
    return alt, alt_env


def _run_and_label(ctx: ValidateContext, inst: Mapping, env: TaskEnv, base: Path, tmp: Path, row: dict,
                   reference) -> None:
    before = tmp / "before"
    shutil.copytree(base, before, symlinks=True)
    try:
        apply_patch(before, inst["test_patch"], what="test_patch")
        after = tmp / "after"
        shutil.copytree(before, after, symlinks=True)
        apply_patch(after, inst["patch"], what="patch")
    except PatchError as exc:
        not_valid(row, Status.INVALID, FailureKind.FILTERED, Step.PATCH_APPLY, f"patch_apply: {exc}")
        return
    selection = test_directives(inst["test_patch"])
    k = max(1, ctx.reruns)
    runs_b = run_side(ctx, env, before, selection, k)
    runs_a = run_side(ctx, env, after, selection, k)
    row["n_runs"] = len(runs_b) + len(runs_a)
    row["test_duration_s"] = round(sum(r.seconds for r in runs_b + runs_a), 3)
    mb, flaky_b, err_b = _side_map(runs_b, env.id_style, USABLE_BEFORE_ERRORS)
    ma, flaky_a, err_a = _side_map(runs_a, env.id_style)
    if err_b or err_a:
        infra = any(r.status == "infra" for r in runs_b + runs_a)
        why = f"before run {err_b}" if err_b else f"after run {err_a}"

        if not infra and (note := stop_note(runs_b if err_b else runs_a)):
            row["meta"]["stopped"] = note
        not_valid(row, Status.ERROR, FailureKind.INFRA if infra else FailureKind.ERROR, Step.RUN,
                  ("infra: " if infra else "") + why)
        return
    ref_flaky = set(reference.flaky) if reference is not None and reference.ok else set()
    labels = compute_labels(mb, ma, set(flaky_b) | set(flaky_a) | (ref_flaky & (set(mb) | set(ma))))
    if ctx.label_network:
        online = run_side(ctx, env, after, selection, 1, network=ctx.label_network)[0]
        row["n_runs"] += 1
        ok_after = next(r for r in runs_a if r.ok)
        if online.ok:
            row["network_tests"] = network_dependent(ok_after, online)
    held = labels_hold(inst.get("FAIL_TO_PASS"), inst.get("PASS_TO_PASS"), mb, ma, labels["flaky"])
    row.update(fail_to_pass=labels["FAIL_TO_PASS"], pass_to_pass=labels["PASS_TO_PASS"],
               flaky_tests=labels["flaky"], tests_before=mb, tests_after=ma,
               labels_match=labels_match(inst.get("FAIL_TO_PASS"), inst.get("PASS_TO_PASS"),
                                         labels["FAIL_TO_PASS"], labels["PASS_TO_PASS"]),
               labels_hold=held["hold"] if held else None, labels_not_held=held["not_held"][:200] if held else [])
    if held and held["not_collected"]:
        row["meta"]["labels_not_collected"] = held["not_collected"][:200]
    if any(r.reconciled for r in runs_b + runs_a):  # JUnit merged cases of one id: reconciled with the console
        row["meta"]["reconciled"] = sorted({r.reconciled for r in runs_b + runs_a if r.reconciled})
    ok_before = next((r for r in runs_b if r.ok), runs_b[0])
    row["meta"].update({"pass_to_fail": labels["PASS_TO_FAIL"][:200], "selection": selection,
                        "failing_output": ok_before.log_tail[-3000:],
                        "pytest_s": round(sum(pytest_seconds(r.log_tail) or 0.0 for r in runs_b + runs_a), 3)})
    why = verdict(labels)
    if why:
        not_valid(row, Status.INVALID, FailureKind.FILTERED, Step.LABELS, why)
    else:
        row["status"] = Status.VALID.value


def validated_instance(inst: Mapping, val: Validation) -> SWEInstance:
    """The instance with what validation decided: its computed labels (they win over given ones) and its env."""
    base = inst if isinstance(inst, SWEInstance) else SWEInstance.from_row(inst)
    meta = dict(base.meta or {}, failing_output=(val.row["meta"] or {}).get("failing_output"))
    return base.replace(FAIL_TO_PASS=val.row["fail_to_pass"], PASS_TO_PASS=val.row["pass_to_pass"], meta=meta,
                        **val.env.columns())


def validate_env_group(ctx: ValidateContext, insts: Sequence[Mapping], run_id: str, *,
                       reference: bool) -> Iterator[tuple[Mapping, Validation]]:
    """The one validation path (``crucible swe validate``, ``make swe-curate``): the instances of one env
    (repo, env commit) in id order, the env's image and clean reference run once, then each instance."""
    insts = sorted(insts, key=lambda i: i["instance_id"])
    if not insts:
        return
    if ctx.pool is not None:  # on an engine pool: placed, and moved off an engine that stops answering
        yield from pooled_group(ctx, ctx.pool, insts, run_id, reference=reference, group=validate_env_group)
        return
    if all(i["source"] == "injected" for i in insts):
        yield from validate_bug_group(ctx, insts, run_id)
        return
    ref = env_reference(ctx, insts[0]["repo"], env_commit_of(insts[0]), insts) if reference else None
    for inst in insts:
        yield inst, validate(ctx, inst, run_id, reference=ref)


def validate_bug_group(ctx: ValidateContext, insts: Sequence[Mapping], run_id: str) -> Iterator[tuple[Mapping, Validation]]:
    """Injected bugs of one env (a sdist's clean commit): the clean suite once (the env's reference run, cached
    on disk), then one run per bug on the test files that mention its function; F2P = pass clean -> fail with
    the bug (the fix reverses it), P2P = pass both; more than ``ctx.max_f2p`` F2P is a bug that breaks
    everything."""

    repo, clean_commit = insts[0]["repo"], env_commit_of(insts[0])
    tmp = Path(tempfile.mkdtemp(prefix="crucible-bugs-", dir=ctx.workdir))
    try:
        try:
            tree = checkout_tree(ctx, repo, clean_commit, tmp / "clean")
            spec = env_for(ctx, repo, clean_commit, tree)
            env = env_of(ctx, repo, spec)
            with clone_lock(ctx, repo):  # the shared clone's HEAD, read while no other checkout moves it
                clean_id = tree_id(clone_at(ctx, repo, clean_commit).path)
            ref = reference_run(ctx, env, tree, clean_id)
        except Exception as exc:  # noqa: BLE001 - every bug of the env reports it
            for inst in insts:
                yield inst, Validation(not_valid(validation_row(inst["instance_id"], run_id), Status.ERROR,
                                                 FailureKind.INFRA, Step.SETUP, f"setup: {type(exc).__name__}: {exc}"),
                                       None)
            return
        for inst in insts:
            t0 = time.monotonic()
            meta = inst["meta"] or {}
            row = validation_row(inst["instance_id"], run_id, flaky_tests=sorted(ref.flaky), env_image=env.image,
                                 meta={"operator": inst["bug_operator"], "function": meta.get("function"),
                                       "path": meta.get("path"), "source": "injected", "network": env.network,
                                       "reference": reference_meta(ref)})
            if not ref.ok:
                not_valid(row, Status.ERROR, FailureKind.INFRA if ref.reason.startswith("infra/") else FailureKind.ERROR,
                          Step.REFERENCE, f"clean suite of {repo} did not run: {ref.reason}")
            else:
                _label_bug(ctx, inst, env, tree, ref, row, tmp, bug_labels, tests_for)
            row["duration_s"] = round(time.monotonic() - t0, 3)
            yield inst, Validation(row, env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _label_bug(ctx, inst, env, tree, ref, row, tmp, bug_labels, tests_for) -> None:
    buggy = tmp / "bug"
    shutil.rmtree(buggy, ignore_errors=True)
    shutil.copytree(tree, buggy, symlinks=True)
    try:
        apply_patch(buggy, inst["meta"]["bug_diff"], what="bug")
    except PatchError as exc:
        not_valid(row, Status.ERROR, FailureKind.ERROR, Step.PATCH_APPLY, f"bug_apply: {exc}")
        return
    selection = tests_for(tree, inst["meta"]["function"], env.recipe.get("test_paths") or ["."])
    run = run_side(ctx, env, buggy, selection, 1)[0]
    row["n_runs"], row["test_duration_s"] = 1, round(run.seconds, 3)
    row["meta"].update(pytest_s=pytest_seconds(run.log_tail), selection=selection)
    if run.reconciled:
        row["meta"]["reconciled"] = [run.reconciled]
    if not (run.ok or (run.status == "error" and run.kind == "collection")):
        why = f"bug_run_{run.status}/{run.kind}: {run.reason}"
        if run.status == "error":  # the bug breaks the suite beyond collection: no usable labels
            not_valid(row, Status.INVALID, FailureKind.FILTERED, Step.RUN, why)
        else:
            not_valid(row, Status.ERROR, FailureKind.INFRA if run.status == "infra" else FailureKind.ERROR,
                      Step.RUN, why)
        return
    clean_flaky = set(ref.flaky)
    lab = bug_labels(ref.outcomes, outcome_map(run, env.id_style), selection, allow_absent=not run.ok)
    f2p = [t for t in lab["FAIL_TO_PASS"] if t not in clean_flaky]
    p2p = [t for t in lab["PASS_TO_PASS"] if t not in clean_flaky]
    row.update(fail_to_pass=f2p, pass_to_pass=p2p)
    row["meta"]["failing_output"] = run.log_tail[-3000:]
    if not f2p:
        not_valid(row, Status.INVALID, FailureKind.FILTERED, Step.LABELS,
                  "no_fail_to_pass: no test goes pass -> fail with this bug")
    elif len(f2p) > ctx.max_f2p:
        not_valid(row, Status.INVALID, FailureKind.FILTERED, Step.LABELS,
                  f"too_many_f2p: {len(f2p)} > {ctx.max_f2p} (bug breaks import or everything)")
    else:
        row["status"] = Status.VALID.value


def validate_bugs(ctx: ValidateContext, checkout, repo: str, mirror_root: Path, cands, run_id: str, *,
                  source_ref: str | None = None, done: frozenset[str] = frozenset()) -> tuple[list, list[dict], dict]:
    """(valid instances, validation rows, stats) of a sdist's bug candidates: :func:`crucible.pipelines.swe.bugs.inject`
    then :func:`validate_env_group`, as ``make swe-curate`` runs them (for benchmarks and tests)."""

    insts, broken = inject(checkout, repo, mirror_root, cands, source_ref=source_ref, done=done)
    rows = [not_valid(validation_row(iid, run_id), Status.ERROR, FailureKind.ERROR, Step.PATCH_APPLY, why)
            for iid, why in broken]
    valid = []
    for inst, val in validate_env_group(ctx, insts, run_id, reference=True):
        rows.append(val.row)
        if val.row["status"] == Status.VALID.value:
            valid.append(validated_instance(inst, val))
    ref = next((r["meta"]["reference"] for r in rows if (r["meta"] or {}).get("reference")), {})
    return valid, rows, {"candidates": len(cands), "skipped_done": len(cands) - len(insts) - len(broken),
                         "bug_runs": sum(r["n_runs"] for r in rows), "clean_pytest_s": ref.get("pytest_s") or 0.0,
                         "reference_cached": ref.get("cached")}
