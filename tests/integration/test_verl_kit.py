"""The verl kit against verl itself (``make train-deps``): verl's RLHFDataset reads the export, verl's tool registry
builds the kit's tools from its yaml, the tools search, visit and edit, and the reward grades what they did."""

from __future__ import annotations

import asyncio
import json
import subprocess
from types import SimpleNamespace

import pytest

pytest.importorskip("verl.tools.base_tool", reason="verl is not installed (make train-deps)")

from crucible.pipelines.agent.loop import observation_text  # noqa: E402
from crucible.pipelines.browse.stages import OBSERVATION_SUFFIX, TURN_NOTE  # noqa: E402
from crucible.pipelines.integrations.export import export  # noqa: E402
from crucible.pipelines.integrations.verl import BROWSE_TOOL_CONFIG, SWE_TOOL_CONFIG  # noqa: E402
from crucible.pipelines.integrations.verl import reward as K  # noqa: E402
from tests.support import tiny_models  # noqa: E402
from tests.support import trainer_rows as TR  # noqa: E402

pytestmark = pytest.mark.integration


def agent_data(request_id: str, turn: int = 1):
    """What verl's ToolAgentLoop hands a tool as ``agent_data`` (the fields the kit reads)."""
    return SimpleNamespace(request_id=request_id, assistant_turns=turn, extra_fields={})


def tool_config(tmp_path, src, overrides):
    """The shipped tool config with this test's ``--set`` items (a local corpus under tmp_path)."""
    import yaml

    cfg = yaml.safe_load(src.read_text())
    for t in cfg["tools"]:
        t["config"]["overrides"] = list(overrides)
    out = tmp_path / src.name
    out.write_text(yaml.safe_dump(cfg))
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return TR.write_store(tmp_path_factory.mktemp("store"))


def test_verl_rlhf_dataset_reads_the_export_with_the_kits_tool_schemas(store, tmp_path):
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    dest = tmp_path / "train.parquet"
    assert export(str(store), "verl", str(dest), source="browse") == 2  # the RL splits only (rl, sft+rl)
    texts = [m["content"] or "" for r in TR.questions() for m in TR.trajectory_messages(r["question"])]
    tok = tiny_models.tokenizer(texts)
    conf = OmegaConf.create({"prompt_key": "prompt", "max_prompt_length": 4096, "filter_overlong_prompts": True,
                             "return_raw_chat": True, "cache_dir": str(tmp_path / "cache"),
                             "tool_config_path": str(BROWSE_TOOL_CONFIG), "filter_overlong_prompts_workers": 1})
    ds = RLHFDataset(str(dest), tok, conf)
    assert len(ds) == 2
    # verl built the kit's tools from the yaml: the pipeline's own schemas
    assert [t["function"]["name"] for t in ds.tool_schemas] == ["search", "visit"]
    item = ds[0]
    assert item["data_source"] == "crucible/browse" and item["index"] == 0
    assert [m["role"] for m in item["raw_prompt"]] == ["system", "user"]
    assert item["raw_prompt"][0]["content"] == TR.trajectory_messages(TR.CAPITAL_Q)[0]["content"]  # one prompt
    assert set(item["tools_kwargs"]) == {"search", "visit"}
    assert item["tools_kwargs"]["search"]["create_kwargs"]["question"] == TR.CAPITAL_Q
    assert item["reward_model"]["ground_truth"] == "Reykjavík"
    # what verl hands compute_score for this row: a correct response scores, the country does not
    extra = item["extra_info"]
    assert extra["answer_entity"] == "city/5" and extra["answer_aliases"] == ["Reykjavik"]
    gt = item["reward_model"]["ground_truth"]
    ok = K.compute_score(item["data_source"], "<answer>Reykjavik</answer>", gt, extra, resolver=None)
    miss = K.compute_score(item["data_source"], "<answer>Iceland</answer>", gt, extra, formula="outcome * format")
    assert ok["correct"] == 1.0 and miss["score"] == 0.0


