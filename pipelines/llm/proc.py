"""Child server processes: a base for servers run as a child (output kept for errors), and stopping them
politely, then for sure."""

from __future__ import annotations

import os
import subprocess
import tempfile
from abc import ABC, abstractmethod


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


class ChildServer(ABC):
    """A server in a child process, its output kept in a temp file (for the error message when it does not come
    up). Subclasses set ``base_url``, ``startup_timeout_s`` and call :meth:`spawn` from ``start()``."""

    base_url: str
    startup_timeout_s: float
    stop_timeout_s: float = 10.0
    proc: subprocess.Popen | None = None
    _log = None

    def spawn(self, argv, **popen_kw) -> str:
        """Start ``argv`` and wait until the server answers; a server that does not is stopped, and the
        error carries the tail of its output."""
        from pipelines.llm.serve import wait_for_health

        self._log = tempfile.TemporaryFile(mode="w+b")
        self.proc = subprocess.Popen(list(argv), stdout=self._log, stderr=subprocess.STDOUT, **popen_kw)
        try:
            wait_for_health(self.base_url, self.startup_timeout_s, proc=self.proc, log_tail=self.log_tail)
        except BaseException:
            self.stop()
            raise
        return self.base_url

    def log_tail(self, n: int = 3000) -> str:
        if self._log is None:
            return ""
        self._log.seek(0, os.SEEK_END)
        self._log.seek(max(0, self._log.tell() - n))
        return self._log.read().decode("utf-8", "replace")

    def stop(self, timeout: float | None = None) -> None:
        terminate(self.proc, self.stop_timeout_s if timeout is None else timeout)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    @abstractmethod
    def start(self) -> str:
        """Start the server (usually through :meth:`spawn`); returns its base URL."""

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
