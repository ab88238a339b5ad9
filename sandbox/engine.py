"""Find or start a Docker engine.

``DOCKER_HOST`` is honoured (through ``docker.from_env``). Where no engine answers,
:func:`ensure_engine` installs Debian's Docker package with apt and starts ``dockerd`` when it
runs as root with apt available, and otherwise raises :class:`EngineUnavailable` whose message
says how to get one. Nothing happens at import time.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import docker

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "/var/run/docker.sock"
DEBIAN_DOCKER_PACKAGE = "docker" + ".io"  # the Debian package name (dockerd + CLI), not a registry
DOCKERD_LOG = "/var/log/crucible-dockerd.log"
HOW_TO_GET_ONE = (
    "no Docker engine answers. Fix one of: start your engine (e.g. `sudo systemctl start docker`); "
    "point DOCKER_HOST at a running one (e.g. DOCKER_HOST=unix:///run/user/1000/docker.sock for rootless); "
    "or run `crucible sandbox engine` as root on a Debian/Ubuntu machine, which installs Debian's Docker package with apt "
    "and starts dockerd"
)


class EngineUnavailable(RuntimeError):
    """No engine answers and none can be started here; the message says how to get one."""


@dataclass(frozen=True)
class EngineInfo:
    host: str
    server_version: str
    storage_driver: str
    started_by_us: bool

    def as_dict(self) -> dict:
        return {"host": self.host, "server_version": self.server_version,
                "storage_driver": self.storage_driver, "started_by_us": self.started_by_us}


def engine_host(environ: dict | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"


def connect(timeout: int = 120):
    """A docker SDK client for the engine named by DOCKER_HOST (or the default socket); raises
    :class:`EngineUnavailable` if it does not answer a ping."""

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
        return client
    except Exception as exc:  # docker raises DockerException, requests errors, FileNotFoundError
        raise EngineUnavailable(f"{engine_host()}: {HOW_TO_GET_ONE} (cause: {exc.__class__.__name__}: {exc})") \
            from None


def can_start_engine(is_root: bool, has_apt: bool, has_dockerd: bool, docker_host_set: bool) -> tuple[bool, str]:
    """Pure decision: may we install/start an engine here? Returns (ok, reason)."""
    if docker_host_set:
        return False, "DOCKER_HOST is set, so the engine it names must be started by its owner"
    if not is_root:
        return False, "not root, so dockerd cannot be installed or started"
    if not has_dockerd and not has_apt:
        return False, "dockerd is not installed and apt-get is not available to install it"
    return True, "root" + (" with dockerd installed" if has_dockerd else " with apt-get")


def _run(argv: list[str], timeout: int = 900) -> None:
    log.info("running %s", " ".join(argv))
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if proc.returncode != 0:
        raise EngineUnavailable(f"`{' '.join(argv)}` failed with exit {proc.returncode}: {proc.stderr[-2000:]}")


def install_engine() -> None:
    """apt-get install Debian's Docker package (plus debootstrap, used to bootstrap base images offline)."""
    _run(["apt-get", "update"])
    _run(["apt-get", "install", "-y", "--no-install-recommends", DEBIAN_DOCKER_PACKAGE, "debootstrap"])


def start_dockerd(wait_s: float = 60.0, log_path: str = DOCKERD_LOG) -> None:
    """Start dockerd detached, wait until its socket answers."""

    logf = open(log_path, "ab")  # noqa: SIM115 - handed to the daemon for its lifetime
    subprocess.Popen(["dockerd"], stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                     start_new_session=True)
    deadline = time.monotonic() + wait_s
    last = None
    while time.monotonic() < deadline:
        if Path(DEFAULT_SOCKET).exists():
            try:
                docker.DockerClient(base_url=f"unix://{DEFAULT_SOCKET}", timeout=5).ping()
                return
            except Exception as exc:  # still starting
                last = exc
        time.sleep(0.5)
    raise EngineUnavailable(f"dockerd did not answer within {wait_s:.0f}s (last error: {last}); see {log_path}")


def ensure_engine(allow_start: bool = True):
    """Return ``(client, EngineInfo)`` for a running engine, starting one if allowed and possible."""
    started = False
    try:
        client = connect()
    except EngineUnavailable as first:
        ok, why = can_start_engine(
            is_root=hasattr(os, "geteuid") and os.geteuid() == 0,
            has_apt=shutil.which("apt-get") is not None,
            has_dockerd=shutil.which("dockerd") is not None,
            docker_host_set=bool(os.environ.get("DOCKER_HOST")),
        )
        if not allow_start or not ok:
            raise EngineUnavailable(f"{first} [cannot start one here: {why}]") from None
        if shutil.which("dockerd") is None or shutil.which("debootstrap") is None:
            install_engine()
        start_dockerd()
        client = connect()
        started = True
    info = client.info()
    return client, EngineInfo(
        host=engine_host(), server_version=str(client.version().get("Version", "?")),
        storage_driver=str(info.get("Driver", "?")), started_by_us=started,
    )
