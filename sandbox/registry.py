"""Images built once, pulled everywhere: base and env images go to an OCI registry (``sandbox.registry``,
``host:port``) under their content-addressed names (``<registry>/crucible/env-x:py3.11-<key>``, the key stays
the identity) right after their build, and an engine that lacks one pulls it instead of building it.

A build lock per image key (``fcntl.flock`` on ``<lock_dir>/<key>.lock``) keeps two workers of one machine
from building the same image at once on two engines: the second waits, then pulls what the first pushed.
Workers on other machines share only the registry: two of them may build one key at the same moment (the
same key is the same recipe, so either push serves); docs/sandbox.md says how to avoid it (one lock dir on a
shared file system).
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import docker

log = logging.getLogger(__name__)


class RegistryError(RuntimeError):
    """A push the registry refused (the build stays on its engine; other engines build it then)."""


@dataclass(frozen=True)
class Registry:
    address: str  # host:port, e.g. 127.0.0.1:5000
    lock_dir: Path  # build locks, one file per image key

    def ref(self, image: str) -> tuple[str, str]:
        """(repository, tag) of ``image`` in the registry."""
        repo, _, tag = image.rpartition(":")
        return f"{self.address}/{repo}", tag


def registry_of(address: str | None, lock_dir: Path) -> Registry | None:
    return Registry(address.rstrip("/"), Path(lock_dir)) if address else None


def has_image(client, image: str) -> bool:
    try:
        client.images.get(image)
        return True
    except docker.errors.ImageNotFound:
        return False


def pull(client, reg: Registry, image: str) -> bool:
    """Pull ``image`` from the registry and tag it under its own name; False when the registry lacks it."""
    repo, tag = reg.ref(image)
    try:
        client.images.pull(repo, tag=tag)
    except (docker.errors.NotFound, docker.errors.ImageNotFound):
        return False
    except docker.errors.APIError as exc:  # "manifest unknown" comes as a 500 from some daemons
        if "manifest unknown" in str(exc) or "not found" in str(exc).lower():
            return False
        raise
    own_repo, _, own_tag = image.rpartition(":")
    client.images.get(f"{repo}:{tag}").tag(own_repo, own_tag)
    _untag(client, f"{repo}:{tag}")
    return True


def _untag(client, ref: str) -> None:
    """Drop the registry-named tag (the image keeps its own name; ``sandbox df``/``gc`` see one name)."""
    try:
        client.images.remove(ref, noprune=True)
    except docker.errors.APIError as exc:
        log.debug("tag %s kept: %s", ref, exc)


def push(client, reg: Registry, image: str) -> None:
    """Tag ``image`` for the registry and push it; raises :class:`RegistryError` on a refused push."""
    repo, tag = reg.ref(image)
    client.images.get(image).tag(repo, tag)
    for line in client.images.push(repo, tag=tag, stream=True, decode=True):
        if isinstance(line, dict) and line.get("error"):
            _untag(client, f"{repo}:{tag}")
            raise RegistryError(f"push of {image} to {reg.address} failed: {line['error']}")
    _untag(client, f"{repo}:{tag}")


def in_registry(client, reg: Registry, image: str) -> bool:
    """Does the registry hold ``image``? (asked through the engine, which is what pulls from it)"""
    repo, tag = reg.ref(image)
    try:
        client.images.get_registry_data(f"{repo}:{tag}")
        return True
    except (docker.errors.NotFound, docker.errors.APIError):
        return False


def publish(client, reg: Registry, image: str) -> dict:
    """An image this engine had before (built without a registry, or by an earlier run): pushed unless the
    registry holds it, so other engines pull it rather than build it."""
    if in_registry(client, reg, image):
        return {"pushed": False}
    try:
        push(client, reg, image)
        return {"pushed": True}
    except (RegistryError, docker.errors.APIError) as exc:
        log.warning("%s", exc)
        return {"pushed": False, "push_error": str(exc)[:500]}


@contextmanager
def build_lock(lock_dir: Path, key: str):
    """Exclusive per-key lock across the processes (and threads: one open file each) of this machine."""
    Path(lock_dir).mkdir(parents=True, exist_ok=True)
    fd = os.open(str(Path(lock_dir) / f"{key}.lock"), os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextmanager
def shared_image(client, reg: Registry | None, image: str, key: str):
    """Around the build of ``image`` (key ``key``) on ``client``'s engine: yields a note dict. Without a
    registry, or with the image already there, nothing happens. Otherwise the image is pulled when the registry
    has it (``note["pulled"]``: the body then finds it and builds nothing); else, under the key's build lock
    (and after a second look in the registry), the body builds it and it is pushed (``note["pushed"]``)."""
    note = {"pulled": False, "pushed": False, "lock_wait_s": 0.0}
    if reg is None:
        yield note
        return
    if has_image(client, image):
        note.update(publish(client, reg, image))
        yield note
        return
    if pull(client, reg, image):
        note["pulled"] = True
        yield note
        return
    t0 = time.monotonic()
    with build_lock(reg.lock_dir, key):
        note["lock_wait_s"] = round(time.monotonic() - t0, 3)
        if not has_image(client, image) and pull(client, reg, image):  # built and pushed while we waited
            note["pulled"] = True
            yield note
            return
        yield note
        if has_image(client, image):
            try:
                push(client, reg, image)
                note["pushed"] = True
            except (RegistryError, docker.errors.APIError) as exc:
                log.warning("%s", exc)
                note["push_error"] = str(exc)[:500]
