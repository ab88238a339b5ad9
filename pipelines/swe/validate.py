"""F2P/P2P validation of SWE candidates.

Pure part (:func:`compute_labels`, :func:`flaky_from`, :func:`labels_match`, :func:`verdict`): outcome maps
in, labels out. F2P = failing or absent before and passing after; P2P = passing both; XFAIL and SKIPPED
never count as passing; tests whose outcome flips between re-runs of one side are flaky, removed from both
lists and recorded.

Runner (:func:`validate_instance`): for one instance, check the repo out at its base commit (through the
sandbox's URL template), build or reuse its env image (content-addressed, so instances of one repo share
it), then run the test files of the test patch in fresh containers before (test patch only) and after
(test patch + fix), ``reruns`` times each. Docker is reached only through the client passed in.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.swe.patches import PatchError, apply_patch, test_directives

log = logging.getLogger(__name__)
PASSING = frozenset({"PASSED", "XPASS"})
# a before-run that crashed at collection is still informative: the new tests are absent (F2P candidates)
USABLE_BEFORE_ERRORS = frozenset({"collection"})


def passed(status: str | None) -> bool:
    return status in PASSING


def flaky_from(maps: Iterable[Mapping[str, str]]) -> list[str]:
    """Tests whose pass/fail outcome differs between runs (absent in one run = not passing there)."""
    maps = list(maps)
    if len(maps) < 2:
        return []
    ids = set().union(*maps)
    return sorted(t for t in ids if len({passed(m.get(t)) for m in maps}) > 1)


def compute_labels(before: Mapping[str, str], after: Mapping[str, str], flaky: Iterable[str] = ()) -> dict:
    """Labels from one before map and one after map (test id -> status)."""
    fl = set(flaky)
    ids = (set(before) | set(after)) - fl
    f2p = sorted(t for t in ids if passed(after.get(t)) and not passed(before.get(t)))
    p2p = sorted(t for t in ids if passed(after.get(t)) and passed(before.get(t)))
    p2f = sorted(t for t in ids if passed(before.get(t)) and not passed(after.get(t)))
    f2f = sorted(t for t in ids if t in after and not passed(after.get(t)) and not passed(before.get(t)))
    return {"FAIL_TO_PASS": f2p, "PASS_TO_PASS": p2p, "PASS_TO_FAIL": p2f, "FAIL_TO_FAIL": f2f,
            "flaky": sorted(fl)}


def labels_match(given_f2p, given_p2p, f2p, p2p) -> bool | None:
    """Whether computed labels equal given ones as sets (None when none were given)."""
    if given_f2p is None and given_p2p is None:
        return None
    return set(given_f2p or []) == set(f2p) and set(given_p2p or []) == set(p2p)


def verdict(labels: Mapping, *, require_p2p: bool = False) -> tuple[str, str | None]:
    if not labels["FAIL_TO_PASS"]:
        return "invalid", "no_fail_to_pass: no test fails before the fix and passes after it"
    if require_p2p and not labels["PASS_TO_PASS"]:
        return "invalid", "no_pass_to_pass: no test passes both before and after"
    return "valid", None


# ---------------------------------------------------------------- runner

@dataclass
class ValidateContext:
    client: object  # docker SDK client
    settings: object  # sandbox.api.Settings
    workdir: Path
    reruns: int = 1
    id_style: str = "swebench"  # swebench: -rA ids (SWE-bench labels); junit: pytest node ids from JUnit
    label_network: str | None = None
    mirror_root: Path | None = None  # local bare mirrors (injected-bug repos) tried before the URL template
    recipes: str = "auto"  # auto: SWE-bench's recipe when its table covers (repo, version), else inference
    env_cache: dict = field(default_factory=dict)  # (repo, env commit) -> EnvSpec
    stats: dict = field(default_factory=lambda: {"env_hits": 0, "env_builds": 0})


PYTEST_TIME = re.compile(r"=+ .*\bin ([0-9.]+)s(?: \([0-9:]+\))? =+\s*$", re.M)


def pytest_seconds(log: str) -> float | None:
    """pytest's own duration from its final summary line (the bare test time inside the container)."""
    m = PYTEST_TIME.findall(log or "")
    return float(m[-1]) if m else None


def outcome_map(run, id_style: str) -> dict[str, str]:
    return dict(run.tests_swebench if id_style == "swebench" else run.tests)


def checkout_tree(ctx: ValidateContext, repo: str, commit: str, dest: Path) -> Path:
    """An exported tree (no .git) of ``repo`` at ``commit``."""
    from sandbox.sources import export_tree

    return export_tree(clone_at(ctx, repo, commit).path, dest)


def clone_at(ctx: ValidateContext, repo: str, commit: str):
    """The cached clone of ``repo`` (through its mirror or the URL template) checked out at ``commit``."""
    from pipelines.store.commit import stable_hash
    from sandbox.sources import from_git

    template = url_template_for(ctx, repo)
    # clones are cached per URL template: the same repo name from another mirror is another clone
    return from_git(repo, commit, ctx.workdir / "git" / stable_hash(template, n=10), template)


