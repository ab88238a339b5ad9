"""Content-addressed on-disk response cache.

Key = sha256 of the canonical JSON (sorted keys, no whitespace) of exactly the inputs that
determine a response: model, prompt template id + version, messages, tools, response format,
sorted sampling params, and the sample index. Anything else (endpoint URL, timeouts, retry
settings) is deliberately *not* in the key, so a rerun against another replica replays.

Layout: ``<dir>/<key[:2]>/<key>.json`` holding ``{"key", "request", "response"}``; each write goes
through :func:`crucible.pipelines.store.fsio.write_bytes_atomic` (a temp file in the same directory, then
``os.replace``), so concurrent writers (Beam workers, threads) never leave a torn file. A corrupt file is treated as a miss and overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from crucible.pipelines.store import fsio

KEY_VERSION = 1  # bump when the key recipe changes


def run_cache_dir(out_dir: str | os.PathLike | None, name: str) -> Path:
    """The local folder of a run's response cache ``name`` (``llm``, ``reward``): ``<out_dir>/cache/<name>``
    for a local store (``data/cache/<name>`` without one). A store in a bucket (``s3://``, ``gs://``) keeps its
    caches on the worker's disk, under ``$CRUCIBLE_CACHE_DIR`` (or ``~/.cache/crucible``) by the store's URL:
    ``Path("s3://b/p")`` would be the local folder ``s3:/b/p`` in the working directory."""
    out = str(out_dir) if out_dir is not None else "data"
    if fsio.is_local(out):
        return Path(out) / "cache" / name
    env = os.environ.get("CRUCIBLE_CACHE_DIR") or os.environ.get("CRUCIBLE_CACHE")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "crucible"
    return root / "run-cache" / hashlib.sha256(out.rstrip("/").encode()).hexdigest()[:16] / name


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def cache_key(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any] | None = None,
    prompt_id: str | None = None,
    prompt_version: str | int | None = None,
    sample_index: int = 0,
) -> str:
    """sha256 hex of the canonical request. ``params`` holds sampling params, tools, response_format."""
    payload = {
        "v": KEY_VERSION,
        "model": model,
        "prompt": {"id": prompt_id, "version": None if prompt_version is None else str(prompt_version)},
        "messages": list(messages),
        "params": {k: params[k] for k in sorted(params or {}) if params[k] is not None},
        "sample_index": int(sample_index),
    }
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


class ResponseCache:
    """``get(key) -> dict | None`` and ``put(key, response, request=None)``; thread- and process-safe."""

    def __init__(self, directory: str | os.PathLike, enabled: bool = True):
        self.dir = Path(directory)
        self.enabled = enabled

    def path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        if not self.enabled:
            return None
        try:
            with open(self.path(key), encoding="utf-8") as f:
                data = json.load(f)
        except (FileNotFoundError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("key") != key or not isinstance(data.get("response"), dict):
            return None
        return data["response"]

    def put(self, key: str, response: Mapping[str, Any], request: Mapping[str, Any] | None = None) -> None:
        if not self.enabled:
            return
        payload = {"key": key, "request": request, "response": response}
        data = json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8")
        fsio.write_bytes_atomic(str(self.path(key)), data)

    def __len__(self) -> int:
        return sum(1 for _ in self.dir.glob("*/*.json")) if self.dir.is_dir() else 0
