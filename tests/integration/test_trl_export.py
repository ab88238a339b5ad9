"""The TRL export trains unchanged: a real SFTTrainer step on it, and it renders through the Qwen2.5 and
Llama-3.1 chat templates with tools (TRL ships both templates; no download anywhere)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

trl = pytest.importorskip("trl", reason="trl is not installed (make train-deps)")

import datasets  # noqa: E402

from crucible.pipelines.cli import main  # noqa: E402
from crucible.pipelines.integrations.export import EmptyExport, export  # noqa: E402
from tests.support import tiny_models  # noqa: E402
from tests.support import trainer_rows as TR  # noqa: E402

pytestmark = pytest.mark.integration
TEMPLATES = Path(trl.__file__).parent / "chat_templates"


def template(name: str) -> str:
    return (TEMPLATES / f"{name}.jinja").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def trl_file(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trl")
    store = TR.write_store(tmp / "store")
    dest = tmp / "trl.parquet"
    assert export(str(store), "trl", str(dest), source="browse") == 2  # SFT splits only (sft, sft+rl)
    return dest


def load(path):
    return datasets.load_dataset("parquet", data_files=str(path), split="train")


def render(rows, name: str) -> list[str]:
    tok = tiny_models.tokenizer([])
    tok.chat_template = template(name)
    return [tok.apply_chat_template(r["messages"], tools=r["tools"], tokenize=False) for r in rows]


def render_raw(rows, name: str) -> list[str]:
    """The template on the rows as stored, with nothing cleaning them first (recent transformers drop
    None-valued keys before rendering; older ones, vLLM's and other renderers do not)."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = lambda x, indent=None, **kw: json.dumps(x, indent=indent, ensure_ascii=False)
    env.globals["raise_exception"] = raise_exception
    t = env.from_string(template(name))
    return [t.render(messages=r["messages"], tools=r["tools"], bos_token="", add_generation_prompt=False) for r in rows]


def test_rows_keep_only_their_own_keys_and_the_reasoning(trl_file):
    ds = load(trl_file)
    msgs = ds[0]["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert all(v is not None for m in msgs for v in m.values())
    assert set(msgs[0]) == {"role", "content"} and set(msgs[6]) == {"role", "content"}
    assert msgs[2]["reasoning_content"] == "Iceland Krona is Iceland's currency; find its capital."
    assert "reasoning_content" not in msgs[4]  # not made up where the model gave none
    assert msgs[4]["tool_calls"][0]["function"]["arguments"] == {"url": "https://kb.local/city/5"}
    assert {t["function"]["name"] for t in ds[0]["tools"]} == {"search", "visit"}


@pytest.mark.parametrize("how", [render, render_raw])
@pytest.mark.parametrize("name", ["qwen2_5", "llama3_1"])
def test_the_export_renders_through_real_chat_templates_with_tools(trl_file, name, how):
    rows = list(load(trl_file))
    for text in how(rows, name):
        assert '"name": "visit"' in text and "https://kb.local/city/5" in text  # the tool call, arguments as JSON
        assert "Reykjavík is the capital and largest city of Iceland" in text  # the tool result
        assert "keywords to search for" in text  # the tool schemas
        assert text.rstrip().endswith(("Reykjavík<|im_end|>", "Reykjavík<|eot_id|>"))


def test_none_valued_keys_are_what_breaks_llama_3_1(trl_file):
    """Switched off: the old fixed-struct rows (every message with tool_calls/name/tool_call_id, None where
    absent) fail in the Llama-3.1 template, which tests ``'tool_calls' in message``."""
    row = load(trl_file)[0]
    padded = [{"tool_calls": None, "name": None, "tool_call_id": None, **m} for m in row["messages"]]
    with pytest.raises(TypeError, match="NoneType"):
        render_raw([{"messages": padded, "tools": row["tools"]}], "llama3_1")


def test_sft_trainer_takes_one_step_on_the_export(trl_file, tmp_path):
    from trl import SFTConfig, SFTTrainer

    ds = load(trl_file)
    texts = render(list(ds), "qwen2_5")
    tok = tiny_models.tokenizer(texts)
    tok.chat_template = template("qwen2_5")
    model = tiny_models.causal_lm(len(tok))
    args = SFTConfig(output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=2, learning_rate=1e-3,
                     report_to=[], logging_steps=1, save_strategy="no", use_cpu=True, max_length=2048,
                     dataloader_num_workers=0, dataset_num_proc=1)
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    out = trainer.train()
    assert trainer.state.global_step == 1
    assert math.isfinite(out.training_loss) and out.training_loss > 0
    # the trainer saw the tool calls and results (not just the plain turns): they are in its tokenized rows
    first = tok.decode(trainer.train_dataset[0]["input_ids"])
    assert "kb . local" in first or "kb.local" in first


def test_zero_sft_rows_is_a_clear_error_not_a_keys_mismatch(tmp_path, capsys):
    store = TR.write_store(tmp_path / "store", with_trajectories=False)
    with pytest.raises(EmptyExport, match="no trajectories with an SFT split"):
        export(str(store), "trl", str(tmp_path / "t.parquet"))
    assert not (tmp_path / "t.parquet").exists()
    assert main(["export", "--out", str(store), "--format", "trl"]) != 0
    err = capsys.readouterr().err
    assert "nothing to export" in err and "--all-trajectories" in err and "Keys mismatch" not in err
    json.dumps(err)