def url_template_for(ctx: ValidateContext, repo: str) -> str:
    """The local mirror when ``repo`` has one (repos made from sdists), else the sandbox's URL template."""
    from pipelines.swe.mirror import mirror_template

    if ctx.mirror_root is not None and "/" in repo:
        owner, name = repo.split("/", 1)
        if (Path(ctx.mirror_root) / owner / f"{name}.git" / "HEAD").exists():
            return mirror_template(ctx.mirror_root)
    return ctx.settings.repo_url_template


def env_for(ctx: ValidateContext, repo: str, commit: str, tree: Path, version=None):
    """The env image spec for (repo, env commit, version), built once and reused. With ``ctx.recipes ==
    "auto"`` a (repo, version) in SWE-bench's table (``configs/swebench/specs.json``) uses SWE-bench's recipe
    (a RecipeError says why where it cannot be honoured); otherwise, or with ``"inferred"``, our inference."""
    from pipelines.swe.swebench_specs import recipe_for_instance
    from sandbox.api import build_env

    if ctx.recipes not in ("auto", "inferred"):
        raise ValueError(f"swe.recipes={ctx.recipes!r}: use auto or inferred")
    key = (repo, commit, str(version) if ctx.recipes == "auto" and version is not None else None)
    if key in ctx.env_cache:
        ctx.stats["env_hits"] += 1
        return ctx.env_cache[key]
    recipe = None
    if ctx.recipes == "auto" and version is not None:
        recipe = recipe_for_instance(repo, version, tree, ctx.settings.pythons)
    spec, res = build_env(ctx.client, ctx.settings, tree, repo.split("/")[-1].lower(), recipe=recipe)
    ctx.stats["env_hits" if res.get("cache_hit") else "env_builds"] += 1
    ctx.env_cache[key] = spec
    return spec


def env_for_instance(ctx: ValidateContext, inst: Mapping, base_tree: Path, scratch: Path):
    """The env of an instance: built from its env commit's tree (``base_tree`` when that is the base commit,
    else a checkout under ``scratch``) with its version, so validation, rollouts and grading share one image."""
    env_commit = env_commit_of(inst)
    tree = base_tree if env_commit == inst["base_commit"] else checkout_tree(ctx, inst["repo"], env_commit, scratch)
    return env_for(ctx, inst["repo"], env_commit, tree, inst.get("version"))


def run_side(ctx: ValidateContext, spec, tree: Path, selection: list[str], k: int) -> list:
    from sandbox.testrun import run_tests

    return [run_tests(ctx.client, spec.image, tree, spec.recipe, limits=ctx.settings.limits,
                      network=ctx.settings.network, selection=selection) for _ in range(k)]


def _side_map(runs, id_style, allow_errors=frozenset()):
    usable = [r for r in runs if r.ok or (r.status == "error" and r.kind in allow_errors)]
    if not usable:
        r = runs[0]
        return None, [], f"{r.status}/{r.kind}: {r.reason}"
    maps = [outcome_map(r, id_style) for r in usable]
    return maps[0], flaky_from(maps), None


def env_commit_of(inst: Mapping) -> str:
    return inst.get("environment_setup_commit") or inst["base_commit"]


def group_by_env(insts: Iterable[Mapping]) -> dict[tuple[str, str], list[Mapping]]:
    """Instances keyed by env (repo, env commit), each group in instance-id order."""
    groups: dict[tuple[str, str], list[Mapping]] = {}
    for inst in insts:
        groups.setdefault((inst["repo"], env_commit_of(inst)), []).append(inst)
    return {k: sorted(v, key=lambda i: i["instance_id"]) for k, v in sorted(groups.items())}


def env_reference(ctx: ValidateContext, repo: str, env_commit: str, insts: Sequence[Mapping]):
    """The clean reference run of one env: the test files the group's test patches touch that exist at the env
    commit, unmodified, run once (cached on disk across pipeline runs). None when no such file exists or the
    env cannot be set up (each instance then reports its own setup error)."""
    from pipelines.swe.reference import Reference, reference_run

    tmp = Path(tempfile.mkdtemp(prefix="crucible-ref-", dir=ctx.workdir))
    try:
        try:
            tree = checkout_tree(ctx, repo, env_commit, tmp / "env")
            spec = env_for(ctx, repo, env_commit, tree, insts[0].get("version") if insts else None)
        except Exception as exc:  # noqa: BLE001 - reported per instance by validate_instance
            log.warning("swe: reference of %s@%s not run: %s", repo, env_commit[:10], exc)
            return None
        files = sorted({f for i in insts for f in test_directives(i["test_patch"]) if (tree / f).exists()})
        if not files:
            return None
        ref: Reference = reference_run(ctx, spec, tree, env_commit, files)
        log.info("swe: reference %s@%s: %s, %d tests, %d flaky%s", repo, env_commit[:10],
                 "ok" if ref.ok else ref.reason, len(ref.outcomes), len(ref.flaky), " (cached)" if ref.cached else "")
        return ref
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def reference_meta(ref) -> dict:
    return {"key": ref.key, "ok": ref.ok, "cached": ref.cached, "n_tests": len(ref.outcomes),
            "flaky": ref.flaky[:200], "reason": ref.reason}


