"""A second Docker engine beside the machine's own, for engine-pool tests: ``dockerd`` with its own
``--data-root``, ``--exec-root``, ``--pidfile`` and unix socket, and its own bridge interface (made here,
``crucible-br<N>``, no iptables rules): it touches nothing of the first engine. Never ``--bridge none``:
dockerd then deletes the host's ``docker0`` interface, the first engine's default bridge (builds on it fail
with "could not find bridge docker0" until it is made again). Without iptables rules its containers have no
route out: images reach it by pull from a registry on loopback, its test containers run with network ``none``.
Needs root, ``ip`` and Debian's ``dockerd`` (``crucible sandbox engine`` installs it)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path


class SecondEngine:
    def __init__(self, root: Path):
        # the exec root holds containerd's sockets: a short path (unix sockets are limited to 108 bytes)
        self.exec_root = Path(tempfile.mkdtemp(prefix="crd-", dir="/tmp"))
        self.root = Path(root)
        self.data_root = self.root / "data"
        self.pidfile = self.root / "dockerd.pid"
        self.socket = self.exec_root / "docker.sock"
        self.log_path = self.root / "dockerd.log"
        self.proc: subprocess.Popen | None = None
        self.bridge = f"crucible-br{os.getpid() % 10000}"
        self.bridge_cidr = f"10.213.{os.getpid() % 250}.1/24"

    def _make_bridge(self) -> None:
        if subprocess.run(["ip", "link", "show", self.bridge], capture_output=True).returncode == 0:
            return
        for argv in (["ip", "link", "add", self.bridge, "type", "bridge"],
                     ["ip", "addr", "add", self.bridge_cidr, "dev", self.bridge],
                     ["ip", "link", "set", self.bridge, "up"]):
            subprocess.run(argv, check=True, capture_output=True)

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def start(self, wait_s: float = 60.0) -> SecondEngine:
        import docker

        self.data_root.mkdir(parents=True, exist_ok=True)
        self._make_bridge()
        argv = ["dockerd", "--data-root", str(self.data_root), "--exec-root", str(self.exec_root),
                "--pidfile", str(self.pidfile), "-H", self.host, "--bridge", self.bridge, "--iptables=false",
                "--ip-masq=false"]
        logf = open(self.log_path, "ab")  # noqa: SIM115 - the daemon's for its lifetime
        self.proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline, last = time.monotonic() + wait_s, None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                docker.DockerClient(base_url=self.host, timeout=5).ping()
                return self
            except Exception as exc:  # noqa: BLE001 - still starting
                last = exc
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"second dockerd did not answer ({last}); log: {self.log_text()[-2000:]}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill_api(self) -> None:
        """The engine stops answering at once: dockerd SIGKILLed (its socket refuses connections; its managed
        containerd and containers live on until :meth:`stop`, which starts dockerd again to shut them down)."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.killed = True

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (dockerd stops its containers and its containerd), SIGKILL after ``timeout_s``; an engine
        :meth:`kill_api` killed is started again first so that it cleans up after itself."""
        if getattr(self, "killed", False):
            self.killed = False
            try:
                self.start()
            except RuntimeError:
                return
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def remove(self) -> None:
        self.stop()
        subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True)
        # dockerd bind-mounts its data root onto itself (private propagation) and leaves it mounted
        subprocess.run(["umount", "--lazy", str(self.data_root)], capture_output=True)
        shutil.rmtree(self.exec_root, ignore_errors=True)
        shutil.rmtree(self.data_root, ignore_errors=True)


def can_run_second_engine() -> str | None:
    """Why a second engine cannot run here (None: it can)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "a second dockerd needs root"
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed (the second engine's bridge is made with it)"
    if shutil.which("dockerd") is None:
        return "dockerd is not installed (crucible sandbox engine installs it)"
    return None
