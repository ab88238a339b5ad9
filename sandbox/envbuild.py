"""Env images: a base plus the repo's dependencies, installed by its recipe (``crucible.sandbox.recipes``) as the
unprivileged sandbox user, then committed under the :class:`crucible.sandbox.images.EnvSpec` key. With reuse
(``sandbox.reuse_envs``) a missing env is first built on top of the nearest earlier env of the same repo
(:mod:`crucible.sandbox.reuse`), then from the base when that fails. ``pip check`` after the install is recorded
(label ``crucible.pip_check``); on top of a parent a broken set gives the build up."""

from __future__ import annotations

import json
import logging
import re
import shlex
import time
from pathlib import Path

import docker

from crucible.sandbox.images import (
    DEFAULT_BASE_PIP,
    IMAGE_REPO,
    WORKDIR,
    BuildError,
    EnvSpec,
    apt_script,
    base_dists,
    build_env_vars,
    image_exists,
    run_build_step,
)
from crucible.sandbox.recipes import MARK, install_script, parse_install_log
from crucible.sandbox.reuse import carried_packages, choose_parent, day, env_candidates
from crucible.sandbox.tarballs import SANDBOX_UID

log = logging.getLogger(__name__)


def ensure_env(client, spec: EnvSpec, repo_dir: Path, *, ca_bundle: str | None, pip_env: dict | None = None,
               timeout_s: int = 1800, force: bool = False, date: str | None = None, reuse: bool = False) -> dict:
    """Build the env image (deps installed by the recipe) unless one with its key exists. With ``reuse``,
    a missing image is first built on top of the nearest earlier env of the same repo (``date``: the
    source's; :mod:`crucible.sandbox.reuse`), falling back to the base when that install fails. The result has
    ``reused_from`` (the parent image, or None; on a cache hit the image's own label) and
    ``reuse_failed`` (why the install on top was given up, or None) and ``carried`` (packages there only
    because the parent had them, :func:`crucible.sandbox.reuse.carried_packages`; label ``crucible.carried``)."""
    t0 = time.monotonic()
    if not force and not image_exists(client, spec.image):
        # same key under another repo name (e.g. an sdist and its git mirror): reuse it under this name too
        same = client.images.list(filters={"label": [f"crucible.key={spec.key}", "crucible.kind=env"]})
        if same:
            repo, _, tag = spec.image.rpartition(":")
            same[0].tag(repo, tag)
    if not force and image_exists(client, spec.image):
        img = client.images.get(spec.image)
        steps = json.loads(img.labels.get("crucible.steps", "[]"))
        return {"image": spec.image, "key": spec.key, "cache_hit": True, "seconds": time.monotonic() - t0,
                "steps": steps, "reused_from": img.labels.get("crucible.reused_from") or None,
                "reuse_failed": None, "carried": json.loads(img.labels.get("crucible.carried") or "[]")}
    if not image_exists(client, spec.base.image):
        raise BuildError(f"base image {spec.base.image} is missing; run `crucible sandbox base --python "
                         f"{spec.base.python}` first")
    parent, reuse_failed = None, None
    if reuse:
        parent = choose_parent(env_candidates(client, spec.name), name=spec.name, base_key=spec.base.key,
                               key=spec.key, recipe=spec.recipe, date=date)
    if parent is not None:
        try:
            container_log = _build_env(client, spec, repo_dir, ca_bundle, pip_env, timeout_s, date, parent)
        except (BuildError, docker.errors.APIError) as exc:  # APIError: the parent went away meanwhile
            # the last lines that are not markers: pip check's complaints, or the failed step's error
            tail = [ln for ln in getattr(exc, "log_tail", "").splitlines() if ln.strip() and not ln.startswith(MARK)]
            reuse_failed = f"{exc}: " + " | ".join(ln[:200] for ln in tail[-3:])
            log.warning("env %s on top of %s failed (%s); building from the base", spec.image, parent["image"],
                        reuse_failed)
            parent = None
    if parent is None:
        container_log = _build_env(client, spec, repo_dir, ca_bundle, pip_env, timeout_s, date, None)
    return {"image": spec.image, "key": spec.key, "cache_hit": False, "seconds": time.monotonic() - t0,
            "steps": parse_install_log(container_log), "reused_from": parent["image"] if parent else None,
            "reuse_failed": reuse_failed,
            "carried": carried_packages(container_log, base_dists(spec.base)) if parent else [],
            "log_tail": container_log[-3000:], "log": container_log}


REUSE_PIP_ENV = {"PIP_UPGRADE": "1", "PIP_UPGRADE_STRATEGY": "eager"}  # a build on top of a parent
PIP_CHECK_EXIT = 4  # a build on top of a parent whose ``pip check`` fails is given up (exit code)