def validate_instance(ctx: ValidateContext, inst: Mapping, run_id: str, reference=None) -> dict:
    """One swe_validations row (status valid/invalid/error, never raises for a bad instance). With the env's
    ``reference`` run (:func:`env_reference`): an env whose reference hit an infrastructure failure fails its
    instances at once, and tests that flipped between re-runs of the clean tree are flaky here too."""
    from pipelines.store.commit import utc_now
    from sandbox.sources import SourceError

    t0 = time.monotonic()
    row = {"instance_id": inst["instance_id"], "status": "error", "reason": None, "fail_to_pass": [],
           "pass_to_pass": [], "flaky_tests": [], "network_tests": [], "labels_match": None, "env_image": None,
           "tests_before": None, "tests_after": None, "n_runs": 0, "duration_s": None, "test_duration_s": None,
           "meta": {}, "run_id": run_id, "created_at": utc_now()}
    tmp = Path(tempfile.mkdtemp(prefix="crucible-swe-", dir=ctx.workdir))
    try:
        try:
            base = checkout_tree(ctx, inst["repo"], inst["base_commit"], tmp / "base")
            spec = env_for_instance(ctx, inst, base, tmp / "env")
        except (SourceError, Exception) as exc:  # noqa: BLE001 - any setup failure is this row's reason
            row["reason"] = f"setup: {type(exc).__name__}: {exc}"[:2000]
            return row
        row["env_image"] = spec.image
        row["meta"] = {"recipe_python": spec.recipe.get("python"), "id_style": ctx.id_style,
                       "recipe_origin": spec.recipe.get("origin", "inferred")}
        if reference is not None:
            row["meta"]["reference"] = reference_meta(reference)
            if not reference.ok and reference.reason.startswith("infra/"):
                row["reason"] = f"infra: env reference run failed: {reference.reason}"[:2000]
                return row
        before = tmp / "before"
        shutil.copytree(base, before, symlinks=True)
        try:
            apply_patch(before, inst["test_patch"], what="test_patch")
            after = tmp / "after"
            shutil.copytree(before, after, symlinks=True)
            apply_patch(after, inst["patch"], what="patch")
        except PatchError as exc:
            row["status"], row["reason"] = "invalid", f"patch_apply: {exc}"[:2000]
            return row
        selection = test_directives(inst["test_patch"])
        k = max(1, ctx.reruns)
        runs_b = run_side(ctx, spec, before, selection, k)
        runs_a = run_side(ctx, spec, after, selection, k)
        row["n_runs"] = len(runs_b) + len(runs_a)
        row["test_duration_s"] = round(sum(r.seconds for r in runs_b + runs_a), 3)
        mb, flaky_b, err_b = _side_map(runs_b, ctx.id_style, USABLE_BEFORE_ERRORS)
        ma, flaky_a, err_a = _side_map(runs_a, ctx.id_style)
        if err_b or err_a:
            infra = any(r.status == "infra" for r in runs_b + runs_a)
            row["reason"] = ("infra: " if infra else "") + (f"before run {err_b}" if err_b else f"after run {err_a}")
            row["reason"] = row["reason"][:2000]
            return row
        ref_flaky = set(reference.flaky) if reference is not None and reference.ok else set()
        labels = compute_labels(mb, ma, set(flaky_b) | set(flaky_a) | (ref_flaky & (set(mb) | set(ma))))
        if ctx.label_network:
            from sandbox.testrun import network_dependent, run_tests

            online = run_tests(ctx.client, spec.image, after, spec.recipe, limits=ctx.settings.limits,
                               network=ctx.label_network, selection=selection)
            row["n_runs"] += 1
            ok_after = next(r for r in runs_a if r.ok)
            if online.ok:
                row["network_tests"] = network_dependent(ok_after, online)
        row.update(fail_to_pass=labels["FAIL_TO_PASS"], pass_to_pass=labels["PASS_TO_PASS"],
                   flaky_tests=labels["flaky"], tests_before=mb, tests_after=ma,
                   labels_match=labels_match(inst.get("FAIL_TO_PASS"), inst.get("PASS_TO_PASS"),
                                             labels["FAIL_TO_PASS"], labels["PASS_TO_PASS"]))
        ok_before = next((r for r in runs_b if r.ok), runs_b[0])
        row["meta"].update({"pass_to_fail": labels["PASS_TO_FAIL"][:200], "selection": selection,
                            "failing_output": ok_before.log_tail[-3000:],
                            "pytest_s": round(sum(pytest_seconds(r.log_tail) or 0.0 for r in runs_b + runs_a), 3)})
        row["status"], row["reason"] = verdict(labels)
        return row
    finally:
        row["duration_s"] = round(time.monotonic() - t0, 3)
        shutil.rmtree(tmp, ignore_errors=True)
