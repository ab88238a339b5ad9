"""Quality labels and difficulty per swe instance (pipelines/swe/quality.py, issue #24 item 3): each defect
code fires on a crafted instance and not on a clean one, and with its check switched off the defect gets
through (to the export); difficulty orders crafted fixes; stats show the distribution; exports filter on it."""

from __future__ import annotations

import json
import urllib.request

import pyarrow.parquet as pq
import pytest

from crucible.pipelines.cli import main
from crucible.pipelines.config import load_config
from crucible.pipelines.store import catalog
from crucible.pipelines.store.commit import ItemResult, commit_items, ensure_layout
from crucible.pipelines.store.records import record_type
from crucible.pipelines.swe import quality as Q
from crucible.pipelines.swe.quality_select import InstanceFilter, parse_filter
from crucible.pipelines.swe.records import SWEInstance
from crucible.pipelines.view.server import ViewServer
from tests.support import samples

FIX = """diff --git a/pkg/mod.py b/pkg/mod.py
--- a/pkg/mod.py
+++ b/pkg/mod.py
@@ -1,6 +1,6 @@
 def _normalize(text):
-    return text.strip()
+    return text.strip().lower()
\x20
 def parse(text):
     value = _normalize(text)
     return value.split(",")
"""
FIX_SMALL = """diff --git a/pkg/mod.py b/pkg/mod.py
--- a/pkg/mod.py
+++ b/pkg/mod.py
@@ -4,3 +4,3 @@ def _normalize(text):
 def parse(text):
-    value = text
+    value = text.strip()
     return value.split(",")
"""
FIX_NEW_API = FIX_SMALL + """diff --git a/pkg/extra.py b/pkg/extra.py
new file mode 100644
--- /dev/null
+++ b/pkg/extra.py
@@ -0,0 +1,2 @@
+def parse_strict(text):
+    return text
"""
FIX_EDITS_TESTS = FIX_SMALL + """diff --git a/tests/test_mod.py b/tests/test_mod.py
--- a/tests/test_mod.py
+++ b/tests/test_mod.py
@@ -1,1 +1,1 @@
-import pytest
+import pytest  # noqa
"""
CLEAN_TEST = "    assert parse(' a,b ') == ['a', 'b']"


def make_test_patch(*bodies: str) -> str:
    """A test patch adding ``test_0``, ``test_1``, ... with these bodies to tests/test_mod.py."""
    lines = [f"+def test_{i}():\n" + "".join(f"+{b}\n" for b in body.splitlines()) for i, body in enumerate(bodies)]
    n = sum(x.count("\n") for x in lines)
    return ("diff --git a/tests/test_mod.py b/tests/test_mod.py\n--- a/tests/test_mod.py\n+++ b/tests/test_mod.py\n"
            f"@@ -1,1 +1,{n + 1} @@\n import pytest\n" + "".join(lines))


def instance(patch: str = FIX_SMALL, bodies: tuple[str, ...] = (CLEAN_TEST,), statement: str = "`parse` keeps the "
             "spaces around the input", **extra) -> dict:
    return dict(samples.swe_instance(1), patch=patch, test_patch=make_test_patch(*bodies), problem_statement=statement,
                FAIL_TO_PASS=[f"tests/test_mod.py::test_{i}" for i in range(len(bodies))], **extra)


def validation(**extra) -> dict:
    return dict(samples.swe_validation(1), **{"meta": {"failing_output": "E   AssertionError: assert [' a', 'b '] == ..."},
                                              **extra})


def codes(inst: dict, val: dict | None = None) -> list[str]:
    return [x["code"] for x in Q.assess(inst, val or validation())["quality_labels"]]


# one crafted instance (and validation row) per defect code
CRAFTED = {
    Q.Defect.PRIVATE_API: (instance(FIX, ("    assert _normalize(' A ') == 'a'",)), validation()),
    Q.Defect.UNNAMED_NEW_API: (instance(FIX_NEW_API, ("    assert parse_strict('a') == 'a'",)), validation()),
    Q.Defect.NETWORK: (instance(bodies=("    r = requests.get('http://example.org')\n    assert r.ok",)), validation()),
    Q.Defect.FLAKY: (instance(), validation(flaky_tests=["tests/test_mod.py::test_slow"])),
    Q.Defect.EXCEPTION_ONLY: (instance(bodies=("    with pytest.raises(ValueError):\n        parse(None)",)),
                              validation()),
    Q.Defect.STATEMENT_NOT_REPRODUCED: (instance(statement_repro={"reproduced": False, "reason": "no error in before"}),
                                        validation()),
    Q.Defect.BROAD_F2P: (instance(bodies=(CLEAN_TEST,) * (Q.BROAD_F2P + 1)), validation()),
    Q.Defect.PATCH_EDITS_TESTS: (instance(FIX_EDITS_TESTS), validation()),
}


