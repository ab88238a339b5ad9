"""Workspaces: where an agent's commands run and its files are read and written. Anything with
``root``, ``exec(command, timeout_s) -> (exit_code, output)``, ``read_file(path) -> bytes`` and
``write_file(path, data)`` is one. The real one is :class:`ContainerWorkspace` over a
:class:`crucible.sandbox.container.Sandbox` (an env image, the repo at /testbed, no network, limits);
:class:`LocalWorkspace` runs in a host directory (unit tests only).

:func:`init_baseline` snapshots the starting tree in a throwaway git repo; :func:`workspace_diff` is the
change against it (caches and build outputs never enter the diff).
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

GIT = "git -c user.name=agent -c user.email=agent@localhost"
# caches and build outputs never enter the diff (a pytest run would otherwise add __pycache__ under tests/)
EXCLUDES = ("__pycache__/", "*.pyc", ".pytest_cache/", "*.egg-info/", ".eggs/", "build/")
_EXCL = " ".join(shlex.quote(e) for e in EXCLUDES)
BASELINE = (f"cd {{root}} && export HOME=/tmp && git init -q && printf '%s\\n' {_EXCL} >> .git/info/exclude"
            f" && {GIT} add -A && {GIT} commit -q -m base --no-gpg-sign --allow-empty")
DIFF = f"cd {{root}} && export HOME=/tmp && {GIT} add -A && {GIT} diff --cached --no-color HEAD"


class LocalWorkspace:
    """A host directory as a workspace (tests; no isolation)."""

    def __init__(self, root: Path):
        self.root = str(root)

    def exec(self, command: str, timeout_s: int = 60) -> tuple[int, str]:
        try:
            p = subprocess.run(["bash", "-c", command], cwd=self.root, capture_output=True, text=True,
                               timeout=timeout_s)
            return p.returncode, p.stdout + p.stderr
        except subprocess.TimeoutExpired as exc:
            return 124, f"{(exc.stdout or b'')!s}\n[timed out after {timeout_s}s]"

    def read_file(self, path: str) -> bytes:
        return Path(path).read_bytes()

    def write_file(self, path: str, data: bytes) -> None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


class ContainerWorkspace:
    """A long-lived sandbox container (``/testbed``)."""

    def __init__(self, sandbox):
        self.sandbox = sandbox
        self.root = sandbox.workdir

    def exec(self, command: str, timeout_s: int = 60) -> tuple[int, str]:
        code, out = self.sandbox.exec(command, timeout_s=timeout_s)
        if code == 124:
            out += f"\n[timed out after {timeout_s}s]"
        return code, out

    def read_file(self, path: str) -> bytes:
        return self.sandbox.get_file(path)

    def write_file(self, path: str, data: bytes) -> None:
        self.sandbox.put_file(path, data)


def init_baseline(ws) -> None:
    code, out = ws.exec(BASELINE.format(root=shlex.quote(ws.root)), 120)
    if code != 0:
        raise RuntimeError(f"could not snapshot the starting tree: {out[-500:]}")


def workspace_diff(ws) -> str:
    code, out = ws.exec(DIFF.format(root=shlex.quote(ws.root)), 120)
    if code != 0:
        raise RuntimeError(f"git diff failed: {out[-500:]}")
    return out
