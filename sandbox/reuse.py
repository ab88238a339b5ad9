"""Env reuse: build a new commit's env on top of the nearest earlier env of the same repo.

When no image with an env spec's key exists, :func:`crucible.sandbox.envbuild.ensure_env` first looks for a *parent*:
an env image of the same repo name and base (same Python, distro, base packages) whose recipe is
compatible, made for a source dated no later than this one. The same install script then runs on the
parent instead of the bare base, so pip skips every requirement the parent already satisfies; the result
is committed under the new key with the label ``crucible.reused_from``. A failed install on top (or a
failed ``pip check`` there) falls back to the fresh build from the base.

:func:`choose_parent` is pure, over dicts of image labels (:func:`env_candidates` makes them from Docker).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

from crucible.sandbox.recipes import MARK

# each reuse adds a layer (two with an apt stage) and may carry packages the new commit does not need:
# a chain stops after this many envs built on top of one another and the next build starts from the base
REUSE_MAX_DEPTH = 5


def day(date: str | None) -> str | None:
    """The ISO day of a source date (``2023-05-22`` or a full timestamp); None for no date."""
    text = str(date or "").strip()
    return text[:10] if len(text) >= 10 else None


def recipe_of(labels: Mapping) -> dict:
    try:
        rec = json.loads(labels.get("crucible.spec") or "{}")
    except ValueError:
        return {}
    return rec if isinstance(rec, dict) else {}


def source_day(labels: Mapping) -> str | None:
    """The source date an env image was built for: its ``crucible.source_date`` label, else (images made
    before the label existed) the inferred recipe's ``sources.source_date``."""
    if labels.get("crucible.source_date"):
        return day(labels["crucible.source_date"])
    return day((recipe_of(labels).get("sources") or {}).get("source_date"))


def compatible(parent: dict, recipe: Mapping) -> bool:
    """Whether an env made by ``parent`` (a recipe) may be the starting point of one made by ``recipe``:
    the same Python and apt packages, and an as-of cut-off that cannot let in a release the new recipe's
    cut-off excludes: none for none (today's index), else the parent's cut-off no later than the new one."""
    if parent.get("python") != recipe.get("python"):
        return False
    if sorted(parent.get("apt_packages") or []) != sorted(recipe.get("apt_packages") or []):
        return False
    mine, theirs = recipe.get("as_of"), parent.get("as_of")
    if mine is None:
        return theirs is None
    return theirs is not None and str(theirs) <= str(mine)


def choose_parent(candidates: Iterable[Mapping], *, name: str, base_key: str, key: str, recipe: Mapping,
                  date: str | None, enabled: bool = True) -> dict | None:
    """The env image to build ``recipe`` on top of, or None (build from the base). ``candidates``: dicts with
    ``image`` (a tag or id), ``created`` (Docker's ISO time) and ``labels``. A parent has the same
    ``crucible.name`` and ``crucible.base``, another key, a :func:`compatible` recipe, a ``pip check`` that did
    not fail, fewer than :data:`REUSE_MAX_DEPTH` reuses behind it, and a source day no later than ``date``'s;
    of those, the nearest day, ties by the newest build. No ``date`` (nothing to order by) or not ``enabled``:
    None."""
    want = day(date)
    if not enabled or want is None:
        return None
    best, best_rank = None, None
    for c in candidates:
        labels = c.get("labels") or {}
        if labels.get("crucible.kind") != "env" or labels.get("crucible.name") != name:
            continue
        if labels.get("crucible.base") != base_key or labels.get("crucible.key") == key:
            continue
        if labels.get("crucible.pip_check") == "failed":
            continue
        try:
            depth = int(labels.get("crucible.reuse_depth") or 0)
        except ValueError:
            continue
        if depth >= REUSE_MAX_DEPTH:
            continue
        got = source_day(labels)
        if got is None or got > want or not compatible(recipe_of(labels), recipe):
            continue
        rank = (got, str(c.get("created") or ""))
        if best_rank is None or rank > best_rank:
            best, best_rank = dict(c), rank
    return best


def env_candidates(client, name: str) -> list[dict]:
    """Env images of repo ``name`` as :func:`choose_parent` candidates (tagged ones only)."""
    out = []
    for img in client.images.list(filters={"label": ["crucible.kind=env", f"crucible.name={name}"]}):
        if not img.tags:
            continue
        out.append({"image": img.tags[0], "id": img.id, "created": img.attrs.get("Created", ""),
                    "labels": dict(img.labels or {})})
    return out


_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_MENTIONS = (
    re.compile(rf"^\s*Requirement already satisfied: ({_NAME})", re.M),
    re.compile(rf"^\s*Collecting ({_NAME})", re.M),
    re.compile(rf"^\s*({_NAME}) is already installed with the same version as the provided wheel", re.M),
    re.compile(r"^\s*Processing \S*?([A-Za-z0-9_.]+)-[^-/\s]+-[^/\s]*\.whl", re.M),
)


def canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def carried_packages(install_log: str, ignore: Iterable[str] = ()) -> list[str]:
    """Packages of the finished env (the install log's freeze lines) that no pip call of this build resolved,
    i.e. there only because the parent had them: what a fresh build would not have installed. Approximate:
    pip names every requirement it resolves, installed or already satisfied, so a package no line names was
    not asked for; ``ignore`` (the base's pip/setuptools/wheel) never counts. A suite's pytest that the
    parent supplied where the recipe's only source of it is the ``test-runner`` step's import check is
    listed too."""
    mentioned = {canon(m.group(1)) for rx in _MENTIONS for m in rx.finditer(install_log)}
    for m in re.finditer(r"^\s*Successfully installed (.+)$", install_log, re.M):
        mentioned.update(canon(tok.rsplit("-", 1)[0]) for tok in m.group(1).split())
    skip = {canon(n) for n in ignore}
    out = []
    for line in re.findall(rf"^{re.escape(MARK)} pkg (.+)$", install_log, re.M):  # name==ver, name @ url
        name = canon(re.split(r"==| @ ", line, maxsplit=1)[0].strip())
        if name and name not in mentioned and name not in skip and name not in out:
            out.append(name)
    return sorted(out)
