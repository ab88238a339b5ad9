"""Beam's portable job service with an EXTERNAL worker pool, as the tests' stand-in for Flink and Dataflow
Runner v2 (both speak this contract: the Runner-API proto over the Job API, separate SDK-harness processes
over the Fn API); their job servers cannot be downloaded here.

:func:`portable_services` starts ``local_job_service_main`` and ``worker_pool_main`` (the venv first on PATH:
the pool starts ``python`` from PATH, and a harness that cannot import Beam hangs the job instead of failing
it) and yields a :class:`Portable`: the flags that submit to it, and the pool's worker processes seen so far.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def children(pid: int) -> set[int]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.add(int(d.name))
    return out


@dataclass
class Portable:
    job_port: int
    pool_port: int
    env: dict
    pool_pid: int
    workers: set[int] = field(default_factory=set)  # SDK harness processes the pool started

    def beam_args(self, workers: int = 2) -> list[str]:
        """Flags that submit to this job service; ``workers`` SDK harnesses from the EXTERNAL pool (the
        Python job service runs FnApiRunner, which asks the pool for ``direct_num_workers`` harnesses)."""
        return ["--runner=PortableRunner", f"--job_endpoint=localhost:{self.job_port}", "--environment_type=EXTERNAL",
                f"--environment_config=localhost:{self.pool_port}", f"--direct_num_workers={workers}",
                f"--sdk_worker_parallelism={workers}"]


def boot_executable(folder: Path) -> str:
    """An executable that runs :mod:`tests.support.portable_boot` (the pool's ``--container_executable``)."""
    path = Path(folder) / "crucible-sdk-boot"
    path.write_text(f"#!{sys.executable}\nimport sys\nfrom tests.support.portable_boot import main\nmain(sys.argv[1:])\n")
    path.chmod(0o755)
    return str(path)


@contextmanager
def portable_services(log_dir: Path | None = None, boot_dir: Path | None = None):
    """``boot_dir``: start each harness through :mod:`tests.support.portable_boot` (written there), which hands
    it the job's pipeline options as Flink's and Dataflow's boot does; without it, Beam's plain pool harness."""
    job_port, pool_port = free_port(), free_port()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
    out = (lambda name: open(log_dir / name, "wb")) if log_dir else (lambda name: subprocess.DEVNULL)  # noqa: SIM115
    boot = [f"--container_executable={boot_executable(boot_dir)}"] if boot_dir else []
    procs = [subprocess.Popen([sys.executable, "-m", "tests.support.portable_jobserver",
                               f"--port={job_port}"], env=env, stdout=out("job.log"), stderr=subprocess.STDOUT),
             subprocess.Popen([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                               f"--service_port={pool_port}", *boot], env=env, stdout=out("pool.log"),
                              stderr=subprocess.STDOUT)]
    svc = Portable(job_port, pool_port, env, procs[1].pid)
    stop = threading.Event()

    def watch():  # the pool's children come and go with each job: note every one seen
        while not stop.wait(0.2):
            svc.workers |= children(svc.pool_pid)

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        wait_port(job_port)
        wait_port(pool_port)
        watcher.start()
        yield svc
    finally:
        stop.set()
        for p in procs:
            p.kill()
            p.wait()
