"""A container to run things in: non-root, CPU/memory/pids limits, a wall-clock timeout that kills it,
network modes ``none``, ``internal`` (a Docker network created with ``--internal``: no route out,
connections to unroutable addresses time out as on a real network; one network per run with
:func:`internal_network`, containers on it cannot reach each other) and ``bridge`` (builds only). On an
internal network Docker's embedded DNS answers nothing for outside names (each lookup hangs 10 s), so
containers there get a resolv.conf naming 127.0.0.1, where nothing listens: lookups fail at once, as under
``none``. The repo is copied in as a tar stream (no git clone inside)."""

from __future__ import annotations

import hashlib
import logging
import os
import shlex
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import docker
import requests

from crucible.pipelines.store import fsio
from crucible.sandbox.tarballs import tar_bytes, tar_tree, untar_files

log = logging.getLogger(__name__)

INTERNAL_NETWORK = "crucible-internal"  # the shared one (mode ``internal``); per-run ones add a suffix
# on an internal network: a resolver that refuses at once (nothing listens on the container's 127.0.0.1:53)
RESOLV_REFUSE = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
NO_ICC = {"com.docker.network.bridge.enable_icc": "false"}
NETWORK_MODES = ("none", "internal", "bridge")
SANDBOX_LABEL = "crucible.sandbox"
# test containers: no capabilities, no privilege gain through setuid binaries
HARDENING = {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges"]}


@dataclass(frozen=True)
class Limits:
    cpus: float = 2.0
    memory_mb: int = 4096
    pids: int = 1024
    timeout_s: int = 600

    def __post_init__(self):
        if self.cpus <= 0 or self.memory_mb < 64 or self.pids < 16 or self.timeout_s <= 0:
            raise ValueError(f"bad sandbox limits {self}: need cpus > 0, memory_mb >= 64, pids >= 16, timeout_s > 0")


@dataclass
class RunOutcome:
    exit_code: int | None
    log: str
    seconds: float
    timed_out: bool = False
    oom_killed: bool = False
    daemon_error: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    rw_bytes: int = 0


def container_rw_bytes(client, container_id: str) -> int:
    """Bytes in the container's writable layer (``docker inspect --size``; the SDK lacks the flag)."""
    api = client.api
    res = api._result(api._get(api._url("/containers/{0}/json", container_id), params={"size": 1}), True)
    return int(res.get("SizeRw") or 0)


def is_internal(network: str) -> bool:
    return network == "internal" or network.startswith(INTERNAL_NETWORK + "-")


def internal_network_name(run_id: str) -> str:
    return f"{INTERNAL_NETWORK}-{hashlib.sha256(run_id.encode()).hexdigest()[:12]}"


def ensure_network(client, mode: str) -> str:
    """The docker ``network_mode``/network name for a mode (``none``, ``bridge``, ``internal``) or a per-run
    internal network's name (:func:`internal_network_name`); creates an internal network when missing."""
    if mode in ("none", "bridge"):
        return mode
    if not is_internal(mode):
        raise ValueError(f"network mode {mode!r}: allowed {', '.join(NETWORK_MODES)} or a {INTERNAL_NETWORK}-* name")

    name = INTERNAL_NETWORK if mode == "internal" else mode
    try:
        client.networks.get(name)
    except docker.errors.NotFound:
        try:
            client.networks.create(name, driver="bridge", internal=True, options=NO_ICC,
                                   labels={SANDBOX_LABEL: "network"}, check_duplicate=True)
        except docker.errors.APIError:  # another worker created it first
            client.networks.get(name)
    return name


def remove_network(client, name: str) -> bool:
    """Remove a per-run network; False (logged) when it is gone already or still has containers."""

    try:
        client.networks.get(name).remove()
        return True
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        log.warning("network %s not removed: %s", name, exc)
        return False


@contextmanager
def internal_network(client, run_id: str):
    """A fresh internal network for one run (no egress, no traffic between its containers), removed after."""
    name = ensure_network(client, internal_network_name(run_id))
    try:
        yield name
    finally:
        remove_network(client, name)


def resolv_refuse_file() -> str:
    """A host file with :data:`RESOLV_REFUSE` (bind-mounted read-only; the daemon must be local)."""
    path = Path(tempfile.gettempdir()) / "crucible-resolv-refuse.conf"
    if not path.exists() or path.read_text() != RESOLV_REFUSE:
        fsio.write_bytes_atomic(str(path), RESOLV_REFUSE.encode(), mode=0o644)
    return str(path)


def network_kwargs(client, network: str) -> dict:
    """``containers.create`` arguments for a network mode: the network, and on an internal one the
    fail-fast resolver."""
    net = ensure_network(client, network)
    if not is_internal(net):
        return {"network_mode": net}
    return {"network_mode": net, "volumes": {resolv_refuse_file(): {"bind": "/etc/resolv.conf", "mode": "ro"}}}


def run_in_container(client, image: str, script: str, *, tree: Path | None = None, workdir: str = "/testbed",
                     limits: Limits = Limits(), network: str = "none", user: str = "1000:1000",
                     env: dict | None = None, fetch: tuple[str, ...] = (), include_git: bool = False,
                     keep: bool = False) -> RunOutcome:
    """Run ``bash -c script`` once in a fresh container from ``image`` with ``tree`` copied to ``workdir``.

    The container is killed at ``limits.timeout_s``; ``fetch`` names absolute paths whose files are read
    back after it stopped. Daemon errors are returned (``daemon_error``), not raised, so callers can
    classify them as infrastructure failures."""

    t0 = time.monotonic()
    container = None
    try:
        container = client.containers.create(
            image, ["bash", "-c", script], user=user, working_dir=workdir, environment=env or {},
            **network_kwargs(client, network), nano_cpus=int(limits.cpus * 1e9), mem_limit=f"{limits.memory_mb}m",
            memswap_limit=f"{limits.memory_mb}m", pids_limit=limits.pids, labels={SANDBOX_LABEL: "run"},
            detach=True, init=True, **HARDENING,
        )
        if tree is not None:
            container.put_archive("/", tar_tree(tree, workdir.lstrip("/"), include_git=include_git))
        container.start()
        timed_out = False
        try:
            status = container.wait(timeout=limits.timeout_s)
            code = status.get("StatusCode")
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            timed_out = True
            container.kill()
            code = None
        seconds = time.monotonic() - t0
        container.reload()
        state = container.attrs.get("State", {})
        text = container.logs().decode(errors="replace")
        files = {}
        for path in fetch:
            try:
                stream, _ = container.get_archive(path)
                for name, data in untar_files(stream).items():
                    files[f"{os.path.dirname(path)}/{name}"] = data
            except docker.errors.NotFound:
                pass
        rw = 0
        try:
            rw = container_rw_bytes(client, container.id)
        except docker.errors.APIError:
            pass
        return RunOutcome(exit_code=code, log=text, seconds=seconds, timed_out=timed_out,
                          oom_killed=bool(state.get("OOMKilled")), files=files, rw_bytes=rw)
    except docker.errors.DockerException as exc:
        return RunOutcome(exit_code=None, log="", seconds=time.monotonic() - t0,
                          daemon_error=f"{exc.__class__.__name__}: {exc}")
    finally:
        if container is not None and not keep:
            try:
                container.remove(force=True)
            except docker.errors.DockerException:
                pass


class Sandbox:
    """A long-lived container (``sleep infinity``) for interactive use, e.g. an agent's shell: ``exec``
    runs a command with a per-command timeout (coreutils ``timeout`` inside, the container keeps its
    limits); ``close`` removes it."""

    def __init__(self, client, image: str, *, tree: Path | None = None, workdir: str = "/testbed",
                 limits: Limits = Limits(), network: str = "none", user: str = "1000:1000",
                 include_git: bool = True, env: dict | None = None):
        self.client = client
        self.workdir = workdir
        self.user = user
        self.container = client.containers.create(
            image, ["sleep", "infinity"], user=user, working_dir=workdir, environment=env or {},
            **network_kwargs(client, network),
            nano_cpus=int(limits.cpus * 1e9), mem_limit=f"{limits.memory_mb}m", memswap_limit=f"{limits.memory_mb}m",
            pids_limit=limits.pids, labels={SANDBOX_LABEL: "session"}, detach=True, init=True, **HARDENING,
        )
        if tree is not None:
            self.container.put_archive("/", tar_tree(tree, workdir.lstrip("/"), include_git=include_git))
        self.container.start()

    def exec(self, command: str, timeout_s: int = 120, max_bytes: int = 1_000_000) -> tuple[int, str]:
        """Run ``command``; the output is streamed and at most ``max_bytes`` kept (the first 3/4 and the
        last 1/4, with a note), so a command printing without end costs no host memory."""
        api = self.client.api
        ex = api.exec_create(self.container.id, ["timeout", "-k", "5", str(timeout_s), "bash", "-c", command],
                             user=self.user, workdir=self.workdir, stdout=True, stderr=True)
        head, tail, total = bytearray(), bytearray(), 0
        keep_head, keep_tail = max_bytes * 3 // 4, max_bytes - max_bytes * 3 // 4
        for chunk in api.exec_start(ex["Id"], stream=True, demux=False):
            total += len(chunk)
            room = keep_head - len(head)
            if room > 0:
                head += chunk[:room]
                chunk = chunk[room:]
            if chunk:
                tail += chunk
                if len(tail) > keep_tail:
                    del tail[:len(tail) - keep_tail]
        code = api.exec_inspect(ex["Id"]).get("ExitCode")
        out = bytes(head)
        if total > len(head) + len(tail):
            out += f"\n[... {total - len(head) - len(tail)} bytes of output dropped ...]\n".encode()
        out += bytes(tail)
        return (code if code is not None else -1), out.decode(errors="replace")

    def put_file(self, path: str, data: bytes) -> None:
        """Write a file of any size (a tar stream, no argv), owned by the sandbox user. The directory is made
        by the sandbox user first and must be writable by it (so no path the user could not write)."""
        d, name = os.path.split(path)
        if not name:
            raise ValueError(f"put_file: {path!r} names no file")
        # an existing file keeps its mode (an executable module rewritten whole must not show as a mode change)
        code, out = self.exec(f"mkdir -p -- {shlex.quote(d or '.')} && cd -- {shlex.quote(d or '.')} && test -w . "
                              f"&& pwd -P && {{ stat -c %a -- {shlex.quote(name)} 2>/dev/null || echo 644; }}", 60)
        if code != 0:
            raise PermissionError(f"put_file: cannot write in {d!r}: {out.strip()[-300:]}")
        where, mode = out.strip().splitlines()[-2:]
        self.container.put_archive(where, tar_bytes({name: data}, mode=int(mode, 8) & 0o777))

    def get_file(self, path: str) -> bytes:
        stream, _ = self.container.get_archive(path)
        files = untar_files(stream)
        return next(iter(files.values())) if files else b""

    def close(self) -> None:
        try:
            self.container.remove(force=True)
        except Exception:  # already gone
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
