"""Child server processes: a base for servers run as a child (output kept for errors), waiting until one
answers, and stopping them politely, then for sure."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable


class ServerStartError(RuntimeError):
    """A model server did not come up; the message carries the tail of its log."""


def wait_for_health(base_url: str, timeout_s: float, proc: subprocess.Popen | None = None,
                    log_tail: Callable[[], str] | None = None, interval_s: float = 0.5) -> dict:
    """Poll ``GET <base_url>/models`` until HTTP 200 (llama.cpp answers 503 while loading).

    Fails fast if ``proc`` exits, and after ``timeout_s``; both errors include the log tail.
    """
    url = base_url.rstrip("/") + "/models"
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while True:
        if proc is not None and proc.poll() is not None:
            tail = log_tail() if log_tail else ""
            raise ServerStartError(f"model server exited with code {proc.returncode} before {url} answered; "
                                   f"log tail:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 (loopback URL we built)
                if resp.status == 200:
                    return json.loads(resp.read() or b"{}")
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            last = str(getattr(exc, "reason", exc))
        if time.monotonic() >= deadline:
            tail = log_tail() if log_tail else ""
            raise ServerStartError(f"{url} did not answer within {timeout_s:.0f}s (last: {last}); log tail:\n{tail}")
        time.sleep(interval_s)


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
