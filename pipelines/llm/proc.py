"""Child server processes: stop politely, then for sure."""

from __future__ import annotations

import subprocess


def terminate(proc: subprocess.Popen | None, timeout: float) -> None:
    """SIGTERM, wait ``timeout`` seconds, then SIGKILL; a no-op for a missing or finished process."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)