def pip_check_script(strict: bool, ignore: tuple[str, ...] = DEFAULT_BASE_PIP) -> str:
    """``pip check`` after the install: its verdict is a marker (label ``crucible.pip_check``); ``strict`` (a
    build on top of a parent) exits :data:`PIP_CHECK_EXIT` on a broken set, which a fresh build would not have
    had from stale parent packages. Complaints of the base's own packages (``ignore``: pip, setuptools, wheel,
    upgraded to today's releases in the base, e.g. ``wheel 0.48.0 has requirement packaging>=24.0`` in an env
    resolved as of 2021) are not the env's and do not count."""
    fail = f"exit {PIP_CHECK_EXIT}" if strict else "true"
    names = "|".join(re.escape(n) for n in ignore) or "$^"
    return (f"crucible_pc=$(pip check 2>&1); echo \"$crucible_pc\"\n"
            f"crucible_bad=$(printf '%s\\n' \"$crucible_pc\" | grep -v -i -E {shlex.quote(f'^({names}) ')} "
            "| grep -v -E '^(No broken requirements found|[[:space:]]*$)' || true)\n"
            f"if [ -z \"$crucible_bad\" ]; then echo '{MARK} pip_check ok'; "
            f"else echo '{MARK} pip_check failed'; {fail}; fi\n")


def parse_pip_check(text: str) -> str:
    found = re.findall(rf"^{re.escape(MARK)} pip_check (ok|failed)$", text, re.M)
    return found[-1] if found else "unknown"


def _build_env(client, spec: EnvSpec, repo_dir: Path, ca_bundle, pip_env, timeout_s: int, date: str | None,
               parent: dict | None) -> str:
    """One env build from the base (``parent`` None) or on top of ``parent``; returns the install log."""
    env, vols = build_env_vars(ca_bundle, pip_env)
    env["HOME"] = "/home/sandbox"
    if parent is not None:
        # every pip call of the build resolves as a fresh build would (the newest versions its requirements and
        # as-of cut-off allow, dependencies included) and downloads only what differs from the parent's; without
        # it a parent's older pin that still satisfies is kept (measured: requests 2.27.1 on 2.25.1's env kept
        # pytest 3.5.1, whose run never started, where the fresh env's pytest 6.2.5 passed 536 tests)
        env.update(REUSE_PIP_ENV)
    script = (install_script(spec.recipe) + pip_check_script(parent is not None, spec.base.pip_packages)
              + f"rm -rf {WORKDIR}/* {WORKDIR}/.[!.]* /home/sandbox/.cache || true\n")
    start_image = parent.get("id") or parent["image"] if parent else spec.base.image
    stage, install_tree = None, repo_dir
    apt = list(spec.recipe.get("apt_packages") or [])
    pre = list(spec.recipe.get("pre_install") or [])
    if apt or pre:
        # system packages a repo needs (from a configs/repos override) and a recipe's root commands
        # (SWE-bench's pre_install: apt-get, seds on the tree), as root first; with pre_install the tree is
        # copied in here and the install step works on that edited tree
        stage = f"{IMAGE_REPO}/stage:env-{spec.key}"
        root_script = apt_script(apt) if apt else "set -eux"
        if pre:
            root_script += "\nexport DEBIAN_FRONTEND=noninteractive\ncd " + WORKDIR + "\n" + "\n".join(pre)
            # files root made in the tree must stay writable for the unprivileged install that follows
            root_script += f"\nchown -R {SANDBOX_UID}:{SANDBOX_UID} {WORKDIR}"
        run_build_step(client, start_image, root_script, env=env, volumes=vols, timeout_s=timeout_s,
                       tree=repo_dir if pre else None, commit_as=stage)
        start_image = stage
        if pre:
            install_tree = None
    depth = int(parent["labels"].get("crucible.reuse_depth") or 0) + 1 if parent else 0
    labels = {"crucible.kind": "env", "crucible.key": spec.key, "crucible.base": spec.base.key,
              "crucible.name": spec.name, "crucible.spec": json.dumps(spec.recipe, sort_keys=True),
              "crucible.source_date": day(date) or "", "crucible.reused_from": parent["image"] if parent else "",
              "crucible.reuse_depth": str(depth)}
    # the install log's markers say which rung of each ladder worked; they are kept as a label
    try:
        return run_build_step(
            client, start_image, script, user=f"{SANDBOX_UID}:{SANDBOX_UID}", env=env, volumes=vols,
            tree=install_tree, timeout_s=timeout_s, commit_as=spec.image,
            commit_changes=[f"WORKDIR {WORKDIR}"], labels=labels,
            log_labels=lambda text: {"crucible.steps": json.dumps(parse_install_log(text)),
                                     "crucible.pip_check": parse_pip_check(text),
                                     "crucible.carried": json.dumps(carried_packages(text, base_dists(spec.base))
                                                                    if parent else [])},
        )
    except BuildError as exc:
        exc.steps = parse_install_log(exc.log_tail)
        raise
    finally:
        if stage:
            try:
                client.images.remove(stage)
            except Exception:  # only the tag goes; layers stay referenced by the env image
                pass
