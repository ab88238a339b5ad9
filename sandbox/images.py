"""Base and env images, named by a hash of everything that went into them.

- **Base** (:class:`BaseSpec`): Debian release + Python + git/build tools + a venv at /opt/venv and a
  non-root ``sandbox`` user (uid 1000). Taken from a configured registry image when one is set and
  pullable; otherwise bootstrapped locally with ``debootstrap --variant=minbase`` from the Debian mirror
  the host's apt uses, then ``docker import``.
- **Env** (:class:`EnvSpec`): base + the repo's dependencies installed by a recipe (see
  ``crucible.sandbox.recipes``; built by :mod:`crucible.sandbox.envbuild`). The key hashes the base key, the recipe and the contents of every file the
  recipe read (requirements, setup.cfg, pyproject, tox.ini ...). The repo itself is removed from
  /testbed before commit; instances copy it in again.

Layers are built with ``docker run`` + ``docker commit`` (no BuildKit). Every image carries labels
``crucible.kind``, ``crucible.key`` and ``crucible.spec`` so ``df`` and ``gc`` can account for them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import docker

from crucible.sandbox.tarballs import SANDBOX_UID, tar_bytes, tar_tree

log = logging.getLogger(__name__)

KEY_VERSION = 2  # bump when the base build procedure changes in a way that changes the image
ENV_KEY_VERSION = 4  # same for env images (the install script wrapper, cleanup, labels)
VENV = "/opt/venv"
WORKDIR = "/testbed"
CA_IN_CONTAINER = "/tmp/crucible-ca-bundle.pem"  # copied in per build step, deleted before commit
DEBIAN_FOR_PYTHON = {"3.9": "bullseye", "3.11": "bookworm", "3.13": "trixie"}
DEFAULT_APT_PACKAGES = ("python3", "python3-venv", "python3-dev", "git", "ca-certificates", "gcc",
                        "libc6-dev", "make", "patch")
DEFAULT_BASE_PIP = ("pip", "setuptools", "wheel")
# Debian's venv lists a pkg-resources 0.0.0 in every freeze (bullseye): the base's, never a build's
DEBIAN_VENV_DISTS = ("pkg-resources",)
IMAGE_REPO = "crucible"


class BuildError(RuntimeError):
    """An image build failed; ``log_tail`` holds the end of the build log."""

    def __init__(self, message: str, log_tail: str = ""):
        super().__init__(message)
        self.log_tail = log_tail


def stable_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class BaseSpec:
    python: str
    distro: str = ""
    apt_packages: tuple[str, ...] = DEFAULT_APT_PACKAGES
    pip_packages: tuple[str, ...] = DEFAULT_BASE_PIP
    registry_image: str | None = None  # e.g. "python:3.11-slim" where a registry is reachable

    def __post_init__(self):
        if not self.distro:
            if self.python not in DEBIAN_FOR_PYTHON:
                raise ValueError(f"python {self.python!r}: no Debian release known for it; "
                                 f"use one of {sorted(DEBIAN_FOR_PYTHON)} or set distro")
            object.__setattr__(self, "distro", DEBIAN_FOR_PYTHON[self.python])

    @property
    def key(self) -> str:
        return stable_hash({"v": KEY_VERSION, "kind": "base", **asdict(self)})[:16]

    @property
    def image(self) -> str:
        return f"{IMAGE_REPO}/base:py{self.python}-{self.key}"


@dataclass(frozen=True)
class EnvSpec:
    base: BaseSpec
    recipe: dict
    inputs: dict = field(default_factory=dict)  # path -> sha256 of content of every file the recipe read
    name: str = "repo"

    @property
    def key(self) -> str:
        return stable_hash({"v": ENV_KEY_VERSION, "kind": "env", "base": self.base.key, "recipe": self.recipe,
                            "inputs": self.inputs})[:16]

    @property
    def image(self) -> str:
        safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in self.name.lower())[:60] or "repo"
        return f"{IMAGE_REPO}/env-{safe}:py{self.base.python}-{self.key}"


def base_dists(base: BaseSpec) -> tuple[str, ...]:
    """Distributions every env of ``base`` has from the base itself (not from its build)."""
    return tuple(base.pip_packages) + DEBIAN_VENV_DISTS


def image_exists(client, name: str) -> bool:
    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False


def build_env_vars(ca_bundle: str | None, pip_env: dict | None) -> tuple[dict, dict]:
    """(environment, files) for a build container: the CA bundle is copied in (not mounted, so nothing of it
    stays in the committed image) and named in every variable pip/requests/openssl/git read; pip index
    settings are passed through."""
    env = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", "PIP_DEFAULT_TIMEOUT": "120"}
    env.update(pip_env or {})
    vols = {}
    if ca_bundle:
        vols[CA_IN_CONTAINER] = Path(ca_bundle).read_bytes()
        for k in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO"):
            env[k] = CA_IN_CONTAINER
    return env, vols


def run_build_step(client, image: str, script: str, *, user: str = "root", env: dict | None = None,
                   volumes: dict[str, bytes] | None = None, tree: Path | None = None, timeout_s: int = 1800,
                   commit_as: str | None = None, commit_changes: list[str] | None = None,
                   labels: dict | None = None, log_labels=None) -> str:
    """Run ``bash -c script`` in a fresh bridge-networked container from ``image`` (with ``tree`` copied
    to /testbed first), then commit it as ``commit_as``. Returns the build log. Raises BuildError."""
    files = dict(volumes or {})
    if files:
        script = f"trap 'rm -f {' '.join(files)}' EXIT\n" + script
    container = client.containers.create(
        image, ["bash", "-c", script], user=user, environment=env or {},
        working_dir="/", network_mode="bridge", detach=True,
    )
    try:
        for path, data in files.items():
            d, name = os.path.split(path)
            container.put_archive(d, tar_bytes({name: data}))
        if tree is not None:
            container.put_archive("/", tar_tree(tree, WORKDIR.lstrip("/"), uid=SANDBOX_UID))
        container.start()
        try:
            status = container.wait(timeout=timeout_s)
        except Exception as exc:  # requests ReadTimeout / ConnectionError
            container.kill()
            raise BuildError(f"build step timed out after {timeout_s}s ({exc.__class__.__name__})",
                             container.logs().decode(errors="replace")[-4000:]) from None
        text = container.logs().decode(errors="replace")
        if status.get("StatusCode") != 0:
            raise BuildError(f"build step exited {status.get('StatusCode')}", text[-20000:])
        if commit_as:
            repo, _, tag = commit_as.rpartition(":")
            changes = list(commit_changes or [])
            all_labels = {**(labels or {}), **(log_labels(text) if log_labels else {})}
            for k, v in all_labels.items():
                changes.append(f"LABEL {k}={json.dumps(v)}")
            container.commit(repository=repo, tag=tag, changes=changes)
        return text
    finally:
        container.remove(force=True)


def _debootstrap(spec: BaseSpec, mirror: str, workdir: Path) -> Path:
    if shutil.which("debootstrap") is None:
        raise BuildError("debootstrap is not installed; run `crucible sandbox engine` as root (installs it) "
                         "or `apt-get install debootstrap`, or set sandbox.base_registry_image")
    root = workdir / "rootfs"
    argv = ["debootstrap", "--variant=minbase", "--include=" + ",".join(spec.apt_packages), spec.distro,
            str(root), mirror]
    log.info("bootstrapping %s (python %s) from %s", spec.distro, spec.python, mirror)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise BuildError(f"debootstrap {spec.distro} from {mirror} failed (exit {proc.returncode})",
                         (proc.stdout + proc.stderr)[-4000:])
    # drop apt lists and caches: they are not needed inside and only cost disk
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
        p = root / sub
        if p.is_dir():
            for child in p.iterdir():
                if child.is_file():
                    child.unlink()
    tarball = workdir / "rootfs.tar"
    proc = subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(tarball), "."],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError("tar of the bootstrapped rootfs failed", proc.stderr[-2000:])
    return tarball


def base_setup_script(spec: BaseSpec) -> str:
    pip = " ".join(spec.pip_packages)
    return "\n".join([
        "set -eux",
        f"groupadd -g {SANDBOX_UID} sandbox || true",
        f"useradd -m -u {SANDBOX_UID} -g {SANDBOX_UID} -s /bin/bash sandbox || true",
        "PY=$(command -v python3)",
        f"$PY -m venv {VENV}",
        f"{VENV}/bin/python -m pip install -U {pip}",
        f"mkdir -p {WORKDIR} /out",
        f"chown -R {SANDBOX_UID}:{SANDBOX_UID} {VENV} {WORKDIR} /out",
        f"{VENV}/bin/python -c 'import sys; assert sys.version.startswith(\"{spec.python}\"), sys.version'",
        "rm -rf /root/.cache",
    ])


def apt_script(packages: list[str]) -> str:
    return "\n".join([
        "set -eux", "export DEBIAN_FRONTEND=noninteractive", "apt-get update",
        "apt-get install -y --no-install-recommends " + " ".join(shlex.quote(p) for p in packages),
        "rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb",
    ])


def base_changes() -> list[str]:
    return [f"ENV PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            f"ENV VIRTUAL_ENV={VENV}", "ENV PYTHONDONTWRITEBYTECODE=", "ENV LANG=C.UTF-8",
            f"WORKDIR {WORKDIR}"]


def ensure_base(client, spec: BaseSpec, *, mirror: str | None, ca_bundle: str | None, pip_env: dict | None = None,
                force: bool = False) -> dict:
    """Build the base image unless an image with its key exists. Returns a result dict with
    ``image``, ``key``, ``cache_hit``, ``seconds``, ``source``."""
    t0 = time.monotonic()
    if not force and image_exists(client, spec.image):
        return {"image": spec.image, "key": spec.key, "cache_hit": True, "seconds": time.monotonic() - t0,
                "source": "cache"}
    labels = {"crucible.kind": "base", "crucible.key": spec.key, "crucible.spec": json.dumps(asdict(spec))}
    env, vols = build_env_vars(ca_bundle, pip_env)
    stage = f"{IMAGE_REPO}/stage:base-{spec.key}"
    source = None
    if spec.registry_image:
        try:
            client.images.pull(spec.registry_image)
            client.images.get(spec.registry_image).tag(stage)
            source = f"registry:{spec.registry_image}"
        except Exception as exc:  # no registry reachable: fall back to bootstrapping
            log.warning("cannot pull %s (%s); bootstrapping locally", spec.registry_image, exc)
    if source is None:
        if not mirror:
            raise BuildError("no Debian mirror: none found in the host's apt sources; set sandbox.debian_mirror")
        with tempfile.TemporaryDirectory(prefix="crucible-base-") as tmp:
            tarball = _debootstrap(spec, mirror, Path(tmp))
            repo, _, tag = stage.rpartition(":")
            client.api.import_image_from_file(str(tarball), repository=repo, tag=tag)
        source = f"debootstrap:{spec.distro}"
    try:
        run_build_step(client, stage, base_setup_script(spec), env=env, volumes=vols, commit_as=spec.image,
                       commit_changes=base_changes(), labels=labels)
    finally:
        try:
            client.images.remove(stage, noprune=False)
        except Exception:  # the committed image still references its layers; removal only drops the tag
            pass
    return {"image": spec.image, "key": spec.key, "cache_hit": False, "seconds": time.monotonic() - t0,
            "source": source}
