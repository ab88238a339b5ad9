"""Glue used by the CLI, benchmarks and pipelines: settings from config, then base -> env -> test run.

Every function takes the docker client as an argument.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from crucible.sandbox.asof import default_as_of
from crucible.sandbox.container import Limits
from crucible.sandbox.envbuild import ensure_env
from crucible.sandbox.hostenv import find_ca_bundle, host_debian_mirror, host_pip_env
from crucible.sandbox.images import DEFAULT_APT_PACKAGES, BaseSpec, EnvSpec, ensure_base
from crucible.sandbox.recipes import infer_recipe, load_override
from crucible.sandbox.registry import registry_of, shared_image
from crucible.sandbox.sources import export_tree
from crucible.sandbox.testrun import run_suite

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    ca_bundle: str | None = None
    debian_mirror: str | None = None
    base_registry_image: str | None = None
    pythons: tuple[str, ...] = ("3.9", "3.11")
    apt_packages: tuple[str, ...] = DEFAULT_APT_PACKAGES
    pip_env: dict = field(default_factory=dict)
    cache_dir: Path = Path("~/.cache/crucible/sandbox").expanduser()
    repo_url_template: str = "https://github.com/{repo}.git"
    repos_dir: Path = REPO_ROOT / "configs" / "repos"
    limits: Limits = Limits()
    build_timeout_s: int = 1800
    network: str = "none"
    reruns: int = 1
    label_network: str | None = None
    as_of_min_age_days: int = 365
    repair_max_rungs: int = 6
    survey_parallel: int = 2
    reuse_envs: bool = False  # bare Settings() (unit tests) builds from the base; configured: the schema's default
    llm_repair: dict = field(default_factory=dict)  # the resolved sandbox.llm_repair section
    registry: str | None = None  # sandbox.registry: images pushed once built, pulled by other engines


def settings_from_config(section, resolve_host: bool = True) -> Settings:
    """Settings from the resolved ``sandbox`` config section (``load_config(...).sandbox``: every key present,
    defaults from ``schemas/config_sandbox.json``); host facts (mirror, CA bundle, pip index) are resolved here
    when not configured."""
    s = dict(section)
    pip_env = dict(host_pip_env() if resolve_host and s["inherit_host_pip"] else {})
    pip_env.update(s["pip_env"])
    repos_dir = Path(s["repos_dir"])
    if not repos_dir.is_absolute():
        repos_dir = REPO_ROOT / repos_dir
    return Settings(
        ca_bundle=find_ca_bundle(s["ca_bundle"]) if resolve_host else s["ca_bundle"],
        debian_mirror=s["debian_mirror"] or (host_debian_mirror() if resolve_host else None),
        base_registry_image=s["base_registry_image"],
        pythons=tuple(s["pythons"]),
        apt_packages=tuple(s["apt_packages"]),
        pip_env=pip_env,
        cache_dir=Path(os.path.expanduser(s["cache_dir"])),
        repo_url_template=s["repo_url_template"],
        repos_dir=repos_dir,
        limits=Limits(cpus=float(s["cpus"]), memory_mb=int(s["memory_mb"]),
                      pids=int(s["pids"]), timeout_s=int(s["test_timeout_s"])),
        build_timeout_s=int(s["build_timeout_s"]),
        network=s["network"],
        reruns=int(s["reruns"]),
        label_network=s["label_network"],
        as_of_min_age_days=int(s["as_of_min_age_days"]),
        repair_max_rungs=int(s["repair_max_rungs"]), survey_parallel=int(s["survey_parallel"]),
        reuse_envs=bool(s["reuse_envs"]), llm_repair=dict(s["llm_repair"]), registry=s["registry"],
    )


def base_spec(settings: Settings, python: str) -> BaseSpec:
    reg = settings.base_registry_image.format(python=python) if settings.base_registry_image else None
    return BaseSpec(python=python, apt_packages=tuple(settings.apt_packages), registry_image=reg)


def build_base(client, settings: Settings, python: str, force: bool = False) -> dict:
    """The base image on ``client``'s engine: there already, pulled from ``settings.registry``, or built (and
    pushed there); ``res["registry"]`` says which (:func:`crucible.sandbox.registry.shared_image`)."""
    spec = base_spec(settings, python)
    with shared_image(client, registry_of(settings.registry, settings.cache_dir / "locks"), spec.image,
                      spec.key) as note:
        res = ensure_base(client, spec, mirror=settings.debian_mirror, ca_bundle=settings.ca_bundle,
                          pip_env=settings.pip_env, force=force)
    return {**res, "registry": note}


def plan_env(settings: Settings, tree: Path, name: str, recipe: tuple[dict, dict] | None = None,
             date: str | None = None) -> EnvSpec:
    """The env spec for the tree at ``tree``: with ``recipe`` = (recipe, inputs) given (e.g. SWE-bench's, see
    ``crucible.pipelines.swe.swebench_specs``) that one, else the inferred recipe with any per-repo override, resolved
    as of ``date`` (the source's, ``crucible.sandbox.asof.source_date``) when it is older than
    ``sandbox.as_of_min_age_days``. ``inputs`` maps the files the recipe read to their sha256; both are
    hashed into the env key."""
    if recipe is not None:
        rec, inputs = recipe
    else:
        override = load_override(name, settings.repos_dir)
        rec, inputs = infer_recipe(tree, settings.pythons, override,
                                   as_of=default_as_of(date, settings.as_of_min_age_days), source_date=date)
    return EnvSpec(base=base_spec(settings, rec["python"]), recipe=rec, inputs=dict(inputs), name=name)


def build_env(client, settings: Settings, tree: Path, name: str, force: bool = False,
              recipe: tuple[dict, dict] | None = None, date: str | None = None) -> tuple[EnvSpec, dict]:
    """Base (built or reused) + env (built or reused) for the exported tree ``tree`` (no .git needed);
    ``recipe`` and ``date`` as in :func:`plan_env`. With ``sandbox.reuse_envs`` a new env is first built on top
    of the nearest earlier env of the same ``name`` (``res["reused_from"]``; :mod:`crucible.sandbox.reuse`)."""
    spec = plan_env(settings, tree, name, recipe, date)
    base = build_base(client, settings, spec.base.python)
    with shared_image(client, registry_of(settings.registry, settings.cache_dir / "locks"), spec.image,
                      spec.key) as note:
        res = ensure_env(client, spec, tree, ca_bundle=settings.ca_bundle, pip_env=settings.pip_env,
                         timeout_s=settings.build_timeout_s, force=force, date=date, reuse=settings.reuse_envs)
    res["registry"] = note
    res["base"] = base
    return spec, res


def exported(checkout_path: Path):
    """Context manager: a temporary copy of the checkout's HEAD tree without .git."""
    class _Ctx:
        def __enter__(self):
            self._tmp = tempfile.TemporaryDirectory(prefix="crucible-tree-")
            return export_tree(checkout_path, Path(self._tmp.name) / "tree")

        def __exit__(self, *exc):
            self._tmp.cleanup()

    return _Ctx()


def test_env(client, settings: Settings, spec: EnvSpec, tree: Path, *, selection=None, network=None,
             k: int | None = None) -> dict:
    return run_suite(client, spec.image, tree, spec.recipe, k=k or settings.reruns, limits=settings.limits,
                     network=network or settings.network, label_network=settings.label_network,
                     selection=selection)
