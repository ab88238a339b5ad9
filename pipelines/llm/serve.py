"""Starting model servers and handing their base URLs to pipelines.

- :func:`llm_endpoint` — the context manager pipelines use::

      with llm_endpoint(cfg.llm) as base_urls:
          llm_cfg = endpoint_config(cfg.llm, base_urls)   # plain dict for DoFns
          ... LLMClient.from_config(llm_cfg) in DoFn.setup ...

  ``engine: openai`` yields the configured ``base_urls``; ``engine: embedded`` starts the
  embedded llama.cpp server in a child process (unless ``base_urls`` already point at one) and
  stops it on exit; ``engine: vllm`` starts ``vllm serve`` the same way (GPU machines only).
- :func:`vllm_argv` — the ``vllm serve`` command line (pure, unit-tested).
- :func:`wait_for_health` (from :mod:`crucible.pipelines.llm.proc`) — poll ``<base_url>/models`` until it answers 200.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from crucible.pipelines.llm import embedded, settings
from crucible.pipelines.llm.proc import ChildServer, ServerStartError, wait_for_health

__all__ = ["ProcessServer", "ServerStartError", "endpoint_config", "llm_endpoint", "make_server", "vllm_argv",
           "vllm_argv_from_config", "wait_for_health"]


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
    """The ``vllm serve`` argv of the ``llm`` section (missing keys take the schema defaults); the port is
    ``port`` > ``llm.vllm.port`` > a free one."""
    c = settings.resolve(cfg)
    v = c["vllm"]
    return vllm_argv(
        v["model"] or c["model"],
        port=port or v["port"] or embedded.free_port(),
        host=v["host"],
        tool_call_parser=v["tool_call_parser"],
        max_model_len=v["max_model_len"],
        tensor_parallel_size=v["tensor_parallel_size"],
        gpu_memory_utilization=v["gpu_memory_utilization"],
        served_model_name=c["model"] if v["model"] and v["model"] != c["model"] else None,
        runner=v["runner"],
        convert=v["convert"],
        extra_args=v["extra_args"],
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
    c = settings.resolve(cfg)
    if c["engine"] == "embedded":
        e = c["embedded"]
        embedded.require_xllamacpp()
        path = embedded.ensure_model(e["model"], e["model_path"], e["cache_dir"], progress=progress)
        return embedded.EmbeddedServer(path, port=port or e["port"], n_ctx=int(e["n_ctx"]),
                                       n_threads=e["n_threads"], n_parallel=int(e["n_parallel"]),
                                       startup_timeout_s=float(e["startup_timeout_s"]))
    if c["engine"] == "vllm":
        v = c["vllm"]
        port = port or v["port"] or embedded.free_port()
        argv = vllm_argv_from_config(c, port=port)
        host = "127.0.0.1" if v["host"] in ("0.0.0.0", "::") else v["host"]
        return ProcessServer(argv, f"http://{host}:{port}/v1", float(v["startup_timeout_s"]))
    raise ValueError(f"llm.engine: {c['engine']!r} has no server to start; set llm.base_urls instead")


@contextlib.contextmanager
def llm_endpoint(cfg: Mapping[str, Any]) -> Iterator[list[str]]:
    """Yield the base URLs to use, starting (and finally stopping) a server if the config asks.

    Configured ``base_urls`` always win (no server is started), so a long-lived
    ``crucible llm serve`` or a vLLM fleet can be reused by any engine setting.
    """
    c = settings.resolve(cfg)
    urls = list(c["base_urls"])
    if urls:
        yield urls
        return
    if c["engine"] == "openai":
        raise ValueError("llm.base_urls is empty but llm.engine is 'openai': set llm.base_urls "
                         "(e.g. --set llm.base_urls='[http://127.0.0.1:8000/v1]') or use llm.engine=embedded")
    server = make_server(c)
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
