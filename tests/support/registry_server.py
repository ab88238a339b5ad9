"""Debian's ``docker-registry`` (the CNCF Distribution registry) serving on loopback with a filesystem store,
for engine-pool tests. Docker treats 127.0.0.0/8 as an insecure registry, so no TLS and no daemon setting.
``apt-get install docker-registry`` provides it (.ci/run installs it)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

BINARY = "docker-registry"
CONFIG = """version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RegistryServer:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, wait_s: float = 20.0) -> RegistryServer:
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        cfg = self.root / "config.yml"
        cfg.write_text(CONFIG.format(root=self.root / "data", port=self.port))
        logf = open(self.root / "registry.log", "ab")  # noqa: SIM115 - the server's for its lifetime
        self.proc = subprocess.Popen([BINARY, "serve", str(cfg)], stdout=logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{self.address}/v2/", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"docker-registry did not answer on {self.address}")

    def repositories(self) -> list[str]:
        import json

        with urllib.request.urlopen(f"http://{self.address}/v2/_catalog", timeout=5) as r:
            return json.loads(r.read())["repositories"]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def has_registry() -> bool:
    return shutil.which(BINARY) is not None
