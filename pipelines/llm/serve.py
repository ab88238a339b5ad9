"""Starting model servers and handing their base URLs to pipelines.

- :func:`llm_endpoint` — the context manager pipelines use::

      with llm_endpoint(cfg.llm) as base_urls:
          llm_cfg = endpoint_config(cfg.llm, base_urls)   # plain dict for DoFns
          ... LLMClient.from_config(llm_cfg) in DoFn.setup ...

  ``engine: openai`` yields the configured ``base_urls``; ``engine: embedded`` starts the
  embedded llama.cpp server in a child process (unless ``base_urls`` already point at one) and
  stops it on exit; ``engine: vllm`` starts ``vllm serve`` the same way (GPU machines only).
- :func:`vllm_argv` — the ``vllm serve`` command line (pure, unit-tested).
- :func:`wait_for_health` — poll ``<base_url>/models`` until it answers 200.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from pipelines.llm.proc import ChildServer


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


def vllm_argv(
    model: str,
    *,
    port: int,
    host: str = "127.0.0.1",
    tool_call_parser: str | None = None,
    max_model_len: int | None = None,
    tensor_parallel_size: int | None = None,
    gpu_memory_utilization: float | None = None,
    served_model_name: str | None = None,
    runner: str | None = None,
    convert: str | None = None,
    extra_args: Sequence[str] = (),
    executable: str = "vllm",
) -> list[str]:
    """The ``vllm serve`` argv. A tool-call parser also enables auto tool choice, so the server
    returns native ``tool_calls``. ``runner="pooling"`` (with ``convert``, e.g. ``classify`` for a
    ``*ForSequenceClassification`` reward model) serves ``/pooling`` instead of generation; a pooling
    server gets no tool-call parser."""
    if not model:
        raise ValueError("llm.vllm.model (or llm.model): a model name or path is required for vllm")
    if not 0 < int(port) < 65536:
        raise ValueError(f"llm.vllm.port: {port} is not a TCP port")
    argv = [executable, "serve", model, "--host", host, "--port", str(int(port))]
    if served_model_name:
        argv += ["--served-model-name", served_model_name]
    if runner not in (None, "generate", "pooling"):
        raise ValueError(f"llm.vllm.runner: {runner!r} is not one of generate, pooling")
    if runner:
        argv += ["--runner", runner]
    if convert:
        if runner != "pooling":
            raise ValueError("llm.vllm.convert needs llm.vllm.runner=pooling")
        argv += ["--convert", convert]
    if tool_call_parser and runner != "pooling":
        argv += ["--enable-auto-tool-choice", "--tool-call-parser", tool_call_parser]
    if max_model_len is not None:
        if int(max_model_len) < 1:
            raise ValueError("llm.vllm.max_model_len must be >= 1")
        argv += ["--max-model-len", str(int(max_model_len))]
    if tensor_parallel_size is not None:
        if int(tensor_parallel_size) < 1:
            raise ValueError("llm.vllm.tensor_parallel_size must be >= 1")
        argv += ["--tensor-parallel-size", str(int(tensor_parallel_size))]
    if gpu_memory_utilization is not None:
        if not 0 < float(gpu_memory_utilization) <= 1:
            raise ValueError("llm.vllm.gpu_memory_utilization must be in (0, 1]")
        argv += ["--gpu-memory-utilization", str(float(gpu_memory_utilization))]
    argv += [str(a) for a in extra_args]
    return argv


def vllm_argv_from_config(cfg: Mapping[str, Any], port: int | None = None) -> list[str]:
    v = dict(cfg.get("vllm") or {})
    return vllm_argv(
        v.get("model") or cfg.get("model"),
        port=port or v.get("port") or 8000,
        host=v.get("host") or "127.0.0.1",
        tool_call_parser=v.get("tool_call_parser"),
        max_model_len=v.get("max_model_len"),
        tensor_parallel_size=v.get("tensor_parallel_size"),
        gpu_memory_utilization=v.get("gpu_memory_utilization"),
        served_model_name=cfg.get("model") if v.get("model") and v.get("model") != cfg.get("model") else None,
        runner=v.get("runner"),
        convert=v.get("convert"),
        extra_args=v.get("extra_args") or (),
    )


class ProcessServer(ChildServer):
    """Any OpenAI-compatible server started as a child process from an argv list."""

    stop_timeout_s = 30.0

    def __init__(self, argv: Sequence[str], base_url: str, startup_timeout_s: float):
        self.argv, self.base_url, self.startup_timeout_s = list(argv), base_url, startup_timeout_s

    def start(self) -> str:
        if shutil.which(self.argv[0]) is None:
            raise ServerStartError(f"{self.argv[0]!r} not found on PATH; install it (pip install -e '.[vllm]' "
                                   "on a GPU machine) or point llm.base_urls at a running server")
        return self.spawn(self.argv)


def make_server(cfg: Mapping[str, Any], port: int | None = None, progress=None):
    """An unstarted server object (``.start() -> base_url``, ``.stop()``) for ``cfg['engine']``."""
    from pipelines.llm import embedded

    engine = cfg.get("engine", "embedded")
    if engine == "embedded":
        e = dict(cfg.get("embedded") or {})
        embedded.require_xllamacpp()
        path = embedded.ensure_model(e.get("model", "qwen2.5-coder-1.5b"), e.get("model_path"),
                                     e.get("cache_dir"), progress=progress)
        return embedded.EmbeddedServer(path, port=port or e.get("port"), n_ctx=int(e.get("n_ctx", 4096)),
                                       n_threads=e.get("n_threads"), n_parallel=int(e.get("n_parallel", 1)),
                                       startup_timeout_s=float(e.get("startup_timeout_s", 300)))
    if engine == "vllm":
        v = dict(cfg.get("vllm") or {})
        port = port or v.get("port") or embedded.free_port()
        argv = vllm_argv_from_config(cfg, port=port)
        host = v.get("host") or "127.0.0.1"
        return ProcessServer(argv, f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/v1",
                             float(v.get("startup_timeout_s", 1800)))
    raise ValueError(f"llm.engine: {engine!r} has no server to start; set llm.base_urls instead")


@contextlib.contextmanager
def llm_endpoint(cfg: Mapping[str, Any]) -> Iterator[list[str]]:
    """Yield the base URLs to use, starting (and finally stopping) a server if the config asks.

    Configured ``base_urls`` always win (no server is started), so a long-lived
    ``crucible llm serve`` or a vLLM fleet can be reused by any engine setting.
    """
    urls = list(cfg.get("base_urls") or [])
    if urls:
        yield urls
        return
    if cfg.get("engine", "embedded") == "openai":
        raise ValueError("llm.base_urls is empty but llm.engine is 'openai': set llm.base_urls "
                         "(e.g. --set llm.base_urls='[http://127.0.0.1:8000/v1]') or use llm.engine=embedded")
    server = make_server(cfg)
    url = server.start()
    try:
        yield [url]
    finally:
        server.stop()


def endpoint_config(cfg: Mapping[str, Any], base_urls: Sequence[str]) -> dict:
    """The llm section as a plain dict with ``base_urls`` filled in: what DoFns receive."""
    d = cfg.to_dict() if hasattr(cfg, "to_dict") else json.loads(json.dumps(dict(cfg), default=dict))
    d["base_urls"] = list(base_urls)
    return d