SEEN = {Q.Defect.PRIVATE_API: "_normalize", Q.Defect.UNNAMED_NEW_API: "parse_strict", Q.Defect.NETWORK: "requests.get",
        Q.Defect.FLAKY: "1 test(s)", Q.Defect.EXCEPTION_ONLY: "no match=", Q.Defect.STATEMENT_NOT_REPRODUCED:
        "no error in before", Q.Defect.BROAD_F2P: "21 F2P", Q.Defect.PATCH_EDITS_TESTS: "tests/test_mod.py"}


def test_the_schema_enum_is_the_defect_enum():
    item = record_type("swe_instances").schema["properties"]["quality_labels"]["items"]
    assert item["properties"]["code"]["enum"] == [d.value for d in Q.Defect]
    assert set(CRAFTED) == set(Q.Defect)


def test_a_clean_instance_carries_no_label():
    out = Q.assess(instance(), validation())
    assert out["quality_labels"] == []  # no statement_repro field: no B6 either
    assert out["difficulty"]["f2p_read"] == 1  # its test was read (from the test patch), and passed every check


@pytest.mark.parametrize("code", list(Q.Defect), ids=lambda c: c.value)
def test_each_label_fires_on_its_crafted_instance_with_a_reason(code):
    inst, val = CRAFTED[code]
    labels = Q.assess(inst, val)["quality_labels"]
    assert [x["code"] for x in labels] == [code.value], labels
    assert SEEN[code] in labels[0]["reason"]  # the reason says what was seen
    row = SWEInstance.from_row({k: v for k, v in inst.items() if k != "statement_repro"}).replace(
        **Q.assess(inst, val)).row("r")
    assert record_type("swe_instances").errors(row) == []  # the stored row is valid


@pytest.mark.parametrize("code", list(Q.Defect), ids=lambda c: c.value)
def test_with_a_check_switched_off_its_defect_gets_through_to_the_export(code, monkeypatch):
    inst, val = CRAFTED[code]
    flt = parse_filter(exclude_labels=code.value)
    assert not flt.keeps(Q.assess(inst, val))  # rejected by the export filter
    monkeypatch.setitem(Q.CHECKS, code, lambda f: None)
    out = Q.assess(inst, val)
    assert out["quality_labels"] == [] and flt.keeps(out)  # the defect is now in the export


@pytest.mark.parametrize("inst,val", [
    # a private helper the test file defines itself is no implementation coupling
    (instance(FIX_SMALL, ("    assert _local(parse('a')) == 'a'",)), validation()),
    # a dunder is not private
    (instance(FIX, ("    assert parse.__name__ == 'parse'",)), validation()),
    # the new name is named by the statement: the task says what to write
    (instance(FIX_NEW_API, ("    assert parse_strict('a') == 'a'",), statement="Add `parse_strict`"), validation()),
    # pytest.raises with match= checks the message
    (instance(bodies=("    with pytest.raises(ValueError, match='empty'):\n        parse(None)",)), validation()),
    # one F2P test only checks the type, another asserts a value: not all exception-only
    (instance(bodies=("    with pytest.raises(ValueError):\n        parse(None)", CLEAN_TEST)), validation()),
    # a URL as data is no network call; a reproduction that showed the failure is no defect
    (instance(bodies=("    assert parse('http://a,b') == ['http://a', 'b']",),
              statement_repro={"reproduced": True}), validation()),
])
def test_near_misses_carry_no_label(inst, val):
    assert codes(inst, val) == []


def test_network_from_the_runs_too():
    assert codes(instance(), validation(network_tests=["tests/test_mod.py::test_0"])) == ["B3_network"]
    val = validation(meta={"failing_output": "E   urllib3.exceptions.NewConnectionError: ... Network is unreachable"})
    assert codes(instance(), val) == ["B3_network"]


def fix_of(files: int, lines_per_file: int) -> str:
    out = []
    for f in range(files):
        body = "".join(f"-    x{j} = {j}\n+    x{j} = {j + 1}\n" for j in range(lines_per_file))
        out.append(f"diff --git a/pkg/m{f}.py b/pkg/m{f}.py\n--- a/pkg/m{f}.py\n+++ b/pkg/m{f}.py\n"
                   f"@@ -1,{lines_per_file + 1} +1,{lines_per_file + 1} @@\n def work{f}():\n{body}")
    return "".join(out)


