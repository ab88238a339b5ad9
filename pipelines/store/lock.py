"""One writer per store: an exclusive lock on ``<out_dir>/_writer.lock``.

Local folders use ``fcntl.flock`` on that file: the kernel releases it when the holder exits or is killed,
so a dead holder's lock is taken over at once (its details, left in the file, are logged). The file holds
the holder's host, pid, start time and purpose, and a refused writer is told who holds it.

Object stores (``gs://``, ``s3://``) have no locks, and their writers need none: commits there are
lock-free (:mod:`crucible.pipelines.store.lockfree`), so a pipeline run takes nothing. The maintenance commands
(``crucible compact``, ``store check --quarantine``, ``store restore``) hold the same file as a *lease*:
refused while it names a live process on this host, or another host within ``LEASE_TTL_S``; otherwise
taken over. It is advisory: it keeps two maintenance commands apart, not a race of two starts.

The lock is held per process and re-entrant: :func:`acquire` keeps it until the process ends (a pipeline
run) or :func:`release`; :func:`writer` holds it for a ``with`` block (``crucible compact``, ``store check
--quarantine``). Beam workers that commit shards for a run do not take it: the run's driver holds it.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import logging
import os
import socket
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass

from crucible.pipelines.store import fsio
from crucible.pipelines.store.manifests import StoreError

log = logging.getLogger(__name__)

LOCK_FILE = "_writer.lock"
LEASE_TTL_S = 24 * 3600.0


class StoreLocked(StoreError):
    """Another live writer holds the store."""


@dataclass
class _Held:
    fd: int | None
    depth: int
    info: dict


_HELD: dict[str, _Held] = {}


def _key(out_dir: str) -> str:
    return os.path.realpath(fsio._local(out_dir)) if fsio.is_local(out_dir) else out_dir.rstrip("/")


def lock_path(out_dir: str) -> str:
    return fsio.join(out_dir, LOCK_FILE)


def _my_info(purpose: str) -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "started_ts": time.time(), "purpose": purpose, "argv": " ".join(sys.argv)[:300]}


def describe(info: dict | None) -> str:
    if not info:
        return "an unknown process (no holder details in the lock file)"
    return (f"{info.get('purpose') or 'a writer'} (pid {info.get('pid')} on {info.get('host')}, "
            f"since {info.get('started_at')}; command: {info.get('argv') or '?'})")


def _parse(data: bytes) -> dict | None:
    try:
        info = json.loads(data.decode("utf-8"))
        return info if isinstance(info, dict) else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def holder(out_dir: str) -> dict | None:
    """Details of the last (or current) holder, as written in the lock file; None if there is none."""
    try:
        return _parse(fsio.read_bytes(lock_path(out_dir)))
    except (FileNotFoundError, OSError):
        return None


def pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _refused(out_dir: str, info: dict | None) -> StoreLocked:
    return StoreLocked(f"{out_dir} is in use by {describe(info)}. One writer per store: wait for it to finish "
                       "or stop it (a lock whose holder has exited is taken over automatically), or write to "
                       "another --out")


def _acquire_local(out_dir: str, purpose: str) -> _Held:
    path = fsio._local(lock_path(out_dir))
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise _refused(out_dir, holder(out_dir)) from None
    except BaseException:
        os.close(fd)
        raise
    prev = _parse(os.pread(fd, 1 << 16, 0))
    if prev and prev.get("pid") and (prev.get("host") != socket.gethostname() or prev.get("pid") != os.getpid()):
        log.info("taking over the store lock of %s in %s (no longer running)", describe(prev), out_dir)
    info = _my_info(purpose)
    data = json.dumps(info, sort_keys=True).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)
    return _Held(fd, 0, info)


def _acquire_remote(out_dir: str, purpose: str) -> _Held:
    prev = holder(out_dir)
    if prev:
        same_host = prev.get("host") == socket.gethostname()
        age = time.time() - float(prev.get("started_ts") or 0)
        if (same_host and pid_alive(prev.get("pid")) and prev.get("pid") != os.getpid()) or \
                (not same_host and age < LEASE_TTL_S):
            raise _refused(out_dir, prev)
        log.info("taking over the store lease of %s in %s", describe(prev), out_dir)
    info = _my_info(purpose)
    fsio.write_bytes_atomic(lock_path(out_dir), json.dumps(info, sort_keys=True).encode())
    time.sleep(0.5)  # two starts at once: the last write wins, the other one sees it and backs off
    now = holder(out_dir)
    if not now or now.get("pid") != info["pid"] or now.get("host") != info["host"]:
        raise _refused(out_dir, now)
    return _Held(None, 0, info)


def acquire(out_dir: str, purpose: str = "a pipeline run") -> dict:
    """Hold the store's writer lock for this process (re-entrant). Raises :class:`StoreLocked`."""
    key = _key(out_dir)
    held = _HELD.get(key)
    if held is None:
        held = _acquire_local(out_dir, purpose) if fsio.is_local(out_dir) else _acquire_remote(out_dir, purpose)
        _HELD[key] = held
    held.depth += 1
    return held.info


def held(out_dir: str) -> bool:
    return _key(out_dir) in _HELD


def release(out_dir: str, force: bool = False) -> None:
    """Undo one :func:`acquire` (all of them with ``force``); the lock goes when none is left."""
    key = _key(out_dir)
    h = _HELD.get(key)
    if h is None:
        return
    h.depth = 0 if force else h.depth - 1
    if h.depth > 0:
        return
    del _HELD[key]
    if h.fd is not None:
        os.close(h.fd)  # closing the descriptor releases the flock; the file stays (holder history)
    else:
        try:
            fsio.delete([lock_path(out_dir)])
        except Exception as exc:  # noqa: BLE001 - best effort: an expired lease is taken over anyway
            log.warning("could not remove the store lease %s: %s", lock_path(out_dir), exc)


def busy(out_dir: str) -> dict | None:
    """The holder's details while *another* live process holds the writer lock, else None. Writes nothing
    (a shared, non-blocking probe of the lock file): ``store check`` tells a writer's commit in flight
    from a lost manifest with it."""
    if held(out_dir):
        return None
    if not fsio.is_local(out_dir):
        info = holder(out_dir)
        if not info:
            return None
        same_host = info.get("host") == socket.gethostname()
        age = time.time() - float(info.get("started_ts") or 0)
        return info if (pid_alive(info.get("pid")) if same_host else age < LEASE_TTL_S) else None

    try:
        fd = os.open(fsio._local(lock_path(out_dir)), os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    except BlockingIOError:
        return holder(out_dir) or {}
    finally:
        os.close(fd)


@contextmanager
def writer(out_dir: str, purpose: str):
    """Hold the writer lock for a block."""
    acquire(out_dir, purpose)
    try:
        yield
    finally:
        release(out_dir)


@atexit.register
def _release_all() -> None:
    for key in list(_HELD):
        h = _HELD[key]
        if h.fd is None:
            release(key, force=True)
