"""Small file-system layer for the store: atomic writes, listing, reading.

Local paths use a temp file in the same directory, fsync and ``os.replace`` (atomic on
POSIX). Other schemes (``gs://``, ``s3://``...) go through Beam's ``FileSystems``, whose
object-store writes become visible only on close, so the same sink code runs on
Dataflow or Flink unchanged. Outside a pipeline (``crucible stats --out s3://...``) FileSystems
gets empty options, so the S3 client takes its endpoint and keys from the usual ``AWS_*``
environment variables (``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``...).

:func:`put_if_absent` is the one create-if-absent write (the lock-free commit protocol of object
stores, :mod:`crucible.pipelines.store.lockfree`): a hard link of a temp file locally, an S3 conditional put
(``If-None-Match: *``) on ``s3://``, and write-then-verify elsewhere (``gs://`` through FileSystems,
or an S3 server without conditional writes).
"""

from __future__ import annotations

import glob as _glob
import io
import logging
import os
import re
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)


def is_local(path: str) -> bool:
    return "://" not in str(path) or str(path).startswith("file://")


def _local(path: str) -> str:
    return str(path)[len("file://"):] if str(path).startswith("file://") else str(path)


def join(*parts: str) -> str:
    head, *rest = [str(p) for p in parts]
    if is_local(head):
        return str(Path(_local(head)).joinpath(*rest))
    return "/".join([head.rstrip("/"), *[r.strip("/") for r in rest]])


def makedirs(path: str) -> None:
    if is_local(path):
        os.makedirs(_local(path), exist_ok=True)


def fsync_dir(path: str) -> None:
    """Make a rename or a new file in ``path`` durable (POSIX: the directory entry lives in the directory)."""
    try:
        fd = os.open(_local(path), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # not supported here (some file systems, Windows): best effort
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


TMP_SUFFIX = ".tmp"


def temp_prefix(name: str) -> str:
    """Temp files of an atomic write of ``name`` start with this (``recover`` removes stale ones)."""
    return f".{name}."


def write_atomic(path: str, write: Callable[[BinaryIO], object], mode: int | None = None) -> None:
    """Write ``path`` through ``write(file)`` so that readers see the old file or the whole new one
    (a Parquet writer streams into it: ``lambda f: pq.write_table(table, f)``). ``mode``: the new local
    file's permission bits (unset: mkstemp's 0600; shared caches give 0o644)."""
    if is_local(path):
        p = Path(_local(path))
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(p.name), suffix=f".{uuid.uuid4().hex[:8]}{TMP_SUFFIX}", dir=p.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                if mode is not None:
                    os.fchmod(fh.fileno(), mode)
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, p)
            fsync_dir(str(p.parent))
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        return
    if _is_s3(path):
        buf = io.BytesIO()
        write(buf)
        _s3_client().put_object(**_s3_loc(path), Body=buf.getvalue())
        return
    with _fs().create(path) as fh:
        write(fh)