def test_kit_tools_from_verls_registry_search_and_visit_in_the_rollouts_form(store, tmp_path):
    from verl.tools.base_tool import BaseTool
    from verl.tools.tool_registry import initialize_tools_from_config

    from crucible.pipelines.browse.api import open_environment
    from crucible.pipelines.browse.search.env import TOOL_SCHEMAS
    from crucible.pipelines.config import load_config

    sets = TR.search_overrides(tmp_path)
    tools = {t.name: t for t in initialize_tools_from_config(str(tool_config(tmp_path, BROWSE_TOOL_CONFIG, sets)))}
    assert set(tools) == {"search", "visit"} and all(isinstance(t, BaseTool) for t in tools.values())
    assert tools["search"].tool_schema.function.parameters.required == TOOL_SCHEMAS[0]["function"]["parameters"]["required"]

    async def call(name, args, turn):
        iid, _ = await tools[name].create(create_kwargs={"question_id": "q-capital", "question": TR.CAPITAL_Q})
        try:
            return await tools[name].execute(iid, args, agent_data=agent_data("req-1", turn))
        finally:
            await tools[name].release(iid)

    resp, step_reward, metrics = asyncio.run(call("search", {"query": "capital of Iceland"}, 1))
    assert "URL: https://kb.local/city/5" in resp.text and metrics == {"error": 0} and step_reward == 0.0
    # exactly what the pipeline's rollout shows the model: the session's observation + hint + turn note
    cfg = load_config("browse", sets)
    session, mt = open_environment(cfg).session([TR.CAPITAL_Q]), cfg["browse"]["max_turns"]
    expected = observation_text(session.search({"query": "capital of Iceland"}).content,
                                max_chars=cfg["browse"]["max_observation_chars"], suffix=OBSERVATION_SUFFIX,
                                turn_note=TURN_NOTE, turn=1, max_turns=mt)
    assert resp.text == expected
    page, _, _ = asyncio.run(call("visit", {"url": "https://kb.local/city/5"}, 2))
    assert "Reykjavík is the capital and largest city of Iceland" in page.text
    assert page.text.endswith(f"[Turn 2 of {mt}: {mt - 2} left; the last one must be the answer.]")
    again, _, _ = asyncio.run(call("search", {"query": "capital of Iceland"}, 3))
    assert "Do not repeat it" in again.text  # the same trajectory (request id): the repeat note
    other, _, _ = asyncio.run(tools["search"].execute("x", {"query": "capital of Iceland"},
                                                      agent_data=agent_data("req-2", 1)))
    assert "Do not repeat it" not in other.text  # another trajectory starts clean


def test_swe_tools_edit_and_submit_and_the_reward_grades_the_recorded_patch(tmp_path, monkeypatch):
    from verl.tools.tool_registry import initialize_tools_from_config

    from crucible.pipelines.integrations.verl import tools as T
    from crucible.sandbox.workspace import LocalWorkspace, init_baseline

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    opened = []

    def host_workspace(cfg, inst, config, overrides):  # stands in for the instance's env container
        ws = LocalWorkspace(repo)
        init_baseline(ws)
        opened.append(inst["instance_id"])
        return ws, lambda: opened.append("closed")

    monkeypatch.setattr(T.SweTool, "workspace_factory", staticmethod(host_workspace))
    tools = {t.name: t for t in initialize_tools_from_config(str(SWE_TOOL_CONFIG))}
    assert set(tools) == {"bash", "view", "str_replace", "create", "submit"}
    inst = json.dumps({"instance_id": "demo__calc-1", "repo": "demo/calc", "base_commit": "0" * 40})
    ad = agent_data("swe-req")

    async def call(name, args):
        iid, _ = await tools[name].create(create_kwargs={"instance_id": "demo__calc-1", "instance": inst})
        try:
            return (await tools[name].execute(iid, args, agent_data=ad))[0].text
        finally:
            await tools[name].release(iid)

    assert "return a - b" in asyncio.run(call("view", {"path": "calc.py"}))
    assert "replaced 1 occurrence" in asyncio.run(call("str_replace", {"path": "calc.py", "old_str": "a - b",
                                                                         "new_str": "a + b"}))
    assert "exit code 0" in asyncio.run(call("bash", {"command": "python -c 'import calc; print(calc.add(2, 3))'"}))
    diff = asyncio.run(call("submit", {"summary": "fix add"}))
    assert opened == ["demo__calc-1", "closed"]  # one workspace for the whole trajectory, closed by submit
    assert ad.extra_fields[K.PATCH_KEY] == diff and "+    return a + b" in diff
    grader = TR.FakeGrader()
    gt = json.dumps({"FAIL_TO_PASS": ["t.py::test_add"], "PASS_TO_PASS": []})
    out = K.compute_score("crucible/swe", "", gt, {"instance": inst, **ad.extra_fields}, grader=grader)
    assert out["score"] == 1.0 and grader.calls[0][1] == diff
    subprocess.run(["git", "-C", str(repo), "status"], check=True, capture_output=True)


def verl_search_tool_module(tmp_path, monkeypatch):
    """verl's own ``verl.tools.search_tool``: from the installed verl when it has one, else unchanged
    from the verl 0.7.1 wheel that ``make train-deps`` downloads (verl 0.8 removed the module; its
    relative imports then resolve against the installed verl's BaseTool and schemas). Its Ray
    workers import it by name, so they get a copy of the installed verl with the two files added
    (PYTHONPATH); this process gets the same two modules registered under their names."""
    import importlib.util
    import os
    import shutil
    import sys
    import types
    import zipfile
    from pathlib import Path

    try:
        import verl.tools.search_tool as st

        return st
    except ImportError:
        pass
    wheels = sorted((Path(__file__).resolve().parents[2] / ".venv" / "wheels").glob("verl-0.7.1-*.whl"))
    if not wheels:
        pytest.skip("no verl.tools.search_tool in this verl and no verl 0.7.1 wheel in .venv/wheels (make train-deps)")
    out = tmp_path / "verl-site"
    shutil.copytree(Path(sys.modules["verl"].__file__).parent, out / "verl",
                    ignore=shutil.ignore_patterns("__pycache__"))
    with zipfile.ZipFile(wheels[-1]) as z:
        for name in ("verl/tools/search_tool.py", "verl/tools/utils/search_r1_like_utils.py"):
            z.extract(name, out)
    (out / "verl/tools/utils/__init__.py").touch()
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(out), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    if "verl.tools.utils" not in sys.modules:
        pkg = types.ModuleType("verl.tools.utils")
        pkg.__path__ = [str(out / "verl/tools/utils")]
        sys.modules["verl.tools.utils"] = pkg
    mods = {}
    for name, path in (("verl.tools.utils.search_r1_like_utils", "verl/tools/utils/search_r1_like_utils.py"),
                       ("verl.tools.search_tool", "verl/tools/search_tool.py")):
        spec = importlib.util.spec_from_file_location(name, out / path)
        mods[name] = importlib.util.module_from_spec(spec)
        sys.modules[name] = mods[name]
        spec.loader.exec_module(mods[name])
    return mods["verl.tools.search_tool"]


