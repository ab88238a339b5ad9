"""Where SWE tests run: the context (Docker client, sandbox settings, workdir, run network), checkouts, and
the env of an instance, decided once at validation (:class:`TaskEnv`: image, recipe with its test command and
log parser, network, id style) and carried with the instance into rollouts and grading."""

from __future__ import annotations

import fcntl
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path

from crucible.pipelines.store.commit import stable_hash
from crucible.pipelines.swe.mirror import mirror_template
from crucible.pipelines.swe.swebench_specs import recipe_for_instance, repo_log_parser
from crucible.sandbox.api import build_env
from crucible.sandbox.asof import commit_date
from crucible.sandbox.container import internal_network, is_internal
from crucible.sandbox.ladder import apply_rung
from crucible.sandbox.sources import export_tree, from_git
from crucible.sandbox.testrun import run_tests

NETWORK_MODES = ("none", "internal")


@dataclass
class ValidateContext:
    client: object  # docker SDK client
    settings: object  # crucible.sandbox.api.Settings
    workdir: Path
    reruns: int = 1
    id_style: str = "swebench"  # swebench: -rA ids (SWE-bench labels); junit: pytest node ids from JUnit
    network: str = "none"  # test containers: none, internal, or a per-run internal network (run_network)
    label_network: str | None = None  # one more after-run on this network labels network-dependent tests
    mirror_root: Path | None = None  # local bare mirrors (injected-bug repos) tried before the URL template
    recipes: str = "auto"  # auto: SWE-bench's recipe when its table covers (repo, version), else inference
    max_f2p: int = 200  # an injected bug failing more tests breaks import or everything (swe.max_f2p)
    env_cache: dict = field(default_factory=dict)  # (repo, env commit, version) -> sandbox EnvSpec
    stats: dict = field(default_factory=lambda: {"env_hits": 0, "env_builds": 0})
    pool: object = None  # crucible.sandbox.engines.EnginePool: env groups placed on engines (crucible.pipelines.swe.pooled)

    @property
    def network_mode(self) -> str:
        return "internal" if is_internal(self.network) else self.network

    def network_for(self, mode: str) -> str:
        """The network to run an env made under ``mode`` on: this run's internal network when it has one."""
        if mode == "internal" and self.network_mode == "internal":
            return self.network
        return mode


@contextmanager
def run_network(client, mode: str, run_id: str):
    """The network name for one run: a fresh internal network (removed after) for ``internal``."""
    if mode not in NETWORK_MODES:
        raise ValueError(f"swe.network={mode!r}: use one of {', '.join(NETWORK_MODES)}")
    if mode == "none":
        yield "none"
        return

    with internal_network(client, run_id) as name:
        yield name


@dataclass(frozen=True)
class TaskEnv:
    """The env an instance's labels were made in; rollouts and grading use it as is (never re-planned)."""

    image: str
    recipe: dict  # install steps, test_cmd, test_paths, log_parser, python
    network: str = "none"  # network mode of the label runs
    id_style: str = "swebench"

    @property
    def test_cmd(self) -> str:
        return self.recipe["test_cmd"]

    @property
    def parser(self) -> str:
        return self.recipe.get("log_parser") or "pytest_rA"

    def columns(self) -> dict:
        """The swe_instances columns that carry this env."""
        return {"env_image": self.image, "recipe": self.recipe, "env_network": self.network,
                "id_style": self.id_style}

    @classmethod
    def of(cls, inst: Mapping) -> TaskEnv | None:
        """The env an instance row carries (None: not validated here, e.g. a SWE-bench-format row)."""
        if not inst.get("env_image") or not inst.get("recipe"):
            return None
        return cls(image=inst["env_image"], recipe=dict(inst["recipe"]), network=inst.get("env_network") or "none",
                   id_style=inst.get("id_style") or "swebench")


def checkout_tree(ctx: ValidateContext, repo: str, commit: str, dest: Path) -> Path:
    """An exported tree (no .git) of ``repo`` at ``commit``. The cached clone is shared by every worker process
    and thread on this machine: checkout and export hold its lock, so a concurrent checkout of another commit
    cannot swap the tree under the export (seen with 2 Beam workers: gold patches "previously applied")."""

    with clone_lock(ctx, repo):
        return export_tree(clone_at(ctx, repo, commit).path, dest)


@contextmanager
def clone_lock(ctx: ValidateContext, repo: str):
    """An exclusive lock (flock: per open file, so threads exclude each other too) on ``repo``'s cached clones."""
    path = Path(ctx.workdir) / "git" / f"{repo.replace('/', '__')}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def clone_at(ctx: ValidateContext, repo: str, commit: str):
    """The cached clone of ``repo`` (through its mirror or the URL template) checked out at ``commit``."""

    template = url_template_for(ctx, repo)
    # clones are cached per URL template: the same repo name from another mirror is another clone
    return from_git(repo, commit, ctx.workdir / "git" / stable_hash(template, n=10), template)


def url_template_for(ctx: ValidateContext, repo: str) -> str:
    """The local mirror when ``repo`` has one (repos made from sdists), else the sandbox's URL template."""

    if ctx.mirror_root is not None and "/" in repo:
        owner, name = repo.split("/", 1)
        if (Path(ctx.mirror_root) / owner / f"{name}.git" / "HEAD").exists():
            return mirror_template(ctx.mirror_root)
    return ctx.settings.repo_url_template