def write_bytes_atomic(path: str, data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    write_atomic(path, lambda fh: fh.write(data), mode)


def read_bytes(path: str) -> bytes:
    if is_local(path):
        return Path(_local(path)).read_bytes()
    if _is_s3(path):
        from botocore.exceptions import ClientError

        try:
            return _s3_client().get_object(**_s3_loc(path))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(path) from None
            raise
    try:
        with _fs().open(path) as fh:
            return fh.read()
    except Exception as exc:  # noqa: BLE001 - Beam raises its own error types for a missing object
        if not _fs().exists(path):
            raise FileNotFoundError(path) from exc
        raise


def glob(pattern: str) -> list[str]:
    if is_local(pattern):
        return sorted(_glob.glob(_local(pattern)))
    return sorted(m.path for m in _match(pattern))


def exists(path: str) -> bool:
    if is_local(path):
        return Path(_local(path)).exists()
    # an object store has no folders: a "folder" exists when objects lie under its prefix
    if _is_s3(path) and any(m.path == path for m in _match(path)):
        return True
    return (not _is_s3(path) and _fs().exists(path)) or bool(_match(path.rstrip("/") + "/**", limit=1))


def delete(paths: list[str]) -> None:
    if not paths:
        return
    local = [p for p in paths if is_local(p)]
    for p in local:
        try:
            os.unlink(_local(p))
        except FileNotFoundError:
            pass
    remote = [p for p in paths if not is_local(p)]
    s3 = [p for p in remote if _is_s3(p)]
    for p in s3:
        _s3_client().delete_object(**_s3_loc(p))
    if len(s3) < len(remote):
        _fs().delete([p for p in remote if not _is_s3(p)])


def stat(path: str) -> tuple[int, int] | None:
    """(size, mtime_ns) of a file, or None when it is missing (remote: the object's last update)."""
    if is_local(path):
        try:
            st = os.stat(_local(path))
        except FileNotFoundError:
            return None
        return st.st_size, st.st_mtime_ns
    res = [m for m in _match(path) if m.path == path]
    return (res[0].size_in_bytes, int((res[0].last_updated_in_seconds or 0) * 1e9)) if res else None


def rename(src: str, dst: str) -> None:
    """Move ``src`` to ``dst`` (used to quarantine damaged files)."""
    if is_local(src):
        Path(_local(dst)).parent.mkdir(parents=True, exist_ok=True)
        os.replace(_local(src), _local(dst))
        fsync_dir(str(Path(_local(src)).parent))
        fsync_dir(str(Path(_local(dst)).parent))
        return
    if _is_s3(src) and _is_s3(dst):  # copy, then delete the source (an object store has no rename)
        c = _s3_client()
        loc = _s3_loc(src)
        c.copy_object(**_s3_loc(dst), CopySource={"Bucket": loc["Bucket"], "Key": loc["Key"]})
        c.delete_object(**loc)
        return
    _fs().rename([src], [dst])


# --- object stores --------------------------------------------------------------------------------------------

def _fs():
    """Beam's ``FileSystems``, with (empty) pipeline options set when no pipeline set them: its S3 client then
    reads the ``AWS_*`` environment variables. Inside a pipeline the run's own options (``--s3_endpoint_url``...)
    stay in force. Beam is imported here, on the first non-local path: ``sandbox/`` and the CLI write local files
    through this module, and loading Beam's filesystems takes over a second and logs a warning."""
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    if FileSystems._pipeline_options is None:
        FileSystems.set_options(PipelineOptions([]))
    return FileSystems


def _match(pattern: str, limit: int | None = None) -> list:
    """FileMetadata of the objects matching ``pattern`` (none: []). ``*`` stays within one folder, ``**``
    crosses folders (Beam's rules)."""
    if _is_s3(pattern):
        return _match_s3(pattern, limit)
    try:
        res = _fs().match([pattern], limits=None if limit is None else [limit])[0]
    except Exception as exc:  # noqa: BLE001 - Beam wraps "nothing matched" in BeamIOError
        if "No files found" in str(exc) or "NoSuchKey" in str(exc) or "Not Found" in str(exc):
            return []
        raise
    return list(res.metadata_list)


_S3: dict[int, object] = {}


def _is_s3(path: str) -> bool:
    """``s3://`` paths go to one cached boto3 client configured from Beam's S3Options (Beam's own S3IO builds a
    boto3 session per call: about 0.5 s each, measured); every other scheme goes through FileSystems."""
    return str(path).startswith("s3://")


def _s3_loc(path: str) -> dict:
    bucket, _, key = str(path)[len("s3://"):].partition("/")
    return {"Bucket": bucket, "Key": key}


class _Meta:
    __slots__ = ("path", "size_in_bytes", "last_updated_in_seconds")

    def __init__(self, path: str, size: int, updated: float):
        self.path, self.size_in_bytes, self.last_updated_in_seconds = path, size, updated


def _match_s3(pattern: str, limit: int | None) -> list:
    loc = _s3_loc(pattern)
    wild = re.search(r"[*?\[]", loc["Key"])
    prefix = loc["Key"][:wild.start()] if wild else loc["Key"]
    rx = re.compile("".join(".*" if t == "**" else "[^/]*" if t == "*" else "[^/]" if t == "?" else re.escape(t)
                            for t in re.split(r"(\*\*|\*|\?)", loc["Key"]) if t))
    out = []
    pages = _s3_client().get_paginator("list_objects_v2").paginate(Bucket=loc["Bucket"], Prefix=prefix)
    for page in pages:
        for o in page.get("Contents", []):
            if rx.fullmatch(o["Key"]):
                out.append(_Meta(f"s3://{loc['Bucket']}/{o['Key']}", o["Size"], o["LastModified"].timestamp()))
                if limit is not None and len(out) >= limit:
                    return out
    return out


def _s3_client():
    """A boto3 S3 client configured like Beam's own (the same S3Options, else the ``AWS_*`` environment)."""
    from apache_beam.options.pipeline_options import S3Options

    opts = _fs()._pipeline_options
    key = id(opts)
    if key not in _S3:
        import boto3

        o = opts.view_as(S3Options)
        _S3.clear()
        _S3[key] = boto3.session.Session().client(
            "s3", region_name=o.s3_region_name, endpoint_url=o.s3_endpoint_url, use_ssl=not o.s3_disable_ssl,
            verify=o.s3_verify, aws_access_key_id=o.s3_access_key_id, aws_secret_access_key=o.s3_secret_access_key,
            aws_session_token=o.s3_session_token)
    return _S3[key]


def _put_if_absent_s3(path: str, data: bytes) -> bool | None:
    """S3 conditional put: True written, False present already, None when the server refuses the condition."""
    from botocore.exceptions import ClientError

    try:
        _s3_client().put_object(**_s3_loc(path), Body=data, IfNoneMatch="*")
        return True
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code"))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 412 or code == "PreconditionFailed":
            return False
        if status == 409 or code == "ConditionalRequestConflict":  # a racing put of the same key: it won
            return False
        if status == 501 or code in ("NotImplemented", "InvalidArgument"):
            return None
        raise


def put_if_absent(path: str, data: bytes) -> bool:
    """Create ``path`` holding ``data`` unless it exists: True when this call created it, False when it was
    there already (whoever wrote it; the caller reads what is there). Never overwrites a file that existed
    before the call. Local: a hard link of a fully written temp file (atomic, refused when the name exists).
    ``s3://``: a conditional put (``If-None-Match: *``). Elsewhere, or an S3 server without conditional
    writes: write-then-verify (absent, write, read back: a racer writing the same name in the same moment
    can still win after the check; documented in docs/store.md)."""
    if is_local(path):
        p = Path(_local(path))
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.exists():
            return False
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(p.name), suffix=f".{uuid.uuid4().hex[:8]}{TMP_SUFFIX}", dir=p.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, p)
            except FileExistsError:
                return False
            fsync_dir(str(p.parent))
            return True
        finally:
            os.unlink(tmp)
    if str(path).startswith("s3://"):
        done = _put_if_absent_s3(path, data)
        if done is not None:
            return done
        log.debug("no conditional writes on %s: write-then-verify", path)
    if exists(path):
        return False
    write_bytes_atomic(path, data)
    return read_bytes(path) == data