def test_verls_search_tool_reads_crucible_search_serve_retrieve(tmp_path, monkeypatch):
    """verl's own Search-R1 SearchTool (verl <= 0.7; verl 0.8 removed it: then loaded unchanged from the
    0.7.1 wheel) against `/retrieve`."""
    st = verl_search_tool_module(tmp_path, monkeypatch)
    from verl.tools.schemas import OpenAIFunctionToolSchema

    from crucible.pipelines.browse.api import make_backend
    from crucible.pipelines.browse.search.server import SearchServer
    from crucible.pipelines.config import load_config

    schema = OpenAIFunctionToolSchema.model_validate({"type": "function", "function": {
        "name": "search", "description": "Searches the web", "parameters": {
            "type": "object", "properties": {"query_list": {"type": "array", "description": "queries"}},
            "required": ["query_list"]}}})
    with SearchServer(make_backend(load_config("browse", TR.search_overrides(tmp_path)))) as srv:
        tool = st.SearchTool({"retrieval_service_url": srv.url + "/retrieve", "num_workers": 1, "rate_limit": 10,
                              "timeout": 10, "topk": 2, "type": "native"}, schema)

        async def go():
            iid, _ = await tool.create()
            return await tool.execute(iid, {"query_list": ["capital of Iceland"]})

        resp, _, metrics = asyncio.run(go())
    assert metrics["status"] == "success" and metrics["total_results"] == 2
    assert "Reykjavík is the capital" in json.loads(resp.text)["result"]


def test_verls_reward_loader_loads_compute_score_from_the_kit_file_with_reward_kwargs(store, tmp_path):
    """What `reward.custom_reward_function.path=.../reward.py` does in verl: load the file, bind reward_kwargs."""
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import get_custom_reward_fn

    from crucible.pipelines.integrations.export_verl import verl_rows
    from crucible.pipelines.integrations.verl import REWARD_PATH

    graph = TR.write_graph_dir(tmp_path / "graph")
    conf = OmegaConf.create({"reward": {"custom_reward_function": {
        "path": str(REWARD_PATH), "name": "compute_score",
        "reward_kwargs": {"graph_dir": str(graph), "formula": "outcome * format"}}}})
    fn = get_custom_reward_fn(conf)
    row = next(r for r in verl_rows(str(store)) if r["extra_info"]["id"] == "q-capital")
    args = (row["data_source"], row["reward_model"]["ground_truth"], row["extra_info"])
    assert fn(data_source=args[0], solution_str="<answer>Reykjavik</answer>", ground_truth=args[1],
              extra_info=args[2])["score"] == 1.0
    out = fn(data_source=args[0], solution_str="<answer>Iceland</answer>", ground_truth=args[1], extra_info=args[2])
    assert out["score"] == 0.0 and out["graph_decided"] == 1.0  # the graph_dir kwarg reached the kit


def test_verl_rlhf_dataset_reads_the_swe_export_with_the_swe_tool_config(sample_store, tmp_path):
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    dest = tmp_path / "swe.parquet"
    assert export(str(sample_store), "verl", str(dest), source="swe") == 12
    import datasets

    texts = [m["content"] for r in datasets.load_dataset("parquet", data_files=str(dest), split="train")
             for m in r["prompt"]]
    conf = OmegaConf.create({"prompt_key": "prompt", "max_prompt_length": 4096, "return_raw_chat": True,
                             "cache_dir": str(tmp_path / "cache"), "tool_config_path": str(SWE_TOOL_CONFIG),
                             "filter_overlong_prompts_workers": 1})
    ds = RLHFDataset(str(dest), tiny_models.tokenizer(texts), conf)
    assert [t["function"]["name"] for t in ds.tool_schemas] == ["bash", "view", "str_replace", "create", "submit"]
    item = ds[0]
    assert set(item["tools_kwargs"]) == {t["function"]["name"] for t in ds.tool_schemas}
    assert json.loads(item["tools_kwargs"]["bash"]["create_kwargs"]["instance"])["instance_id"] == "demo__repo-0"