def test_difficulty_orders_crafted_fixes():
    easy = Q.assess(instance(fix_of(1, 1), statement="`work0` is off by one"), validation())["difficulty"]
    mid = Q.assess(instance(fix_of(2, 15), statement="`m1` gives wrong values"), validation())["difficulty"]
    hard = Q.assess(instance(fix_of(5, 40), bodies=(CLEAN_TEST,) * 12, statement="results are wrong"),
                    validation())["difficulty"]
    assert (easy["distance"], mid["distance"], hard["distance"]) == (0, 1, 2)
    assert (easy["files"], easy["lines"], hard["files"], hard["lines"]) == (1, 2, 5, 400)
    assert easy["score"] < mid["score"] < hard["score"]
    assert (easy["band"], mid["band"], hard["band"]) == ("easy", "medium", "hard")


def test_the_agent_pass_rate_counts_model_policies_only():
    inst, gold = instance(fix_of(2, 10), statement="`m1` gives wrong values"), {"policy": "gold", "resolved": True}
    solved = Q.assess(inst, validation(), [gold, {"policy": "llm", "resolved": True}])
    unsolved, none = Q.assess(inst, validation(), [gold] + [{"policy": "llm", "resolved": False}] * 2), \
        Q.assess(inst, validation(), [gold])
    assert (solved["difficulty"]["pass_rate"], unsolved["difficulty"]["pass_rate"]) == (1.0, 0.0)
    assert none["difficulty"]["pass_rate"] is None and none["difficulty"]["agent_runs"] == 0
    assert solved["difficulty"]["score"] < none["difficulty"]["score"] < unsolved["difficulty"]["score"]


def test_curate_writes_labels_and_difficulty_on_every_instance(monkeypatch):
    from crucible.pipelines.swe import curate

    def fake(ctx, inst, policy, *, policy_name, sample_index=0, run_id="", **kw):
        ok = policy_name == "gold"
        return dict(samples.swe_trajectory(0), traj_id=f"t-{policy_name}-{sample_index}", policy=policy_name,
                    instance_id=inst["instance_id"], resolved=ok, reward=float(ok), run_id=run_id,
                    grade_reason=None if ok else "f2p failed", meta={"dropped_files": []})

    monkeypatch.setattr("crucible.pipelines.swe.rollout.run_rollout", fake)

    monkeypatch.setattr(curate, "statement_for", lambda ctx, inst, *a, **k: (SWEInstance.from_row(inst), [], None))
    cfg = load_config("swe", ["swe.statements.use_llm=false", "swe.rollouts.k=2",
                              "swe.rollouts.policies=[gold,llm]"]).to_dict()
    inst = dict(CRAFTED[Q.Defect.PRIVATE_API][0], meta={"function": "f", "path": "pkg/x.py"})
    res = curate.curate_instance(None, inst, validation(), cfg=cfg, run_id="r1", client=object(), prompt=None)
    row = res.rows["swe_instances"][0]
    assert [x["code"] for x in row["quality_labels"]] == ["B1_private_api"]
    assert row["difficulty"]["agent_runs"] == 2 and row["difficulty"]["pass_rate"] == 0.0


def test_swe_validate_writes_them_too():
    from crucible.pipelines.swe.runner import instance_result

    inst, val = CRAFTED[Q.Defect.FLAKY]
    item = instance_result((SWEInstance.from_row(inst), val), "r1", None)
    row = item.rows["swe_instances"][0]
    assert [x["code"] for x in row["quality_labels"]] == ["B4_flaky"] and row["difficulty"]["band"] in Q.BANDS


def store(tmp_path, *, unassessed: bool = False) -> str:
    """Three instances: a clean easy one, a B1-labelled one, a B3+B4 hard one (and one never assessed)."""
    out = str(tmp_path / "data")
    ensure_layout(out)
    rows = [(instance(), validation()), CRAFTED[Q.Defect.PRIVATE_API],
            (instance(fix_of(5, 40), bodies=("    requests.get('http://x')",), statement="wrong"),
             validation(flaky_tests=["t::x"]))]
    items = []
    for i, (inst, val) in enumerate(rows):
        inst = SWEInstance.from_row({k: v for k, v in inst.items() if k != "statement_repro"},
                                    instance_id=f"demo__repo-{i}")
        items.append(ItemResult(inst.instance_id).add("swe_instances", Q.finished(inst, val).row("r1"))
                     .add("swe_trajectories", dict(samples.swe_trajectory(i), instance_id=inst.instance_id)))
    if unassessed:
        items.append(ItemResult("old").add("swe_instances", SWEInstance.from_row(samples.swe_instance(9)).row("r0")))
    commit_items(out, "swe-curate", "r1", items)
    catalog.refresh_catalog(out)
    return out


def cli(capsys, *argv):
    rc = main(list(argv))
    o = capsys.readouterr()
    assert "Traceback" not in o.err
    return rc, o.out, o.err