def env_for(ctx: ValidateContext, repo: str, commit: str, tree: Path, version=None, created_at=None, rung=None):
    """The sandbox env spec for (repo, env commit, version), built once and reused. With ``ctx.recipes ==
    "auto"`` a (repo, version) in SWE-bench's table (``configs/swebench/specs.json``) uses SWE-bench's recipe
    (a RecipeError says why where it cannot be honoured); otherwise, or with ``"inferred"``, our inference,
    resolved as of the env commit's date (:func:`env_date`) when it is older than
    ``sandbox.as_of_min_age_days``. With ``rung`` (a ``crucible.sandbox.ladder.Rung``, or a tuple of them applied in
    order: ``crucible.pipelines.swe.startrung``): that env's recipe with the rung applied (recorded in its ``rungs``),
    built once too."""

    if ctx.recipes not in ("auto", "inferred"):
        raise ValueError(f"swe.recipes={ctx.recipes!r}: use auto or inferred")
    key = (repo, commit, str(version) if ctx.recipes == "auto" and version is not None else None)
    rungs = rung if isinstance(rung, tuple) else (rung,) if rung is not None else ()
    key += tuple(r.key for r in rungs)
    if key in ctx.env_cache:
        ctx.stats["env_hits"] += 1
        return ctx.env_cache[key]
    recipe = None
    if rungs:
        first = env_for(ctx, repo, commit, tree, version, created_at)
        recipe = (reduce(apply_rung, rungs, first.recipe), first.inputs)
    elif ctx.recipes == "auto" and version is not None:
        recipe = recipe_for_instance(repo, version, tree, ctx.settings.pythons)
    date = None if recipe is not None and not rungs else env_date(ctx, repo, commit, created_at)
    spec, res = build_env(ctx.client, ctx.settings, tree, repo.split("/")[-1].lower(), recipe=recipe, date=date)
    ctx.stats["env_hits" if res.get("cache_hit") else "env_builds"] += 1
    ctx.stats["env_reuses"] = ctx.stats.get("env_reuses", 0) + bool(not res.get("cache_hit") and res.get("reused_from"))
    ctx.env_cache[key] = spec
    return spec


def env_date(ctx: ValidateContext, repo: str, commit: str, created_at=None) -> str | None:
    """The day the env commit was made: its commit date when real (an old commit of a git repo, a release
    mirrored from its sdist, a bug committed on one), else the row's ``created_at`` day (SWE-bench: the
    PR's), else None (today's index)."""

    with clone_lock(ctx, repo):
        day = commit_date(clone_at(ctx, repo, commit).path)
    if day:
        return day
    text = created_at.isoformat() if hasattr(created_at, "isoformat") else created_at
    return text[:10] if isinstance(text, str) and len(text) >= 10 else None


def decide_env(ctx: ValidateContext, inst: Mapping, base_tree: Path, scratch: Path, rung=None) -> TaskEnv:
    """The env of an instance, decided (at validation): built from its env commit's tree (``base_tree`` when
    that is the base commit, else a checkout under ``scratch``) with its version, on this run's network;
    ``rung``: see :func:`env_for`."""
    env_commit = env_commit_of(inst)
    tree = base_tree if env_commit == inst["base_commit"] else checkout_tree(ctx, inst["repo"], env_commit, scratch)
    spec = env_for(ctx, inst["repo"], env_commit, tree, inst.get("version"), inst.get("created_at"), rung)
    return env_of(ctx, inst["repo"], spec)


def env_of(ctx: ValidateContext, repo: str, spec) -> TaskEnv:
    """The :class:`TaskEnv` of a built env spec on this run's network. An inferred recipe (no ``log_parser``)
    of a repo SWE-bench's table names gets that repo's parser: test ids are a convention of the labels (e.g.
    requests' path parametrizations cut to the last component), not of the install; the image is the same."""
    recipe = spec.recipe
    if ctx.id_style == "swebench" and not recipe.get("log_parser"):
        parser = repo_log_parser(repo)
        if parser:
            recipe = {**recipe, "log_parser": parser}
    return TaskEnv(image=spec.image, recipe=recipe, network=ctx.network_mode, id_style=ctx.id_style)


def task_env(ctx: ValidateContext, inst: Mapping, base_tree: Path, scratch: Path) -> TaskEnv:
    """The env an instance carries from its validation; decided here only for a row that was never validated
    by Crucible (``crucible swe grade`` on SWE-bench-format rows)."""
    return TaskEnv.of(inst) or decide_env(ctx, inst, base_tree, scratch)


def env_commit_of(inst: Mapping) -> str:
    return inst.get("environment_setup_commit") or inst["base_commit"]


def env_key(inst: Mapping) -> str:
    return f"{inst['repo']}@{env_commit_of(inst)}"


def group_by_env(insts: Iterable[Mapping]) -> dict[tuple[str, str], list[Mapping]]:
    """Instances keyed by env (repo, env commit), each group in instance-id order."""
    groups: dict[tuple[str, str], list[Mapping]] = {}
    for inst in insts:
        groups.setdefault((inst["repo"], env_commit_of(inst)), []).append(inst)
    return {k: sorted(v, key=lambda i: i["instance_id"]) for k, v in sorted(groups.items())}


def run_side(ctx: ValidateContext, env: TaskEnv, tree: Path, selection: list[str] | None, k: int,
             network: str | None = None) -> list:
    return [run_tests(ctx.client, env.image, tree, env.recipe, limits=ctx.settings.limits,
                      network=ctx.network_for(network or env.network), selection=selection) for _ in range(k)]
