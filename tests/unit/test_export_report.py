import json

import datasets
import pytest

from crucible.pipelines.cli import main
from crucible.pipelines.integrations.export import export
from crucible.pipelines.store import catalog
from crucible.pipelines.store.stats import compute_stats


def _load(path):
    return datasets.load_dataset("parquet", data_files=str(path), split="train")


def test_verl_browse_export_loads_with_datasets_and_has_verl_columns(sample_store, tmp_path):
    dest = tmp_path / "verl.parquet"
    assert export(str(sample_store), "verl", str(dest), source="browse") == 9
    ds = _load(dest)
    assert set(ds.column_names) == {"data_source", "prompt", "ability", "reward_model", "extra_info", "agent_name"}
    row = ds[0]
    assert row["data_source"] == "crucible/browse" and row["ability"] == "research"
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert isinstance(row["prompt"][1]["content"], str)
    assert row["reward_model"] == {"style": "rule", "ground_truth": "Currency 1"}
    extra = row["extra_info"]
    assert extra["index"] == 0 and extra["need_tools_kwargs"] is True
    # the tools get the question (their leak filter), never the answer
    assert extra["tools_kwargs"]["search"]["create_kwargs"] == {"question_id": "q0001", "question": extra["question"]}
    assert set(extra["tools_kwargs"]) == {"search", "visit"}
    assert extra["answer_aliases"] == ["C1", "cur-1"] and extra["answer_type"] == "entity"
    # one system prompt: the rollouts' own (configs/prompts/browse_agent.yaml), as the SFT rows have it
    from crucible.pipelines.browse.pipeline import PROMPTS
    from crucible.pipelines.integrations.export_verl import BROWSE_AGENT_PROMPT
    from crucible.pipelines.llm.prompts import load_prompt

    assert BROWSE_AGENT_PROMPT == PROMPTS["agent"]
    assert row["prompt"] == load_prompt("browse_agent").render(question=extra["question"])


def test_verl_swe_export_carries_tests_as_ground_truth(sample_store, tmp_path):
    dest = tmp_path / "verl-swe.parquet"
    assert export(str(sample_store), "verl", str(dest), source="swe") == 12
    row = _load(dest)[0]
    gt = json.loads(row["reward_model"]["ground_truth"])
    assert gt["FAIL_TO_PASS"] == ["test_x.py::test_0"] and row["ability"] == "swe"
    tk = row["extra_info"]["tools_kwargs"]
    # keyed by the real tool names, so that every tool gets the instance
    assert set(tk) == {"bash", "view", "str_replace", "create", "submit"}
    assert all(tk[t]["create_kwargs"]["instance_id"] == "demo__repo-0" for t in tk)
    inst = json.loads(row["extra_info"]["instance"])
    assert inst["FAIL_TO_PASS"] == gt["FAIL_TO_PASS"] and "patch" not in inst  # never the gold patch
    from crucible.pipelines.swe.rollout import task_messages

    assert row["prompt"][0] == task_messages({"repo": "r", "problem_statement": "p"})[0]  # the rollouts' prompt
    with pytest.raises(ValueError, match="browse or swe"):
        export(str(sample_store), "verl", str(tmp_path / "x.parquet"), source="all")


def test_trl_export_has_messages_with_dict_arguments_and_tools(sample_store, tmp_path):
    dest = tmp_path / "trl.parquet"
    # SFT split only: even browse trajectories (6) + all swe trajectories (12)
    assert export(str(sample_store), "trl", str(dest), source="all") == 18
    ds = _load(dest)
    assert {"messages", "tools"} <= set(ds.column_names)
    assert type(ds.features["tools"].feature).__name__ == "Json"
    msgs = ds[0]["messages"]
    call = msgs[2]["tool_calls"][0]
    assert call["function"]["name"] == "search"
    assert call["function"]["arguments"] == {"query": "city 0", "top_k": 3}
    assert msgs[3]["role"] == "tool" and msgs[3]["name"] == "search" and msgs[3]["tool_call_id"] == call["id"]
    assert ds[0]["tools"][0]["function"]["name"] == "search"
    # each message keeps only its own keys: no None-valued tool_calls / name / tool_call_id
    assert set(msgs[0]) == {"role", "content"} and set(msgs[1]) == {"role", "content"}
    assert set(msgs[3]) == {"role", "content", "tool_call_id", "name"}
    assert all(v is not None for m in msgs for v in m.values())


def test_stats_numbers_match_the_data(sample_store, capsys):
    con = catalog.connect(str(sample_store))
    s = compute_stats(con)
    con.close()
    assert s["counts"]["questions"] == 9
    assert s["browse_trajectories"]["pass_rate"] == pytest.approx(0.5)
    assert dict(map(tuple, s["browse_trajectories"]["verdicts"])) == {"correct": 6, "incorrect": 6}
    assert s["browse_trajectories"]["reward_total"]["n"] == 12
    assert dict(map(tuple, s["failures"]["by_kind"])) == {"error": 12, "schema": 3}
    assert main(["stats", "--out", str(sample_store)]) == 0
    text = capsys.readouterr().out
    assert "questions" in text and "pass_rate" in text
    assert main(["stats", "--out", str(sample_store), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["swe_trajectories"] == 12


def test_report_writes_html_with_png_plots(sample_store, tmp_path, capsys):
    dest = tmp_path / "rep"
    assert main(["report", "--out", str(sample_store), "--dest", str(dest)]) == 0
    page = (dest / "index.html").read_text()
    pngs = sorted(p.name for p in dest.glob("*.png"))
    assert {"counts.png", "browse.png", "failures.png", "swe_validation.png", "swe_funnel.png"} <= set(pngs)
    for name in pngs:
        data = (dest / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
        assert f"src='{name}'" in page
    # numbers link to the viewer's filtered lists; images fit the page
    assert "http://127.0.0.1:8765/browse_trajectories?verdict=correct" in page
    assert "http://127.0.0.1:8765/swe_validations?status=valid" in page
    assert "img{max-width:100%" in page


def test_count_histograms_have_one_bar_per_whole_number_and_labels_are_wrapped_not_cut():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from crucible.pipelines.store.report import _hist, _wrap

    fig, ax = plt.subplots()
    _hist(ax, [0, 1, 1, 3, 3, 3], "tool calls", integer=True)
    heights = [p.get_height() for p in ax.patches]
    assert heights == [1, 2, 0, 3]  # bins 0, 1, 2, 3
    plt.close(fig)
    long = "validate/no FAIL_TO_PASS tests: the fix changes no test outcome at all"
    assert _wrap(long).replace("\n", " ") == long


def test_missing_out_dir_is_a_clear_error(tmp_path, capsys):
    assert main(["stats", "--out", str(tmp_path / "nope")]) == 2
    assert "no such output directory" in capsys.readouterr().err