def test_stats_show_the_label_distribution_and_difficulty_bands(tmp_path, capsys):
    out = store(tmp_path, unassessed=True)
    rc, text, _ = cli(capsys, "stats", "--out", out)
    assert rc == 0 and "quality_labels:" in text and "difficulty_bands:" in text
    rc, js, _ = cli(capsys, "stats", "--out", out, "--json")
    s = json.loads(js)["swe_instances"]
    assert dict(map(tuple, s["quality_labels"])) == {"B1_private_api": 1, "B3_network": 1, "B4_flaky": 1,
                                                     "none": 1, "not assessed": 1}
    bands = dict(map(tuple, s["difficulty_bands"]))
    assert bands["easy"] == 2 and bands["hard"] == 1 and bands["not assessed"] == 1
    assert s["difficulty_score"]["n"] == 3


def test_export_filters_on_labels_and_difficulty(tmp_path, capsys):
    out = store(tmp_path, unassessed=True)

    def ids(*flags, fmt="verl"):
        dest = tmp_path / f"e{len(list(tmp_path.iterdir()))}.parquet"
        rc, o, err = cli(capsys, "export", "--format", fmt, "--source", "swe", "--out", out, "--dest", str(dest),
                         *flags, *(["--all-trajectories"] if fmt == "trl" else []))
        assert rc == 0, err
        t = pq.read_table(dest)
        return sorted(x["id"] for x in t.column("extra_info").to_pylist()) if fmt == "verl" else \
            sorted(t.column("id").to_pylist())

    assert len(ids()) == 4  # no filter: every instance, the unassessed one too
    assert ids("--exclude-labels", "B1_private_api") == ["demo__repo-0", "demo__repo-2"]
    assert ids("--exclude-labels", "B1_private_api,B3_network") == ["demo__repo-0"]
    assert ids("--difficulty-bands", "easy") == ["demo__repo-0", "demo__repo-1"]
    assert ids("--max-difficulty", "0.5") == ["demo__repo-0", "demo__repo-1"]
    assert ids("--exclude-labels", "B3_network", fmt="trl") == ["st0000", "st0001"]  # trajectories of kept instances


def test_export_filter_switched_off_lets_the_labelled_rows_through(tmp_path, capsys, monkeypatch):
    out = store(tmp_path)
    monkeypatch.setattr(InstanceFilter, "keeps", lambda self, row: True)
    dest = tmp_path / "v.parquet"
    rc, o, _ = cli(capsys, "export", "--format", "verl", "--source", "swe", "--out", out, "--dest", str(dest),
                   "--exclude-labels", "B1_private_api")
    assert rc == 0 and "wrote 3 rows" in o  # the B1 row is in


@pytest.mark.parametrize("flags,needle", [
    (("--exclude-labels", "B1_privat"), "unknown B1_privat"),
    (("--difficulty-bands", "easy,trivial"), "unknown trivial"),
    (("--max-difficulty", "2"), "between 0 and 1"),
    (("--max-difficulty", "nan"), "between 0 and 1"),
])
def test_bad_filter_flags_are_one_line_errors_and_write_nothing(tmp_path, capsys, flags, needle):
    out = store(tmp_path)
    dest = tmp_path / "v.parquet"
    rc, _, err = cli(capsys, "export", "--format", "verl", "--source", "swe", "--out", out, "--dest", str(dest), *flags)
    assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1 and not dest.exists()


def test_a_filter_on_browse_is_refused(tmp_path, capsys):
    out = store(tmp_path)
    rc, _, err = cli(capsys, "export", "--format", "verl", "--source", "browse", "--out", out,
                     "--dest", str(tmp_path / "b.parquet"), "--difficulty-bands", "easy")
    assert rc == 2 and "--source swe" in err


def test_the_viewer_shows_labels_with_reasons_and_the_band(tmp_path):
    out = store(tmp_path, unassessed=True)
    with ViewServer(out, port=0) as srv:
        def page(iid):
            return urllib.request.urlopen(srv.url.rstrip("/") + f"/swe_instances/{iid}", timeout=10).read().decode()
        body = page("demo__repo-1")
        assert "<code>B1_private_api</code>" in body and "_normalize" in body and "difficulty <b>easy</b>" in body
        assert "quality labels: none" in page("demo__repo-0")
        assert "difficulty: not assessed" in page("demo__repo-9") and "quality labels: not assessed" in page("demo__repo-9")


def test_flaky_tests_of_other_files_are_not_this_instances():
    """An injected bug's row lists the whole clean suite's flaky tests; only its selected files' count."""
    val = validation(flaky_tests=["tests/test_other.py::test_slow"])
    val["meta"]["selection"] = ["tests/test_mod.py"]
    assert codes(instance(), val) == []
    val["meta"]["selection"] = ["tests"]
    assert codes(instance(), val) == ["B4_flaky"]
